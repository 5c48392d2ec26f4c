#!/usr/bin/env bash
# The README's first command as a user runs it: `cargo xtask run` attaches the programs to lo,
# serves /readyz and /metrics on 127.0.0.1:9741, and counts one exchange with a server on
# 127.0.0.1:8080 byte for byte. On exit nothing stays attached to lo.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
run_pid="" server_pid=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    kill -TERM -- "-$run_pid" 2>/dev/null
    wait "$run_pid" 2>/dev/null
  fi
  rm -f "$log"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "run-command: $*" >&2; echo "--- cargo xtask run's output:" >&2; cat "$log" >&2; exit 1; }

for port in 8080 9741; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run-command: 127.0.0.1:$port is taken; stop what listens there and run again" >&2
    exit 1
  fi
done

# Its own session, so that the whole tree (cargo, xtask, cargo run, the daemon) gets SIGTERM.
setsid cargo xtask run >"$log" 2>&1 &
run_pid=$!
python3 -m http.server 8080 --bind 127.0.0.1 >/dev/null 2>&1 &
server_pid=$!

# The first build of the release binary can take minutes on a fresh machine.
for _ in $(seq 1200); do
  curl -fsS http://127.0.0.1:9741/readyz >/dev/null 2>&1 && break
  kill -0 "$run_pid" 2>/dev/null || fail "exited before /readyz answered"
  sleep 0.5
done
curl -fsS http://127.0.0.1:9741/readyz >/dev/null || fail "/readyz never answered 200"

# 46 request bytes, exactly.
exec 3<>/dev/tcp/127.0.0.1/8080
printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
cat <&3 >/dev/null
exec 3<&-

expect='webui_monitor_tcp_bytes_total{direction="request"} 46'
for _ in $(seq 40); do
  grep -qxF "$expect" <<<"$(curl -fsS http://127.0.0.1:9741/metrics)" && break
  sleep 0.25
done
metrics=$(curl -fsS http://127.0.0.1:9741/metrics)
grep -qxF "$expect" <<<"$metrics" || fail "/metrics lacks '$expect': $(grep '^webui_monitor_tcp' <<<"$metrics")"
grep -qxF 'webui_monitor_tcp_connections_total 1' <<<"$metrics" \
  || fail "/metrics lacks 'webui_monitor_tcp_connections_total 1'"

kill -TERM -- "-$run_pid"
wait "$run_pid" || true
run_pid=""
if ip link show dev lo | grep -q xdp; then
  fail "an XDP program is still attached to lo after the daemon exited"
fi
echo "run-command: cargo xtask run attached to lo, counted 46 request bytes on 1 connection, detached on exit"
