#!/usr/bin/env bash
# Fuzzes the handler's parse → diff → decide → render path with cargo-fuzz (nightly toolchain),
# its corpus seeded from the test fixtures. Usage: scripts/fuzz.sh [SECONDS] (default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=handler/fuzz/corpus/parse_and_decide
mkdir -p "$corpus"
for f in tests/fixtures/*.json tests/fixtures/malformed/*.json; do
  # libFuzzer's default input limit is 4 KiB; larger seeds only slow it down.
  [ "$(stat -c%s "$f")" -le 20000 ] && cp "$f" "$corpus/seed-$(basename "$f")"
done
cd handler/fuzz
exec cargo +nightly fuzz run parse_and_decide -- -max_total_time="$seconds" -rss_limit_mb=2048
