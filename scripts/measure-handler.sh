#!/usr/bin/env bash
# Runs the release `bootstrap` under cargo-lambda's Lambda Runtime API emulator, its AWS endpoint
# pointed at a local moto server, sends it N notifications (default 200) and reports the time per
# invocation and the process's peak memory (VmHWM). Usage: scripts/measure-handler.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-200}"
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
cargo build -q --release -p sgwatch-handler --bin bootstrap
work=$(mktemp -d)
pids=()
source scripts/moto-start.sh
trap 'kill "$moto_pid" "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
moto_start "$work"
moto=$moto_endpoint
.venv/bin/python - "$moto" <<'PY'
import sys, boto3
boto3.client("sesv2", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="t",
             aws_secret_access_key="t").create_email_identity(EmailIdentity="alerts@example.com")
PY
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port" > "$work/watch.log" 2>&1 &
pids+=($!)
sleep 2   # the emulator answers nothing on /: give it a moment to bind
env -i PATH="$PATH" AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/bootstrap" AWS_LAMBDA_FUNCTION_NAME=bootstrap \
  AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 AWS_REGION=us-east-1 \
  AWS_ENDPOINT_URL="$moto" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
  SGWATCH_SENDER=alerts@example.com SGWATCH_LOOKUP_ACTOR=false \
  target/release/bootstrap > "$work/bootstrap.log" 2>&1 &
bootstrap=$!
pids+=($bootstrap)
sleep 1
url="http://127.0.0.1:$port/2015-03-31/functions/bootstrap/invocations"
start=$(date +%s.%N)
for _ in $(seq "$n"); do
  curl -s -o /dev/null -X POST --data-binary @tests/fixtures/rdp-opened.sns-event.json "$url"
done
end=$(date +%s.%N)
curl -s -X POST --data-binary @tests/fixtures/rdp-opened.sns-event.json "$url"; echo
printf 'invocations: %s, %s ms each end to end (emulator + handler + moto SES)\n' "$n" \
  "$(awk -v s="$start" -v e="$end" -v n="$n" 'BEGIN { printf "%.1f", (e - s) * 1000 / n }')"
grep -E 'VmHWM|VmRSS' /proc/$bootstrap/status
ls -l target/release/bootstrap | awk '{print "bootstrap (host, release):", $5, "bytes"}'
