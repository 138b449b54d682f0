#!/usr/bin/env python3
"""A realistic day of security-group changes, for the noise benchmark (docs/BENCHMARKS.md).

300 groups, each owned by one of 60 teams (5 groups a team); 2,000 changes:
- 70 % by the deployment pipeline's role, spread over the working day, each a rule added from or
  removed to a private range (LOW);
- the rest by people in the console, in bursts of 3 to 8 edits to one group within a minute
  (ports open to the internet: MEDIUM and HIGH, and private ranges: LOW);
- 1 % CRITICAL: RDP or SSH opened to the internet, one in a burst.

Writes JSON: {"groups": 300, "owners": 60, "changes": [{"t", "group", "by", "op", "port",
"cidr"}, ...]} sorted by `t` (seconds since midnight UTC). The same seed gives the same day.

Usage: scripts/noisy-day.py [--seed N] [--out FILE]
"""
import argparse
import json
import random
import sys

GROUPS, OWNERS, CHANGES = 300, 60, 2000
PIPELINE_SHARE, CRITICAL_SHARE = 0.70, 0.01
DAY_START, DAY_END = 7 * 3600, 19 * 3600  # the working day, UTC


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--out", default="-")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    changes = []
    # Rules each group has had added, to remove some later: (port, cidr).
    added = {g: [] for g in range(GROUPS)}
    serial = [0]

    def private_cidr():
        serial[0] += 1
        n = serial[0]
        return f"10.{(n >> 8) & 255}.{n & 255}.0/24"

    def change(t, group, by, port, cidr, op="add"):
        # A rule the group has already: the same rule from a range of its own instead (EC2
        # refuses a duplicate).
        if op == "add" and (port, cidr) in added[group]:
            cidr = private_cidr()
        changes.append({"t": t, "group": group, "by": by, "op": op, "port": port, "cidr": cidr})
        if op == "add":
            added[group].append((port, cidr))

    pipeline = round(CHANGES * PIPELINE_SHARE)
    # In time order, so that a rule is removed only after it was added.
    for t in sorted(rng.randint(DAY_START, DAY_END) for _ in range(pipeline)):
        group = rng.randrange(GROUPS)
        if added[group] and rng.random() < 0.3:
            port, cidr = added[group].pop(rng.randrange(len(added[group])))
            changes.append({"t": t, "group": group, "by": "pipeline", "op": "remove",
                            "port": port, "cidr": cidr})
        else:
            change(t, group, "pipeline", rng.choice([443, 8443, 5432, 6379, 9200]), private_cidr())
    console = CHANGES - pipeline
    critical = round(CHANGES * CRITICAL_SHARE)
    bursts = []
    while console > 0:
        size = min(console, rng.randint(3, 8))
        bursts.append(size)
        console -= size
    # The CRITICAL changes, one in each of as many bursts.
    critical_bursts = set(rng.sample(range(len(bursts)), critical))
    for i, size in enumerate(bursts):
        start = rng.randint(DAY_START, DAY_END - 60)
        group = rng.randrange(GROUPS)
        user = f"console-user-{rng.randrange(40)}"
        times = sorted(rng.randint(start, start + 59) for _ in range(size))
        worst = rng.randrange(size) if i in critical_bursts else None
        for k, t in enumerate(times):
            if k == worst:
                change(t, group, user, rng.choice([3389, 22]), "0.0.0.0/0")
            elif rng.random() < 0.5:
                change(t, group, user, rng.choice([8080, 8443, 9000, 5432, 1433]), "0.0.0.0/0")
            else:
                change(t, group, user, rng.choice([22, 443, 8080]), private_cidr())
    changes.sort(key=lambda c: (c["t"], c["group"]))
    day = {"groups": GROUPS, "owners": OWNERS, "changes": changes}
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    json.dump(day, out, indent=None)
    out.write("\n")


if __name__ == "__main__":
    main()
