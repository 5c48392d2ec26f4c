#!/usr/bin/env python3
"""Prints every PromQL expression of the Grafana dashboard and of the Prometheus rules, one per
line, ready to send to Prometheus' /api/v1/query.

    deploy/extract-queries.py                      # dashboard, then recording rules, then alerts
    deploy/extract-queries.py --kind dashboard     # only one kind (repeatable)
    deploy/extract-queries.py --with-origin        # "origin<TAB>expr" (panel title / rule name)
    deploy/extract-queries.py --range 5m --rate-interval 30s

Dashboard template variables are substituted: $user, $model, $instance (and any other
multi-value variable) by ".*", which matches everything in their `=~` selectors;
$__rate_interval / $__interval by --rate-interval, $__range by --range. Variable queries
`label_values(METRIC, LABEL)` become `group by (LABEL) (METRIC)`.

Alert expressions return data only while the alert's condition holds; the signals they compare
are the recording rules (kind "record") and the dashboard panels.

Standard library only; the rule file is read with a small parser that understands what
alerts.yml uses (`expr:` with a plain value or a `|`/`>` block).
"""
import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "grafana" / "webui-monitor.json"
RULES = HERE / "prometheus" / "alerts.yml"


def one_line(expr: str) -> str:
    # PromQL ignores whitespace outside string literals, and ours have no spaces inside strings.
    return re.sub(r"\s+", " ", expr).strip()


def substitute(expr: str, variables: set, rate_interval: str, range_: str) -> str:
    expr = expr.replace("$__rate_interval", rate_interval).replace("${__rate_interval}", rate_interval)
    expr = expr.replace("$__interval", rate_interval).replace("${__interval}", rate_interval)
    expr = expr.replace("$__range", range_).replace("${__range}", range_)
    for name in sorted(variables, key=len, reverse=True):
        expr = re.sub(r"\$\{" + re.escape(name) + r"(:[a-z]+)?\}", ".*", expr)
        expr = re.sub(r"\$" + re.escape(name) + r"\b", ".*", expr)
    if "$" in expr:
        raise SystemExit(f"unsubstituted variable in: {expr}")
    return expr


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_queries(path: Path, rate_interval: str, range_: str):
    dash = json.loads(path.read_text())
    variables = {v["name"] for v in dash.get("templating", {}).get("list", []) if v.get("type") != "datasource"}
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("definition") or var.get("query", {}).get("query", "")
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", query)
        if m:
            yield f"variable {var['name']}", f"group by ({m.group(2)}) ({m.group(1)})"
    for panel in panels(dash.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("hide") or not target.get("expr"):
                continue
            expr = substitute(one_line(target["expr"]), variables, rate_interval, range_)
            yield f"panel {panel.get('title', '?')} [{target.get('refId', '?')}]", expr


def rule_exprs(path: Path):
    """(kind, name, expr) for every rule, kind "record" or "alert"."""
    lines = path.read_text().splitlines()
    name = kind = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*-?\s*(record|alert):\s*(\S+)", line)
        if m:
            kind, name = m.group(1), m.group(2)
        m = re.match(r"(\s*)-?\s*expr:\s*(.*)$", line)
        if m:
            value = m.group(2).strip()
            if value in ("|", ">", "|-", ">-"):
                indent = len(m.group(1))
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i])
                    i += 1
                value = " ".join(body)
                i -= 1
            elif value[:1] in "'\"":
                value = value[1:-1]
            if kind is None:
                raise SystemExit(f"{path}:{i + 1}: expr outside a rule")
            yield kind, name, one_line(value)
        i += 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", action="append", choices=["dashboard", "record", "alert"])
    p.add_argument("--with-origin", action="store_true")
    p.add_argument("--rate-interval", default="1m")
    p.add_argument("--range", dest="range_", default="1h")
    p.add_argument("--dashboard", type=Path, default=DASHBOARD)
    p.add_argument("--rules", type=Path, default=RULES)
    args = p.parse_args()
    kinds = args.kind or ["dashboard", "record", "alert"]
    out = []
    if "dashboard" in kinds:
        out += list(dashboard_queries(args.dashboard, args.rate_interval, args.range_))
    rules = list(rule_exprs(args.rules))
    for kind in ("record", "alert"):
        if kind in kinds:
            out += [(f"{k} {name}", expr) for k, name, expr in rules if k == kind]
    for origin, expr in out:
        print(f"{origin}\t{expr}" if args.with_origin else expr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
