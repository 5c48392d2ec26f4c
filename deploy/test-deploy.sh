#!/usr/bin/env bash
# Static checks of everything under deploy/ (no daemon needed):
#   - alert rules: promtool check rules + promtool test rules;
#   - example Prometheus config: promtool check config;
#   - every dashboard/rule expression (extract-queries.py) parses as PromQL (promtool), and
#     returns data from a real Prometheus scraping fake-exporter.py (check-queries.py);
#   - the dashboard is valid JSON with unique panel ids and the expected variables;
#   - the systemd unit: systemd-analyze verify + security in the "OK" band (systemd/test-unit.sh);
#   - Kubernetes manifests and provisioning files are valid YAML.
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

check "YAML manifests" python3 - "$here"/grafana/provisioning/*.yaml "$here"/kubernetes/*.yaml <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    assert docs, f"{path}: empty"
PY

"$here/kubernetes/gen-prometheusrule.sh" "$tmp/prometheusrule.yaml"
check "PrometheusRule matches alerts.yml (else run kubernetes/gen-prometheusrule.sh)" \
    diff -u "$here/kubernetes/prometheusrule.yaml" "$tmp/prometheusrule.yaml"

check "systemd unit" "$here/systemd/test-unit.sh"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
