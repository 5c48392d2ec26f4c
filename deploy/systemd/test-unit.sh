#!/usr/bin/env bash
# Checks deploy/systemd/webui-monitor.service without installing it:
#   1. `systemd-analyze verify` finds no error (ExecStart= pointed at BINARY, default: the
#      release build if present, else /bin/true, since verify requires an executable);
#   2. `systemd-analyze security --offline=yes` rates its exposure at most MAX_EXPOSURE
#      (tenths; 18 = 1.8, in the "OK" band below 2.0; recorded in docs/operations.md).
# Needs systemd-analyze (Debian package `systemd`), v250 or later.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
unit="$here/webui-monitor.service"
max_exposure=${MAX_EXPOSURE:-18}
binary=${1:-}
if [[ -z $binary ]]; then
    binary=/bin/true
    [[ -x $root/target/release/webui-monitor ]] && binary=$root/target/release/webui-monitor
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=/usr/bin/webui-monitor|ExecStart=$binary|" "$unit" >"$tmp/webui-monitor.service"

echo "== systemd-analyze verify"
# verify prints problems on stderr and still exits 0 for some of them: fail on any output.
out=$(systemd-analyze verify "$tmp/webui-monitor.service" 2>&1) || { echo "$out"; exit 1; }
if [[ -n $out ]]; then
    echo "$out"
    exit 1
fi
echo "ok"

echo "== systemd-analyze security (threshold $max_exposure)"
systemd-analyze security --offline=yes --threshold="$max_exposure" "$tmp/webui-monitor.service" | tail -n 1
