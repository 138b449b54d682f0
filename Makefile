# Entry points for building, checking and testing sgwatch. `make test` is what CI runs
# (.ci/run): it sets up the tools, lints, and runs every test, the moto-backed ones included.

# The project's Python tools (moto, cfn-lint, checkov, cargo-lambda, zig) come first.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup lint test bench demo package

setup:
	scripts/setup.sh

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	# cargo-deny reads the metadata of every target's crates (Windows' too), which a Linux build
	# never downloads: fetched first, or a fresh machine's offline check fails on a missing crate.
	cargo fetch --quiet
	cargo deny --offline check licenses bans sources
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet
	@if [ -e scripts/lint-templates.sh ]; then bash scripts/lint-templates.sh; fi

# The integration tests start their own moto servers (tests/src/emulator.rs); they need only .venv.
# Three test threads, not one per core: with servers forked from a pool the tests mostly wait
# (on retries, timeouts, the programs they run). On a 2-core machine the installer's integration
# tests took 60-72 s with 3 threads against 83-96 s with 2, and 146-149 s with 4 (its SES-throttling
# test stretched to 142 s); docs/BENCHMARKS.md has the figures. RUST_TEST_THREADS overrides it.
test: setup lint
	RUST_TEST_THREADS=$${RUST_TEST_THREADS:-3} cargo test --workspace

bench:
	cargo bench -p sgwatch-handler

# The story end to end against local AWS (docs/DEMO.md); demo.sh runs setup itself.
demo:
	scripts/demo.sh

package: setup
	cargo run -p sgwatch -- package
