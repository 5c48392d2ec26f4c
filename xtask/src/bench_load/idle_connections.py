"""Idle keep-alive connections for `cargo xtask bench-load`.

Each connection sends one request (GET /api/config), reads the whole answer and then stays
open and silent, as a browser's or a proxy's pooled connection does between requests.
Commands on stdin, one per line:

    open N    open connections until N are open, then print "open N"
    close     close them all and exit

Connections go out from the source address given (one address has about 28,000 ephemeral
ports towards one server port). A process may hold no more descriptors than its hard limit,
which only CAP_SYS_RESOURCE raises: the benchmark runs several clients for large counts.
"""
import argparse
import resource
import socket
import sys

REQUEST = b"GET /api/config HTTP/1.1\r\nHost: openwebui.test\r\nAccept: application/json\r\n\r\n"


def read_answer(sock):
    """Reads one HTTP answer framed by Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection before answering")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        body += chunk


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, help="address:port")
    parser.add_argument("--source", required=True, help="source address")
    args = parser.parse_args()
    host, port = args.server.rsplit(":", 1)

    # As many descriptors as the hard limit allows.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    open_sockets = []
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "open":
            target = int(command[1])
            while len(open_sockets) < target:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind((args.source, 0))
                sock.connect((host, int(port)))
                sock.sendall(REQUEST)
                read_answer(sock)
                open_sockets.append(sock)
            print(f"open {len(open_sockets)}", flush=True)
        elif command[0] == "close":
            break
    for sock in open_sockets:
        sock.close()


if __name__ == "__main__":
    main()
