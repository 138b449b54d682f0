#!/usr/bin/env bash
# Renders the RDP fixture's messages as a person sees them, into docs/: the email's HTML part
# screenshotted by headless chromium at desktop (email.png, 1200 px) and phone (email-390.png,
# 390 px) widths, its text part (email.txt) and the Slack Block Kit message (slack-message.json).
# Needs Debian's chromium (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Built with the workspace, as the tests build it: `-p` would resolve the SDK's features anew and
# compile it a second time.
cargo build --quiet --workspace --bins
target/debug/samples "$work" >/dev/null
cp "$work/email.txt" "$work/slack-message.json" docs/

shoot() { # width height output
    chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
        --user-data-dir="$work/profile" --window-size="$1,$2" --screenshot="$3" \
        "file://$work/email.html" 2>/dev/null
    echo "screenshot-email: $3 (${1}x$2)"
}
shoot 1200 720 docs/email.png
shoot 390 1100 docs/email-390.png
echo "screenshot-email: docs/email.txt, docs/slack-message.json"
