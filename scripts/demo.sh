#!/usr/bin/env bash
# `make demo`: the story sgwatch exists for, end to end on this machine against local AWS (moto).
# Department B opens RDP on Department A's security group; Department A gets the email.
# Sets up the tools, builds the installer, the handler and the demo once (later runs reuse the
# builds), then runs the demo (tests/src/bin/demo.rs; the story is tests/src/story.rs).
# See docs/DEMO.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

scripts/setup.sh

echo "demo: building the installer (sgwatch), the handler (bootstrap) and the demo"
# The same build `make test` makes (the whole workspace, its tests' features included), so the
# AWS SDK is compiled once for both; the three programs are among its outputs. A per-package
# build (`-p`) would resolve other features and compile the SDK again.
cargo test --workspace --no-run --quiet

exec "${CARGO_TARGET_DIR:-target}/debug/demo"
