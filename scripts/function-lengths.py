#!/usr/bin/env python3
"""The longest functions under the given folders (test modules excluded), by brace matching.

Usage: scripts/function-lengths.py [-n N] DIR... (default: handler/src installer/src, 15 lines).
"""
import pathlib
import re
import sys


def lengths(roots):
    """(lines, path, name) of every function outside the test modules of the .rs files under roots."""
    res = []
    for root in roots:
        for p in sorted(pathlib.Path(root).rglob("*.rs")):
            lines = p.read_text().split("\n")
            i = 0
            while i < len(lines):
                line = lines[i]
                if re.match(r"\s*#\[cfg\(test\)\]", line):
                    break
                m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)", line)
                if not m:
                    i += 1
                    continue
                depth, started, j = 0, False, i
                while j < len(lines):
                    s = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j])
                    s = re.sub(r"'(\\.|[^'\\])'", "''", s).split("//")[0]
                    for ch in s:
                        if ch == "{":
                            depth, started = depth + 1, True
                        elif ch == "}":
                            depth -= 1
                    if started and depth == 0:
                        break
                    if not started and s.rstrip().endswith(";"):
                        break
                    j += 1
                res.append((j - i + 1, str(p), m.group(6)))
                i = j + 1
    return sorted(res, reverse=True)


def main(argv):
    n = 15
    if argv[:1] == ["-n"]:
        n, argv = int(argv[1]), argv[2:]
    for length, path, name in lengths(argv or ["handler/src", "installer/src"])[:n]:
        print(length, path, name)


if __name__ == "__main__":
    main(sys.argv[1:])
