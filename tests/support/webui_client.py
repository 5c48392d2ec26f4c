#!/usr/bin/env python3
"""A web-UI-shaped client for webui-monitor's end-to-end tests: what Chromium does in
fixtures/openwebui/browser.pcap, through the TLS-terminating proxy.

1. opens `/ws/socket.io/?EIO=4&transport=websocket` with permessage-deflate (client window 12,
   context takeover), connects the Socket.IO namespace and sends `user-join` with the JWT;
2. sends each prompt as a web-UI completion (`session_id` = the socket's sid, `id` = a new
   assistant message id, cookie + Bearer, browser headers) and waits for the answer's
   `chat:completion` `done` event on the socket;
3. closes the socket (1001, as a browser tab does) and prints one JSON line:
   {"sid": …, "answers": [{"message_id", "prompt_tokens", "completion_tokens"}, …]}.

The certificate is the test's own self-signed one: verification is off on purpose.
"""
import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import struct
import uuid
import zlib

BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")


class Socket:
    def __init__(self, host, port, token):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((host, port), timeout=30)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Connection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Origin: https://{host}:{port}\r\n"
            f"User-Agent: {BROWSER_UA}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"upgrade refused: {head.splitlines()[0]!r}")
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -12)
        self.inflater = zlib.decompressobj(-15)
        self.token = token

    def recv_exact(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_message(self):
        head = self.recv_exact(2)
        opcode, rsv1, length = head[0] & 0x0F, head[0] & 0x40, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.recv_exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.recv_exact(8))[0]
        data = self.recv_exact(length)
        if rsv1:
            data = self.inflater.decompress(data + b"\x00\x00\xff\xff")
        return opcode, data.decode(errors="replace")

    def send_frame(self, opcode, payload, compressed):
        first = 0x80 | opcode | (0x40 if compressed else 0)
        mask = os.urandom(4)
        header = bytes([first])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_text(self, text):
        payload = self.deflater.compress(text.encode()) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.send_frame(0x1, payload[:-4], compressed=True)

    def close(self):
        self.send_frame(0x8, struct.pack("!H", 1001), compressed=False)
        try:
            while True:
                opcode, _ = self.read_message()
                if opcode == 0x8:
                    break
        except (EOFError, OSError):
            pass
        self.sock.close()


def completion(host, port, token, body):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=30)
    conn.request("POST", "/api/chat/completions", json.dumps(body), {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "Cookie": f"token={token}",
        "Origin": f"https://{host}:{port}",
        "User-Agent": BROWSER_UA,
        "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Mode": "cors",
        "Sec-Fetch-Dest": "empty",
        "Accept-Encoding": "gzip",
    })
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"completion answered {response.status}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", required=True, help="file holding the session JWT")
    parser.add_argument("--model", default="mock-gpt")
    parser.add_argument("prompts", nargs="+")
    args = parser.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()

    ws = Socket(args.host, args.port, token)
    ws.read_message()  # Engine.IO open
    ws.send_text("40")
    sid = None
    while sid is None:
        _, text = ws.read_message()
        if text.startswith("40"):
            sid = json.loads(text[2:])["sid"]
    ws.send_text("421" + json.dumps(["user-join", {"auth": {"token": token}}]))

    answers, chat_id = [], None
    for prompt in args.prompts:
        message_id = str(uuid.uuid4())
        body = {
            "stream": True, "model": args.model, "params": {}, "session_id": sid,
            "id": message_id, "user_message": {"content": prompt},
        }
        if chat_id:
            body["chat_id"] = chat_id
        completion(args.host, args.port, token, body)
        while True:
            _, text = ws.read_message()
            if not text.startswith("42"):
                continue
            name, payload = json.loads(text[2:])
            data = payload.get("data", {}).get("data", {})
            if name == "events" and payload.get("message_id") == message_id and data.get("done"):
                chat_id = payload.get("chat_id")
                usage = data.get("usage") or {}
                answers.append({"message_id": message_id, **{
                    k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")}})
                break
    ws.close()
    print(json.dumps({"sid": sid, "answers": answers}))


if __name__ == "__main__":
    main()
