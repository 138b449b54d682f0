# Sourced by the bench and measure scripts: starts scripts/moto.py in the background and waits
# until it serves. Usage (from the repository root, after `set -euo pipefail`):
#   source scripts/moto-start.sh
#   moto_start "$work"            # sets moto_pid and moto_endpoint, or stops the script
# The caller kills "$moto_pid" on exit. moto's stdout and stderr go to $work/moto.out and
# $work/moto.err; on failure the error output is shown, so a missing or broken .venv is named
# instead of the bench going on with an empty endpoint.

moto_pid=""
moto_endpoint=""

moto_start() { # work_dir
  local work=$1
  .venv/bin/python scripts/moto.py > "$work/moto.out" 2> "$work/moto.err" &
  moto_pid=$!
  local _
  for _ in $(seq 300); do
    moto_endpoint=$(sed -n 's/^READY //p' "$work/moto.out" 2>/dev/null)
    [ -n "$moto_endpoint" ] && return 0
    if ! kill -0 "$moto_pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "error: moto did not come up (scripts/moto.py); its output:" >&2
  tail -n 20 "$work/moto.err" >&2 || true
  exit 1
}

# Seconds between two `date +%s.%N` readings, without bc.
seconds_between() { # start end
  awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'
}
