#!/usr/bin/env bash
# Times an 8-target rollout (4 accounts x 2 regions, moto multi-account through sts:AssumeRole) at
# --concurrency 1 and 8 in the same run, where the emulator does not bound it: sgwatch talks to moto
# through scripts/faultproxy.py, which adds LATENCY_MS (default 50) to every call, like the round
# trip to AWS, and moto holds each new stack in CREATE_IN_PROGRESS for CREATE_SECONDS (default 5)
# (the SGWATCH_MOTO_CREATE_SECONDS bridge in scripts/moto.py), so the SDK's waiter waits as it
# does against AWS. Usage: scripts/bench-rollout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q -p sgwatch
work=$(mktemp -d)
source scripts/moto-start.sh
trap 'kill "$moto_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
SGWATCH_MOTO_CREATE_SECONDS="${CREATE_SECONDS:-5}" moto_start "$work"
endpoint=$moto_endpoint
.venv/bin/python scripts/faultproxy.py --target "$endpoint" --rate 0 --latency-ms "${LATENCY_MS:-50}" \
  > "$work/proxy.out" 2> "$work/proxy.err" &
proxy_pid=$!
trap 'kill "$moto_pid" "$proxy_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q READY "$work/proxy.out" 2>/dev/null && break; sleep 0.1; done
proxy=$(sed -n 's/^READY //p' "$work/proxy.out")
[ -n "$proxy" ] || { echo "error: the latency proxy did not come up:" >&2; cat "$work/proxy.err" >&2; exit 1; }
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$proxy"
accounts="111111111111 222222222222 333333333333 444444444444"
.venv/bin/python - "$endpoint" $accounts <<'PY'
import sys, boto3
endpoint, accounts = sys.argv[1], sys.argv[2:]
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
for a in accounts:
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{a}:role/OrganizationAccountAccessRole", RoleSessionName="bench")["Credentials"]
    for r in ("us-east-1", "eu-west-1"):
        boto3.client("sesv2", endpoint_url=endpoint, region_name=r, aws_access_key_id=c["AccessKeyId"],
                     aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"]
                     ).create_email_identity(EmailIdentity="alerts@example.com")
PY
.venv/bin/python - "$work/bootstrap.zip" <<'PY'
import sys, zipfile
info = zipfile.ZipInfo("bootstrap"); info.external_attr = 0o755 << 16
with zipfile.ZipFile(sys.argv[1], "w") as z: z.writestr(info, "#!/bin/sh\n")
PY
{
  printf 'defaults:\n  role_name: OrganizationAccountAccessRole\n  regions: [us-east-1, eu-west-1]\n  sender: alerts@example.com\ntargets:\n'
  for a in $accounts; do printf '  - account: "%s"\n' "$a"; done
} > "$work/targets.yaml"
for c in 1 8; do
  start=$(date +%s.%N)
  target/debug/sgwatch rollout --targets "$work/targets.yaml" --handler-zip "$work/bootstrap.zip" --concurrency "$c" install > /dev/null 2>&1
  end=$(date +%s.%N)
  printf 'install rollout, 8 targets, --concurrency %s: %.2f s\n' "$c" "$(seconds_between "$start" "$end")"
  target/debug/sgwatch rollout --targets "$work/targets.yaml" --yes teardown > /dev/null 2>&1
done
