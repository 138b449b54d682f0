#!/usr/bin/env bash
# Sets up what building, linting and testing sgwatch need beyond rustup and cargo: the Python
# tools (moto, cfn-lint, checkov, cargo-lambda, zig) in .venv, the arm64 Linux Rust target,
# rustfmt and clippy, cargo-deny (crates.io), and Debian's chromium (the test that renders the email in a browser).
# Idempotent, and silent when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=(scripts/requirements.txt scripts/requirements-checkov.txt)
stamp="$venv/.sgwatch-setup-$(cat "${requirements[@]}" | sha256sum | cut -c1-16)"

if [[ ! -f "$stamp" ]]; then
    echo "setup: installing Python tools into $venv (${requirements[*]})"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
    [[ -x "$venv/checkov/bin/python" ]] || "$venv/bin/python" -m venv "$venv/checkov"
    "$venv/checkov/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r scripts/requirements-checkov.txt
    ln -sfn ../checkov/bin/checkov "$venv/bin/checkov"
    rm -f "$venv"/.sgwatch-setup-*
    touch "$stamp"
fi

if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    echo "setup: adding Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
fi

missing=()
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
if ((${#missing[@]})); then
    echo "setup: adding Rust components ${missing[*]}"
    rustup component add "${missing[@]}"
fi

# The licence, ban and source checks of `make lint` (deny.toml); a pinned version, built once.
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.'; then
    echo "setup: installing cargo-deny from crates.io (a few minutes, once)"
    cargo install cargo-deny --version '~0.20' --locked --quiet
fi

if [[ ! -x /usr/bin/chromium ]]; then
    echo "setup: installing Debian's chromium (renders the email in a real browser for its test)"
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
fi
