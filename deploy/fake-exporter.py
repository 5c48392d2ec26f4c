#!/usr/bin/env python3
"""Serves a synthetic /metrics with every series the dashboard and the alert rules read, with
the label names they assume (issues 2 and 4). Counters grow on every scrape.

It is the contract of deploy/ written down: check-queries.py --self-test scrapes it to prove
every expression is well-formed and selects something; comparing its output with the real
daemon's /metrics shows any name or label drift.

    deploy/fake-exporter.py [--listen 127.0.0.1:9741]
"""
import argparse
import http.server
import itertools
import threading

HISTOGRAM_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
_scrapes = itertools.count(1)
_lock = threading.Lock()


def counter(name, help_, series, step):
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
    lines += [f"{name}{{{labels}}} {value * step}" if labels else f"{name} {value * step}" for labels, value in series]
    return lines


def gauge(name, help_, series):
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
    lines += [f"{name}{{{labels}}} {value}" if labels else f"{name} {value}" for labels, value in series]
    return lines


def histogram(name, help_, label_sets, n, seconds):
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
    for labels in label_sets:
        sep = "," if labels else ""
        for le in HISTOGRAM_BUCKETS:
            lines.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {n if le >= seconds else 0}')
        lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {n}')
        lines.append(f"{name}_sum{{{labels}}} {n * seconds}")
        lines.append(f"{name}_count{{{labels}}} {n}")
    return lines


def exposition(n: int) -> str:
    users = [("u-alice", "jwt", "webui"), ("u-bob", "jwt", "api"), ("u-carol", "api_key", "api"),
             ("u-dave", "cookie", "api"), ("anonymous", "none", "api"), ("invalid", "jwt", "api")]
    out = []
    out += counter("openwebui_http_requests_total", "HTTP requests by route template and status.",
                   [('method="POST",route="/api/chat/completions",status="200"', 3),
                    ('method="GET",route="/_app/*",status="200"', 10),
                    ('method="GET",route="/api/v1/chats/{id}",status="401"', 1),
                    ('method="POST",route="/api/chat/completions",status="500"', 1)], n)
    out += histogram("openwebui_http_request_duration_seconds", "Request to end of response.",
                     ['method="POST",route="/api/chat/completions"', 'method="GET",route="/_app/*"'], n, 2)
    out += counter("openwebui_user_requests_total", "Requests per user, credential and client kind.",
                   [(f'user="{u}",auth="{a}",client="{c}"', 2) for u, a, c in users], n)
    out += counter("openwebui_user_bytes_total", "Bytes per user and direction.",
                   [(f'user="{u}",direction="{d}"', 1000) for u, _, _ in users for d in ("request", "response")], n)
    out += gauge("openwebui_user_last_seen_timestamp_seconds", "Last request of the user.",
                 [(f'user="{u}"', 1_790_000_000 + n) for u, _, _ in users])
    out += counter("openwebui_chat_completions_total", "Chat completions.",
                   [('user="u-alice",model="llama3",auth="jwt",client="webui",stream="true",status_class="2xx"', 2),
                    ('user="u-bob",model="llama3",auth="jwt",client="api",stream="false",status_class="2xx"', 3),
                    ('user="u-carol",model="qwen",auth="api_key",client="api",stream="true",status_class="2xx"', 1),
                    ('user="u-dave",model="qwen",auth="cookie",client="api",stream="false",status_class="5xx"', 1)], n)
    out += counter("openwebui_llm_tokens_total", "LLM tokens.",
                   [('user="u-alice",model="llama3",direction="input",source="websocket"', 50),
                    ('user="u-alice",model="llama3",direction="output",source="websocket"', 200),
                    ('user="u-bob",model="llama3",direction="input",source="http"', 40),
                    ('user="u-bob",model="llama3",direction="output",source="http"', 300),
                    ('user="u-carol",model="qwen",direction="output",source="http"', 100)], n)
    out += counter("openwebui_llm_spend_total", "What users' tokens cost, in USD (pricing.currency).",
                   [('user="u-alice",model="llama3"', 0.002), ('user="u-bob",model="llama3"', 0.003)], n)
    out += counter("openwebui_llm_unpriced_tokens_total", "Tokens of models without a price.",
                   [('model="qwen"', 100)], n)
    out += counter("openwebui_chat_completions_without_usage_total", "Completions without token counts.",
                   [('user="u-dave",model="qwen",source="http"', 1)], n)
    out += histogram("openwebui_chat_time_to_first_token_seconds", "Time to first token.",
                     ['model="llama3"', 'model="qwen"'], n, 0.5)
    out += counter("openwebui_auth_total", "Authentication results.",
                   [(f'result="{r}"', k) for r, k in [("verified", 10), ("unverified", 0), ("bad_signature", 1),
                                                       ("expired", 1), ("malformed", 1), ("rejected", 1),
                                                       ("anonymous", 2), ("unknown_api_key", 1)]], n)
    out += gauge("openwebui_scripted_session_last_timestamp_seconds",
                 "Latest scripted session-credential call per user.",
                 [('user="u-bob",auth="jwt",api="messages",model="llama3",client_address="203.0.113.7"',
                   1_790_000_000 + n)])
    out += counter("openwebui_scripted_session_calls_total", "Scripted session-credential calls.",
                   [('user="u-bob",auth="jwt",api="messages"', 3)], n)
    out += gauge("openwebui_api_key_info", "API key fingerprints and their user.", [('key="0123456789ab",user="u-carol"', 1)])
    out += gauge("openwebui_user_info", "User directory (personal data opt-in).",
                 [('user="u-alice",name="Alice",email="alice@example.com",role="user"', 1)])
    out += counter("webui_monitor_tcp_connections_total", "TCP connections seen.", [("", 5)], n)
    out += gauge("webui_monitor_tcp_connections_active", "TCP connections tracked.", [("", 3)])
    out += counter("webui_monitor_tcp_bytes_total", "TCP payload bytes.",
                   [('direction="request"', 5000), ('direction="response"', 90000)], n)
    out += counter("webui_monitor_tcp_packets_total", "TCP packets.",
                   [('direction="request"', 20), ('direction="response"', 80)], n)
    out += counter("webui_monitor_capture_lost_total", "Capture records lost.",
                   [('reason="ring_full"', 0), ('reason="truncated"', 0), ('reason="unparsed"', 0)], n)
    out += counter("webui_monitor_capture_lost_bytes_total", "Capture bytes lost.",
                   [('reason="ring_full"', 0), ('reason="truncated"', 0)], n)
    out += counter("webui_monitor_reassembly_gaps_total", "Stream gaps skipped.", [("", 0)], n)
    out += gauge("webui_monitor_build_info", "Build information.", [('version="0.1.0"', 1)])
    out += gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [("", 42_000_000)])
    return "\n".join(out) + "\n"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/metrics":
            self.send_error(404)
            return
        with _lock:
            n = next(_scrapes)
        body = exposition(n).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(listen: str) -> http.server.ThreadingHTTPServer:
    host, port = listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:9741")
    args = p.parse_args()
    serve(args.listen)
    threading.Event().wait()
