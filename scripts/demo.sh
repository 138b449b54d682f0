#!/usr/bin/env bash
# `make demo`: the story sgwatch exists for, end to end on this machine against local AWS (moto).
# Department B opens RDP on Department A's security group; Department A gets the email.
# Sets up the tools, builds the installer, the handler and the demo once (later runs reuse the
# builds), then runs the demo (tests/src/bin/demo.rs; the story is tests/src/story.rs).
# See docs/DEMO.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

# The build needs none of the tools setup installs, and on a fresh clone each takes a while (the
# Python tools about 50 s, the build minutes): setup runs beside the build. `cargo --version`
# first, so that rustup installs the pinned toolchain (rust-toolchain.toml) once, not twice at once.
cargo --version >/dev/null
setup_log="$(mktemp)"
trap 'rm -f "$setup_log"' EXIT
scripts/setup.sh >"$setup_log" 2>&1 &
setup=$!

echo "demo: building the installer (sgwatch), the handler (bootstrap) and the demo"
# The same build `make test` makes (the whole workspace, its tests' features included), so the
# AWS SDK is compiled once for both; the three programs are among its outputs. A per-package
# build (`-p`) would resolve other features and compile the SDK again.
built=0
cargo test --workspace --no-run --quiet || built=$?
set_up=0
wait "$setup" || set_up=$?
cat "$setup_log"
if ((set_up != 0)); then
    echo "demo: scripts/setup.sh failed (exit $set_up); its output is above" >&2
    exit "$set_up"
fi
if ((built != 0)); then
    exit "$built"
fi

trap - EXIT
rm -f "$setup_log"
exec "${CARGO_TARGET_DIR:-target}/debug/demo"
