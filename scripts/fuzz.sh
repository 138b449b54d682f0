#!/usr/bin/env bash
# Fuzzes the handler with cargo-fuzz (nightly toolchain). Usage: scripts/fuzz.sh [SECONDS] [TARGET]
# (default 300 s, parse_and_decide).
# - parse_and_decide: any bytes as an SNS message and as a whole event through parse → diff →
#   decide → render, its corpus seeded from the test fixtures;
# - hostile_values: hostile group names, descriptions, tag values, rule descriptions, source
#   prefixes and up to 60 owners, checking that no hidden character reaches a subject or any output
#   raw and that a source wider than a private range rates as /0.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
target="${2:-parse_and_decide}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus="handler/fuzz/corpus/$target"
mkdir -p "$corpus"
case "$target" in
  parse_and_decide)
    for f in tests/fixtures/*.json tests/fixtures/malformed/*.json; do
      # libFuzzer's default input limit is 4 KiB; larger seeds only slow it down.
      [ "$(stat -c%s "$f")" -le 20000 ] && cp "$f" "$corpus/seed-$(basename "$f")"
    done
    ;;
  hostile_values)
    # Pieces split at 0xFF: name, description, an owner, NotifyChannels, a tag, the rule's
    # description; the first byte picks the owners (0–60), the second the prefix (0–32).
    printf '\x3c\x03web\xe2\x80\xaegpj.exe\xe2\x80\xa8Subject: x\xffdesc\xe2\x80\x8bwith\x1b[31m\xffa@b.example\xe2\x81\xa6\xffsecops\xff%0256d\xffrule\xe2\x80\xad\x00' 0 >"$corpus/seed-bidi"
    printf '\x3c\x01name\xffdescription\xffowner@corp.example\xffsiem\xffteam\xffrule' >"$corpus/seed-wide"
    printf '\x00\x20\xef\xbb\xbf\xff\xc2\x85\xff\xe2\x80\xa9\xff\xff\xff' >"$corpus/seed-empty"
    ;;
  *) echo "unknown target $target (parse_and_decide or hostile_values)" >&2; exit 2 ;;
esac
cd handler/fuzz
exec cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
