#!/usr/bin/env bash
# Builds the .deb from the release binary, installs it with dpkg -i, checks what it installed,
# runs `webui-monitor --version` and `webui-monitor config check`, then purges it.
# Needs root, cargo-deb (`cargo install --locked cargo-deb`) and a release build
# (`cargo build --release -p webui-monitor`). Leaves the machine as it found it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ -x target/release/webui-monitor ]] || { echo "build first: cargo build --release -p webui-monitor" >&2; exit 2; }
if dpkg -s webui-monitor >/dev/null 2>&1; then
    echo "webui-monitor is already installed here; not touching it" >&2
    exit 2
fi
deb=$(cargo deb -p webui-monitor --no-build --output target/debian/ 2>/dev/null | tail -n 1)
[[ -f $deb ]] || { echo "cargo deb produced no package" >&2; exit 1; }
trap 'dpkg --purge webui-monitor >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"

for f in /usr/bin/webui-monitor /etc/webui-monitor/config.toml \
    /usr/lib/systemd/system/webui-monitor.service \
    /usr/share/webui-monitor/grafana/webui-monitor.json \
    /usr/share/webui-monitor/prometheus/alerts.yml \
    /usr/share/doc/webui-monitor/operations.md; do
    [[ -e $f ]] || { echo "missing after install: $f" >&2; exit 1; }
done
grep -qx /etc/webui-monitor/config.toml /var/lib/dpkg/info/webui-monitor.conffiles ||
    { echo "config.toml is not a conffile" >&2; exit 1; }

webui-monitor --version
# The environment must not change the packaged config's verdict.
env -u WEBUI_SECRET_KEY $(env | sed -n 's/^\(WEBUI_MONITOR_[A-Z_]*\)=.*/-u \1/p') \
    webui-monitor config check
echo "1 passed, 0 failed"
