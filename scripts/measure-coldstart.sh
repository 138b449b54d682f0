#!/usr/bin/env bash
# Measures the handler's cold start next to a bare `lambda_runtime` echo function built the same
# way: each binary is started N times (default 20) against a minimal Lambda Runtime API, and the
# time from spawning the process to its first `GET /2018-06-01/runtime/invocation/next` (the
# moment a function tells Lambda it is ready, the end of Lambda's Init phase) is reported
# as median and 90th percentile. The Runtime API is a few lines of Python that only notes when
# `next` arrives, so neither the emulator's nor moto's start-up is in the figure; no request to
# AWS is made during init, so no endpoint is needed.
# Usage: scripts/measure-coldstart.sh [N]   (PROFILE=release by default; PROFILE=dev for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
profile="${PROFILE:-release}"
out_dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The bare function lives outside the workspace, with the handler's release settings.
mkdir -p "$work/bare/src"
lambda_runtime_version=$(sed -n 's/^lambda_runtime = "\(.*\)"/\1/p' Cargo.toml)
cat > "$work/bare/Cargo.toml" <<TOML
[package]
name = "bare"
version = "0.1.0"
edition = "2021"
[workspace]
[dependencies]
lambda_runtime = "$lambda_runtime_version"
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
serde_json = "1"
[profile.release]
opt-level = "z"
lto = "fat"
codegen-units = 1
panic = "unwind"
strip = "symbols"
TOML
cat > "$work/bare/src/main.rs" <<'RS'
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|e: LambdaEvent<Value>| async move { Ok::<_, Error>(e.payload) })).await
}
RS
cargo build -q --profile "$profile" -p sgwatch-handler --bin bootstrap
handler="${CARGO_TARGET_DIR:-target}/$out_dir/bootstrap"
CARGO_TARGET_DIR="$work/bare/target" cargo build -q --profile "$profile" --manifest-path "$work/bare/Cargo.toml"
bare="$work/bare/target/$out_dir/bare"

.venv/bin/python - "$n" "$handler" "$bare" <<'PY'
import http.server, os, statistics, subprocess, sys, threading, time

n, binaries = int(sys.argv[1]), {"sgwatch bootstrap": sys.argv[2], "bare lambda_runtime": sys.argv[3]}
ready = threading.Event()

class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            ready.set()
            time.sleep(5)   # hold the poll: the function stays in init's last state until killed
        self.send_response(500); self.end_headers()
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
env = {
    "PATH": os.environ["PATH"],
    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}",
    "AWS_LAMBDA_FUNCTION_NAME": "bootstrap", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "t",
    "AWS_EC2_METADATA_DISABLED": "true", "SGWATCH_SENDER": "alerts@example.com", "RUST_LOG": "info",
    "SGWATCH_IDEMPOTENCY_TABLE": "sgwatch-idempotency",
}
print(f"time from spawn to the first `next` request, {n} starts each (ms)")
for name, path in binaries.items():
    times = []
    for _ in range(n):
        ready.clear()
        start = time.perf_counter()
        p = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not ready.wait(10):
            p.kill(); sys.exit(f"{name} never asked for an event")
        times.append((time.perf_counter() - start) * 1000)
        p.kill(); p.wait()
    times.sort()
    print(f"{name:22} median {statistics.median(times):6.2f}  p90 {times[int(0.9 * (len(times) - 1))]:6.2f}  min {times[0]:6.2f}")
PY
