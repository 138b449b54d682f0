#!/usr/bin/env bash
# Lints the CloudFormation templates with cfn-lint and checkov; exits non-zero on any finding.
#
# Uses the project's virtualenv (.venv/bin/) when it has the tools, else whatever is on PATH.
# checkov exits 0 when it could not parse a template (and so checked nothing), so its summary
# is read as well: it must report no failed check, no parsing error, and at least one passed check.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tool() {
    if [[ -x ".venv/bin/$1" ]]; then
        echo ".venv/bin/$1"
    elif command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    else
        echo "lint-templates: $1 not found in .venv/bin/ or on PATH (pip install cfn-lint checkov)" >&2
        exit 2
    fi
}
cfn_lint="$(tool cfn-lint)"
checkov="$(tool checkov)"

shopt -s nullglob
templates=(templates/*.yaml)
if ((${#templates[@]} == 0)); then
    echo "lint-templates: no templates/*.yaml to lint" >&2
    exit 2
fi

echo "== cfn-lint ${templates[*]}"
"$cfn_lint" "${templates[@]}"
echo "cfn-lint: no findings"

echo "== checkov -d templates"
# No network here or in CI: skip checkov's download of guideline mappings and its noisy traceback.
set +e
out="$(BC_SKIP_MAPPING=TRUE "$checkov" -d templates --framework cloudformation --quiet --compact --skip-download 2>&1)"
status=$?
set -e
echo "$out"

summary="$(grep -E '^Passed checks: [0-9]+, Failed checks: [0-9]+' <<<"$out" || true)"
if [[ -z "$summary" ]]; then
    echo "lint-templates: checkov printed no summary (exit $status); nothing was checked" >&2
    exit 1
fi
passed="$(sed -E 's/^Passed checks: ([0-9]+).*/\1/' <<<"$summary")"
failed="$(sed -E 's/.*Failed checks: ([0-9]+).*/\1/' <<<"$summary")"
parse_errors="$(sed -nE 's/.*Parsing errors: ([0-9]+).*/\1/p' <<<"$summary")"
if ((status != 0 || failed != 0 || ${parse_errors:-0} != 0 || passed == 0)); then
    echo "lint-templates: checkov found problems (exit $status; failed $failed, parsing errors ${parse_errors:-0}, passed $passed)" >&2
    exit 1
fi
echo "checkov: $passed passed, 0 failed"
