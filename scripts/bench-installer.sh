#!/usr/bin/env bash
# Times `sgwatch install` (fresh), a no-op install and `teardown` against a local moto server and
# counts their AWS API calls (total and mutating). Usage: scripts/bench-installer.sh [RUNS] (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
scripts/setup.sh
cargo build -q -p sgwatch
work=$(mktemp -d)
source scripts/moto-start.sh
trap 'kill "$moto_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
moto_start "$work"
endpoint=$moto_endpoint
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$endpoint"
.venv/bin/python - <<PY
import boto3
boto3.client("sesv2", endpoint_url="$endpoint", region_name="us-east-1").create_email_identity(EmailIdentity="alerts@example.com")
PY
.venv/bin/python - "$work/bootstrap.zip" <<'PY'
import sys, zipfile
info = zipfile.ZipInfo("bootstrap"); info.external_attr = 0o755 << 16
with zipfile.ZipFile(sys.argv[1], "w") as z: z.writestr(info, "#!/bin/sh\n")
PY
step() { # name, args...
  local name=$1; shift
  local log="$work/$name.log"; rm -f "$log"
  local start end
  start=$(date +%s.%N)
  SGWATCH_CALL_LOG="$log" target/debug/sgwatch "$@" > /dev/null 2>&1
  end=$(date +%s.%N)
  printf '%-16s %6.2f s  %3d calls  %3d mutating\n' "$name" "$(seconds_between "$start" "$end")" \
    "$(wc -l < "$log")" "$(grep -c '^WRITE' "$log" || true)"
}
for run in $(seq "$runs"); do
  echo "run $run"
  step install install --sender alerts@example.com --handler-zip "$work/bootstrap.zip"
  step no-op-install install --sender alerts@example.com --handler-zip "$work/bootstrap.zip"
  step teardown teardown --yes
done
