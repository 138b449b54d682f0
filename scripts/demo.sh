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
# One package per build: together, the handler would be compiled with the installer's `ec2`
# feature, which the Lambda binary does not carry.
cargo build --quiet -p sgwatch --bin sgwatch
cargo build --quiet -p sgwatch-handler --bin bootstrap
cargo build --quiet -p sgwatch-tests --bin demo

exec cargo run --quiet -p sgwatch-tests --bin demo
