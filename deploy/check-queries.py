#!/usr/bin/env python3
"""Evaluates every PromQL expression of the dashboard and the rules against a real Prometheus
that scrapes webui-monitor, through Prometheus' HTTP API.

    deploy/check-queries.py --target 127.0.0.1:9741 [--scrape-seconds 20]
    deploy/check-queries.py --self-test              # scrapes deploy/fake-exporter.py instead

Starts `prometheus` (Debian package `prometheus`) on a free loopback port with a throwaway
TSDB, job "webui-monitor" scraping TARGET every second and alerts.yml loaded, waits, then sends
each expression of extract-queries.py to /api/v1/query. A dashboard or recording-rule
expression passes when Prometheus accepts it and returns at least one series; an alert
expression passes when Prometheus accepts it (it returns data only while its alert would fire),
unless --alerts-must-fire names it. --allow-empty REGEX exempts expressions whose origin
(panel title or rule name) matches, e.g. "User directory" when personal data is off.

Run it while traffic flows (the end-to-end tests): rates over idle counters are still data
(zero), but series that were never created are not. Prints one line per expression and a
final "N passed, M failed"; exits 1 if any failed. Standard library only.
"""
import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Expressions that look back further than a test's Prometheus has existed: they may be empty.
NEEDS_HISTORY = {
    "openwebui:user_tokens:baseline7d": "its window ends 1 h ago",
    "openwebui:user_spend:baseline7d": "its window ends 1 h ago",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base: str, expr: str):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def wait_ready(base: str, proc, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("prometheus exited early")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("prometheus did not become ready")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", help="host:port of webui-monitor's /metrics")
    p.add_argument("--self-test", action="store_true", help="scrape deploy/fake-exporter.py")
    p.add_argument("--scrape-seconds", type=float, default=20)
    p.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    p.add_argument("--allow-empty", default=None, help="regex of origins that may return no data")
    p.add_argument("--alerts-must-fire", default=None, help="regex of alert names that must return data")
    args = p.parse_args()
    if bool(args.target) == args.self_test:
        p.error("give exactly one of --target and --self-test")

    fake = None
    target = args.target
    if args.self_test:
        import importlib.util

        spec = importlib.util.spec_from_file_location("fake_exporter", HERE / "fake-exporter.py")
        fake_exporter = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fake_exporter)
        target = f"127.0.0.1:{free_port()}"
        fake = fake_exporter.serve(target)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="wm-prom-") as tmp:
        shutil.copy(HERE / "prometheus" / "alerts.yml", Path(tmp) / "alerts.yml")
        (Path(tmp) / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n  - job_name: webui-monitor\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        proc = subprocess.Popen(
            [args.prometheus, f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "prometheus.log", "w"),
        )
        try:
            wait_ready(base, proc, 30)
            time.sleep(args.scrape_seconds)
            up = query(base, 'up{job="webui-monitor"}')
            if not any(s["value"][1] == "1" for s in up.get("data", {}).get("result", [])):
                print(f"FAILED scrape: {target} is not up in Prometheus: {up}")
                return 1
            # Windows short enough to hold only scraped data, long enough for >= 4 samples.
            window = f"{max(5, int(args.scrape_seconds) - 5)}s"
            lines = subprocess.run(
                [sys.executable, str(HERE / "extract-queries.py"), "--with-origin",
                 "--range", window, "--rate-interval", window],
                check=True, capture_output=True, text=True,
            ).stdout.splitlines()
            passed = failed = 0
            for line in lines:
                origin, expr = line.split("\t", 1)
                kind = origin.split(" ", 1)[0]
                name = origin.split(" ", 1)[1]
                result = query(base, expr)
                ok_status = result.get("status") == "success"
                data = result.get("data", {})
                n = 0
                if ok_status:
                    n = 1 if data.get("resultType") == "scalar" else len(data.get("result", []))
                must_have_data = kind != "alert" or (args.alerts_must_fire and re.search(args.alerts_must_fire, name))
                if args.allow_empty and re.search(args.allow_empty, name):
                    must_have_data = False
                if name in NEEDS_HISTORY:
                    must_have_data = False
                ok = ok_status and (n > 0 or not must_have_data)
                verdict = "ok    " if ok else "FAILED"
                detail = f"{n} series" if ok_status else result.get("error", "no answer")
                if ok_status and n == 0 and name in NEEDS_HISTORY:
                    detail += f" (allowed: {NEEDS_HISTORY[name]})"
                print(f"{verdict} {origin}: {detail}")
                passed += ok
                failed += not ok
            print(f"{passed} passed, {failed} failed")
            return 1 if failed else 0
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            if fake:
                fake.shutdown()


if __name__ == "__main__":
    sys.exit(main())
