#!/usr/bin/env bash
# Static checks of everything under deploy/ (no daemon needed):
#   - alert rules: promtool check rules + promtool test rules;
#   - example Prometheus config: promtool check config;
#   - every dashboard/rule expression (extract-queries.py) parses as PromQL (promtool), and
#     returns data from a real Prometheus scraping fake-exporter.py (check-queries.py);
#   - the dashboard is valid JSON with unique panel ids and the expected variables;
#   - the systemd unit: systemd-analyze verify + security in the "OK" band (systemd/test-unit.sh);
#   - Kubernetes manifests, compose file and provisioning files are valid YAML; the compose file
#     runs Open WebUI's standard service and the monitor beside it as documented; the DaemonSet
#     names the image build.sh makes (deploy/container/; the image itself is built and run by
#     tests/tests/container.rs).
# Needs: promtool (Debian `prometheus`), python3 with PyYAML (Debian `python3-yaml`), systemd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
check() {
    local name=$1
    shift
    if out=$("$@" 2>&1); then
        echo "ok     $name"
        passed=$((passed + 1))
    else
        echo "FAILED $name"
        echo "$out" | sed 's/^/       /'
        failed=$((failed + 1))
    fi
}

check "promtool check rules" promtool check rules "$here/prometheus/alerts.yml"
check "promtool test rules" promtool test rules "$here/prometheus/alerts.test.yml"
check "promtool check config" promtool check config "$here/prometheus/prometheus.yml"

# Every extracted expression as a recording rule: promtool then parses each one.
{
    echo "groups:"
    echo "  - name: extracted"
    echo "    rules:"
    n=0
    while IFS= read -r expr; do
        n=$((n + 1))
        printf '      - record: extracted:query:%d\n        expr: %s\n' "$n" "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$expr")"
    done < <("$here/extract-queries.py" --kind dashboard --kind record --kind alert)
} >"$tmp/extracted.yml"
check "extracted expressions parse" promtool check rules "$tmp/extracted.yml"

check "every expression returns data from a real Prometheus (fake exporter)" \
    "$here/check-queries.py" --self-test --scrape-seconds 10

check "dashboard JSON" python3 - "$here/grafana/webui-monitor.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ids = []
def walk(ps):
    for p in ps:
        ids.append(p["id"])
        assert p.get("title"), f"panel {p['id']} has no title"
        if p["type"] != "row":
            assert p.get("description"), f"panel {p['title']!r} has no description"
        walk(p.get("panels", []))
walk(d["panels"])
assert len(ids) == len(set(ids)), "duplicate panel ids"
names = [v["name"] for v in d["templating"]["list"]]
assert names == ["datasource", "user", "model", "instance"], names
assert d["schemaVersion"] >= 39 and d["uid"] == "webui-monitor"
PY

check "YAML manifests" python3 - "$here"/grafana/provisioning/*.yaml "$here"/kubernetes/*.yaml \
    "$here"/compose/*.yaml <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    assert docs, f"{path}: empty"
PY

check "compose file: Open WebUI's service, the monitor beside it" python3 - "$here" <<'PY'
import sys, yaml
here = sys.argv[1]
services = yaml.safe_load(open(f"{here}/compose/compose.yaml"))["services"]
owui, mon = services["open-webui"], services["webui-monitor"]
# Open WebUI as its own docker-compose.yaml runs it.
assert owui["image"] == "ghcr.io/open-webui/open-webui:main", owui["image"]
assert owui["ports"] == ["3000:8080"], owui["ports"]
assert owui["volumes"] == ["open-webui:/app/backend/data"], owui["volumes"]
# The monitor: host network, exactly the three capabilities, the same secret file.
assert mon["network_mode"] == "host"
assert mon["cap_drop"] == ["ALL"] and sorted(mon["cap_add"]) == ["BPF", "NET_ADMIN", "PERFMON"]
assert mon["env_file"] == owui["env_file"] == "webui.env"
env = mon["environment"]
assert env["WEBUI_MONITOR_CAPTURE_INTERFACES"] == "br-*"
assert env["WEBUI_MONITOR_CAPTURE_PORTS"] == "8080"
# Open WebUI's data volume, read-only, holds the database the monitor is told to read.
(volume,) = mon["volumes"]
name, mount, mode = volume.split(":")
assert name == "open-webui" and mode == "ro", volume
assert env["WEBUI_MONITOR_OPENWEBUI_DB"] == f"{mount}/webui.db"
assert mon["image"] == "localhost/webui-monitor:latest"
# The example env file names the secret, and only it.
lines = [l for l in open(f"{here}/compose/webui.env.example") if l.strip() and not l.startswith("#")]
assert [l.split("=")[0] for l in lines] == ["WEBUI_SECRET_KEY"], lines
PY

check "DaemonSet image is the one kustomization.yaml and build.sh name" python3 - "$here" <<'PY'
import re, sys, yaml
here = sys.argv[1]
ds = yaml.safe_load(open(f"{here}/kubernetes/daemonset.yaml"))
(container,) = ds["spec"]["template"]["spec"]["containers"]
name, tag = container["image"].rsplit(":", 1)
(image,) = yaml.safe_load(open(f"{here}/kubernetes/kustomization.yaml"))["images"]
assert image["name"] == name == "localhost/webui-monitor", (image, name)
version = re.search(r'^version = "(.*)"', open(f"{here}/../Cargo.toml").read(), re.M)[1]
assert image["newTag"] == tag == version, (image, tag, version)
PY

check "DaemonSet serves TLS with basic auth: web config mounted, HTTPS probes and scrapes" python3 - "$here" <<'PY'
import sys, tomllib, yaml
here = sys.argv[1]
k = f"{here}/kubernetes"
config = tomllib.loads(yaml.safe_load(open(f"{k}/configmap.yaml"))["data"]["config.toml"])
web_config = config["server"]["web_config_file"]
ds = yaml.safe_load(open(f"{k}/daemonset.yaml"))["spec"]["template"]["spec"]
(container,) = ds["containers"]
mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
volumes = {v["name"]: v for v in ds["volumes"]}
assert web_config == mounts["web"] + "/web-config.yml", (web_config, mounts)
paths = {i["path"] for s in volumes["web"]["projected"]["sources"] for i in s["secret"]["items"]}
assert paths == {"web-config.yml", "tls.crt", "tls.key"}, paths
for probe in ("readinessProbe", "livenessProbe"):
    assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(f"{k}/secret.example.yaml")) if d}
web = yaml.safe_load(secrets["webui-monitor-web-config"]["stringData"]["web-config.yml"])
assert web["tls_server_config"] == {"cert_file": "tls.crt", "key_file": "tls.key"}, web
assert list(web["basic_auth_users"]) == ["prometheus"], web
(endpoint,) = yaml.safe_load(open(f"{k}/servicemonitor.yaml"))["spec"]["endpoints"]
assert endpoint["scheme"] == "https"
assert endpoint["basicAuth"]["password"]["name"] in secrets
assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": "webui-monitor-tls", "key": "ca.crt"}
job = yaml.safe_load(open(f"{here}/prometheus/prometheus.yml"))["scrape_configs"][0]
assert job["scheme"] == "https" and "password_file" in job["basic_auth"] and "ca_file" in job["tls_config"], job
PY

"$here/kubernetes/gen-prometheusrule.sh" "$tmp/prometheusrule.yaml"
check "PrometheusRule matches alerts.yml (else run kubernetes/gen-prometheusrule.sh)" \
    diff -u "$here/kubernetes/prometheusrule.yaml" "$tmp/prometheusrule.yaml"

check "systemd unit" "$here/systemd/test-unit.sh"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
