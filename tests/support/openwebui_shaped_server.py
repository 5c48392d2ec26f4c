#!/usr/bin/env python3
"""An Open WebUI-shaped HTTP/1.1 server for webui-monitor's end-to-end tests.

It reproduces what the monitor must understand of Open WebUI 0.12.4 (see
fixtures/openwebui/README.md), with the Python standard library only:

* `POST /api/v1/auths/signin` checks e-mail/password and answers an HS256 session JWT (same
  claims as 0.12.4) as JSON and as the `token` cookie;
* `POST /api/chat/completions` authenticates like Open WebUI (Bearer > `token` cookie >
  `x-api-key`; `sk-` keys checked against the `api_key` table of a copy of the fixture
  database), then answers
  - `{"status":true,"task_ids":[…],"chat_id":…}` when the body has a non-null `session_id` (the
    web UI), and streams the answer and its usage over that session's socket.io WebSocket;
  - a two-chunks-per-event SSE stream with a usage-only chunk and `[DONE]` when `stream` is true;
  - an OpenAI JSON completion with `usage` otherwise;
  - for model `mock-nousage`, the same without any usage (a backend that reports none, or a
    stream requested without `stream_options.include_usage`);
* `POST /ollama/api/chat` and `/ollama/api/generate` (Open WebUI's proxy to Ollama's native
  API) authenticate the same way and answer as Ollama does: an `application/x-ndjson` stream,
  one line per word and a last `"done":true` line with `prompt_eval_count` and `eval_count`,
  unless the body says `"stream": false` (Ollama streams by default), then one such JSON object;
* `POST /api/v1/messages` (Anthropic Messages) authenticates the same way and answers Anthropic's
  JSON message with `usage.input_tokens` (words of the prompt), `cache_read_input_tokens`
  (`MESSAGES_CACHE_READ`, not part of `input_tokens`, as Anthropic reports it) and
  `output_tokens` (words of the reply);
* `POST /openai/responses` (OpenAI Responses) authenticates the same way and answers, with
  `"stream": true`, the SSE events `response.created`, `response.output_text.delta` per word and
  `response.completed` whose `response.usage` has `input_tokens` (words of `input`, of which
  `input_tokens_details.cached_tokens` = `RESPONSES_CACHED`), `output_tokens` (words of the reply
  plus `RESPONSES_REASONING`, the `output_tokens_details.reasoning_tokens`); else the response
  object as JSON;
* `POST /api/embeddings` authenticates the same way and answers OpenAI's embedding list with
  `usage.prompt_tokens` (words of `input`);
* `GET /ws/socket.io/?EIO=4&transport=websocket` upgrades to a WebSocket with
  permessage-deflate (window bits 12, context takeover), speaking Engine.IO 4 / Socket.IO;
* anything else answers a small JSON; bodies over 500 bytes are gzip-compressed when the client
  accepts it (Open WebUI's compression middleware does the same with zstd/br/gzip).

Usage is counted like the fixtures' mock backend: whitespace-separated words.

    openwebui_shaped_server.py --listen 10.0.0.2:8080 --db webui.db --passwords alice@example.com=…

The secret comes from WEBUI_SECRET_KEY in the environment, as Open WebUI takes it.
"""
import argparse
import base64
import gzip
import hashlib
import hmac
import itertools
import json
import os
import socketserver
import sqlite3
import struct
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("WEBUI_SECRET_KEY", "").encode()
JWT_LIFETIME = 2_419_200  # JWT_EXPIRES_IN=4w, as in the fixtures
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"

# Fixed parts of the Messages and Responses usage (see the module documentation).
MESSAGES_CACHE_READ = 4
RESPONSES_CACHED = 2
RESPONSES_REASONING = 5

# Socket.IO session id -> WebSocketSession, for web-UI completions.
SESSIONS = {}
SESSIONS_LOCK = threading.Lock()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(user_id: str, now: int) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "id": user_id,
        "typ": "session",
        "auth_method": "password",
        "auth_time": now,
        "session_stamp": uuid.uuid4().hex,
        "mfa_verified": False,
        "exp": now + JWT_LIFETIME,
        "jti": str(uuid.uuid4()),
        "iat": now,
    }
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = b64url(hmac.new(SECRET, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def verify_jwt(token: str):
    """Returns the user id of a valid token, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        expected = hmac.new(SECRET, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, b64url_decode(parts[2])):
            return None
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or claims.get("exp", 0) <= time.time():
        return None
    return claims.get("id")


class Database:
    def __init__(self, path: str):
        self.path = path

    def query(self, sql: str, args):
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            return con.execute(sql, args).fetchone()
        finally:
            con.close()

    def user_by_key(self, key: str):
        row = self.query('SELECT user_id FROM api_key WHERE "key" = ?', (key,))
        return row[0] if row else None

    def user_by_email(self, email: str):
        row = self.query("SELECT id FROM user WHERE email = ?", (email,))
        return row[0] if row else None


def words(text: str) -> int:
    return len(text.split())


def answer_for(body: dict) -> tuple[str, int]:
    messages = body.get("messages") or []
    prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    if not messages:
        prompt = str((body.get("user_message") or {}).get("content", "web ui message"))
    last = prompt
    reply = f'Shaped reply from {body.get("model")}. You said: "{last}". Deterministic.'
    return reply, words(prompt)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like uvicorn
    server_version = "uvicorn"
    sys_version = ""

    def log_message(self, fmt, *args):  # the test greps every output for secrets: stay quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, obj, extra_headers=()):
        body = json.dumps(obj, separators=(",", ":")).encode()
        headers = [("content-type", "application/json")]
        if len(body) > 500 and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body)
            headers.append(("content-encoding", "gzip"))
            headers.append(("vary", "Accept-Encoding"))
        self.send_response(status)
        for name, value in list(headers) + list(extra_headers):
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def credential_user(self):
        """Open WebUI's order: Bearer > token cookie > x-api-key. Returns (user_id or None)."""
        token = None
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer ") and auth[7:].strip():
            token = auth[7:].strip()
        if token is None:
            for cookie_header in self.headers.get_all("Cookie") or []:
                for part in cookie_header.split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == "token":
                        token = value
        if token is None:
            token = self.headers.get("x-api-key")
        if not token:
            return None
        if token.startswith("sk-"):
            return self.server.db.user_by_key(token)
        return verify_jwt(token)

    # -- routes -----------------------------------------------------------------------------
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/ws/socket.io/" and (self.headers.get("Upgrade") or "").lower() == "websocket":
            return self.websocket()
        if path == "/api/models":
            if self.credential_user() is None:
                return self.send_json(401, {"detail": "Not authenticated"})
            return self.send_json(200, {"data": [{"id": "mock-gpt", "object": "model"}]})
        if path.startswith("/_app/"):
            return self.send_json(200, {"asset": path, "filler": "x" * 2000})
        if path.startswith("/static/"):
            # A static asset nothing reads: `?bytes=N` of it, written in 64 KiB pieces
            # `?pause_ms=M` apart (a client on a slower link); with its length, or with
            # `?chunked=1` as chunked transfer coding, one chunk per piece with its size line
            # in the same write (as Starlette streams a compressed response).
            query = dict(p.split("=", 1) for p in (self.path.split("?", 1) + [""])[1].split("&") if "=" in p)
            size = int(query.get("bytes", "4096"))
            chunked = query.get("chunked") == "1"
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            if chunked:
                self.send_header("transfer-encoding", "chunked")
            else:
                self.send_header("content-length", str(size))
            self.end_headers()
            piece = b"abcdefghijklmnopqrstuvwxyz012345" * 2048
            pause = int(query.get("pause_ms", "0")) / 1000
            left = size
            while left > 0:
                data = piece[: min(left, len(piece))]
                if chunked:
                    data = b"%x\r\n" % len(data) + data + b"\r\n"
                self.wfile.write(data)
                self.wfile.flush()
                left -= len(piece)
                if pause and left > 0:
                    time.sleep(pause)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            return None
        return self.send_json(200, {"status": True})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        raw = self.read_body()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self.send_json(400, {"detail": "bad json"})
        if path == "/api/v1/auths/signin":
            return self.signin(body)
        if path == "/api/chat/completions":
            return self.chat_completions(body)
        if path in ("/ollama/api/chat", "/ollama/api/generate"):
            return self.ollama_completion(path, body)
        if path == "/api/embeddings":
            return self.embeddings(body)
        if path == "/api/v1/messages":
            return self.anthropic_messages(body)
        if path == "/openai/responses":
            return self.responses_api(body)
        return self.send_json(200, {"status": True})

    def signin(self, body):
        password = self.server.passwords.get(body.get("email"))
        if password is None or not hmac.compare_digest(password, str(body.get("password", ""))):
            return self.send_json(400, {"detail": "The email or password provided is incorrect."})
        user_id = self.server.db.user_by_email(body["email"])
        token = make_jwt(user_id, int(time.time()))
        self.send_json(
            200,
            {"id": user_id, "token": token, "token_type": "Bearer"},
            [("set-cookie", f"token={token}; HttpOnly; Path=/; SameSite=lax")],
        )

    def chat_completions(self, body):
        user_id = self.credential_user()
        if user_id is None:
            return self.send_json(401, {"detail": "Not authenticated"})
        model = body.get("model", "")
        reply, prompt_tokens = answer_for(body)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": words(reply),
            "total_tokens": prompt_tokens + words(reply),
        }
        if model == "mock-nousage":
            usage = None
        if body.get("session_id") is not None:
            return self.webui_completion(body, model, reply, usage)
        if body.get("stream"):
            return self.sse_completion(model, reply, usage)
        self.send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                **({"usage": usage} if usage is not None else {}),
            },
        )

    def sse_completion(self, model, reply, usage):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-shaped", "object": "chat.completion.chunk", "model": model}
        events = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant"}}])]
        for word in reply.split():
            events.append(dict(base, choices=[{"index": 0, "delta": {"content": word + " "}}]))
        events.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if usage is not None:
            events.append(dict(base, choices=[], usage=usage))
        datas = [json.dumps(e, separators=(",", ":")) for e in events] + ["[DONE]"]
        for data in datas:
            # Open WebUI writes each event as two chunks: "data: …\n", then "\n".
            for piece in (f"data: {data}\n".encode(), b"\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def anthropic_messages(self, body):
        if self.credential_user() is None:
            return self.send_json(401, {"type": "error", "error": {"type": "authentication_error"}})
        model = body.get("model", "")
        reply, prompt_tokens = answer_for(body)
        self.send_json(200, {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": MESSAGES_CACHE_READ,
                "output_tokens": words(reply),
            },
        })

    def responses_api(self, body):  # not `responses`: the base class keeps its status table there
        if self.credential_user() is None:
            return self.send_json(401, {"detail": "Not authenticated"})
        model = body.get("model", "")
        text = body.get("input", "")
        if isinstance(text, list):
            text = " ".join(str(m.get("content", "")) for m in text if isinstance(m, dict))
        reply, prompt_tokens = answer_for({"model": model, "messages": [{"content": text}]})
        usage = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": RESPONSES_CACHED},
            "output_tokens": words(reply) + RESPONSES_REASONING,
            "output_tokens_details": {"reasoning_tokens": RESPONSES_REASONING},
            "total_tokens": prompt_tokens + words(reply) + RESPONSES_REASONING,
        }
        response = {
            "id": f"resp_{uuid.uuid4().hex[:24]}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [{"type": "message", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": reply}]}],
            "usage": usage,
        }
        if not body.get("stream"):
            return self.send_json(200, response)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        created = dict(response, status="in_progress", output=[], usage=None)
        events = [("response.created", {"type": "response.created", "response": created})]
        for word in reply.split():
            events.append(("response.output_text.delta",
                           {"type": "response.output_text.delta", "delta": word + " "}))
        events.append(("response.completed", {"type": "response.completed", "response": response}))
        for seq, (name, data) in enumerate(events):
            data = dict(data, sequence_number=seq)
            piece = f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def embeddings(self, body):
        if self.credential_user() is None:
            return self.send_json(401, {"detail": "Not authenticated"})
        texts = body.get("input", "")
        texts = texts if isinstance(texts, list) else [texts]
        tokens = sum(words(str(t)) for t in texts)
        self.send_json(200, {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": [0.125, -0.5, 0.25]}
                     for i in range(len(texts))],
            "model": body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    def ollama_completion(self, path, body):
        user_id = self.credential_user()
        if user_id is None:
            return self.send_json(401, {"detail": "Not authenticated"})
        model = body.get("model", "")
        chat = path.endswith("/chat")
        if not chat:
            body = dict(body, messages=[{"content": body.get("prompt", "")}])
        reply, prompt_tokens = answer_for(body)

        def line(text, done):
            out = {"model": model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
            if chat:
                out["message"] = {"role": "assistant", "content": text}
            else:
                out["response"] = text
            out["done"] = done
            if done:
                out.update(done_reason="stop", total_duration=1_000_000,
                           prompt_eval_count=prompt_tokens, eval_count=words(reply))
            return out

        if body.get("stream") is False:
            return self.send_json(200, line(reply, True))
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        pieces = [line(word + " ", False) for word in reply.split()] + [line("", True)]
        for piece in pieces:
            data = json.dumps(piece, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def webui_completion(self, body, model, reply, usage):
        chat_id = body.get("chat_id") or str(uuid.uuid4())
        message_id = body.get("id") or str(uuid.uuid4())
        self.send_json(200, {"status": True, "task_ids": [str(uuid.uuid4())], "chat_id": chat_id})
        with SESSIONS_LOCK:
            session = SESSIONS.get(body["session_id"])
        if session is None:
            return
        content = ""
        for word in reply.split():
            content += word + " "
            session.emit_event(chat_id, message_id, {"type": "chat:completion",
                                                     "data": {"content": content}})
        done = {"done": True, "content": content, "model": model}
        if usage is not None:
            session.emit_event(chat_id, message_id, {"type": "chat:completion",
                                                     "data": {"usage": usage}})
            done["usage"] = usage
        session.emit_event(chat_id, message_id, {"type": "chat:completion", "data": done})

    # -- WebSocket (RFC 6455 + RFC 7692 permessage-deflate) + Engine.IO 4 / Socket.IO ------
    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        )
        self.end_headers()
        self.wfile.flush()
        WebSocketSession(self.rfile, self.wfile).serve()
        self.close_connection = True


class WebSocketSession:
    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -12)
        self.inflater = zlib.decompressobj(-15)
        self.write_lock = threading.Lock()
        self.sid = base64.urlsafe_b64encode(os.urandom(15)).decode()[:20]

    def send_text(self, text: str):
        payload = self.deflater.compress(text.encode()) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4]  # RFC 7692 7.2.1: drop the trailing 00 00 ff ff
        header = bytes([0xC1])  # FIN + RSV1 (compressed) + text
        if len(payload) < 126:
            header += bytes([len(payload)])
        elif len(payload) < 65536:
            header += bytes([126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([127]) + struct.pack("!Q", len(payload))
        with self.write_lock:
            self.wfile.write(header + payload)
            self.wfile.flush()

    def emit_event(self, chat_id, message_id, data):
        self.send_text("42" + json.dumps(
            ["events", {"chat_id": chat_id, "message_id": message_id, "data": data}],
            separators=(",", ":")))

    def read_frame(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        opcode, rsv1 = head[0] & 0x0F, head[0] & 0x40
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.rfile.read(8))[0]
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
        if rsv1:
            data = self.inflater.decompress(data + b"\x00\x00\xff\xff")
        return opcode, data

    def serve(self):
        self.send_text('0{"sid":"%s","upgrades":[],"pingTimeout":20000,"pingInterval":25000}'
                       % self.sid[::-1])
        try:
            while True:
                frame = self.read_frame()
                if frame is None or frame[0] == 8:
                    with self.write_lock:
                        self.wfile.write(bytes([0x88, 2]) + struct.pack("!H", 1000))
                        self.wfile.flush()
                    return
                opcode, data = frame
                text = data.decode(errors="replace")
                if text == "40":
                    with SESSIONS_LOCK:
                        SESSIONS[self.sid] = self
                    self.send_text('40{"sid":"%s"}' % self.sid)
                elif text.startswith("42"):
                    ack_id = "".join(itertools.takewhile(str.isdigit, text[2:]))
                    event = json.loads(text[2 + len(ack_id):])
                    if event and event[0] == "user-join":
                        user = verify_jwt(((event[1] or {}).get("auth") or {}).get("token", ""))
                        self.send_text(f"43{ack_id}" + json.dumps([{"id": user}]))
        finally:
            with SESSIONS_LOCK:
                SESSIONS.pop(self.sid, None)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--db", required=True, help="copy of Open WebUI's webui.db")
    parser.add_argument("--passwords", default="", help="file of email=password lines")
    args = parser.parse_args()
    if not SECRET:
        sys.exit("WEBUI_SECRET_KEY must be set in the environment")
    host, port = args.listen.rsplit(":", 1)
    server = Server((host, int(port)), Handler)
    server.db = Database(args.db)
    server.passwords = {}
    if args.passwords:
        with open(args.passwords) as f:
            for line in f:
                email, _, password = line.strip().partition("=")
                if email:
                    server.passwords[email] = password
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
