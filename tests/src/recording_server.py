"""A raw HTTP/1.1 server for the live capture tests.

It records, per client port, exactly the bytes its socket received (<port>.req) and sent
(<port>.resp), so a test can compare them with what the kernel capture delivered.
GET /bytes/N answers N bytes of the pattern i % 251; any other request gets "ok".
One request per connection, then the server closes.
"""
import os
import socket
import sys

addr, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((addr, port))
server.listen(16)
open(os.path.join(outdir, "ready"), "w").close()
PATTERN = bytes(range(251))

while True:
    conn, peer = server.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    path = head.split(b" ")[1] if b" " in head else b"/"
    if path.startswith(b"/bytes/"):
        size = int(path.rsplit(b"/", 1)[1])
        payload = (PATTERN * (size // len(PATTERN) + 1))[:size]
    else:
        payload = b"ok"
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(payload)
        + payload
    )
    conn.sendall(response)
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
    conn.close()
    with open(os.path.join(outdir, "%d.req" % peer[1]), "wb") as f:
        f.write(head + b"\r\n\r\n" + body)
    with open(os.path.join(outdir, "%d.resp" % peer[1]), "wb") as f:
        f.write(response)
