#!/usr/bin/env python3
"""Does the current process have what webui-monitor needs from the kernel?

Performs, through the raw bpf(2) syscall, each kind of operation the daemon performs:
BTF load, ring-buffer and LRU-hash map creation, loading an XDP and a TC (sched_cls) program
that read packet bytes and write to the ring buffer, and attaching them to an interface as
bpf_links (XDP generic mode, tcx egress). Everything is detached and closed on exit (links
and fds die with the process). Prints one line per operation, exits non-zero if one fails.

Run it with reduced capabilities through check-capabilities.sh; it needs only Python 3.
"""
import ctypes
import errno
import os
import socket
import struct
import sys

SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
libc = ctypes.CDLL(None, use_errno=True)

BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_BTF_LOAD, BPF_LINK_CREATE = 0, 5, 18, 28
MAP_LRU_HASH, MAP_RINGBUF = 9, 27
PROG_SCHED_CLS, PROG_XDP = 3, 6
ATTACH_XDP, ATTACH_TCX_EGRESS = 37, 47
XDP_FLAGS_SKB_MODE = 2
HELPER_RINGBUF_OUTPUT = 130


def bpf(cmd, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 256)
    fd = libc.syscall(SYS_BPF, cmd, buf, 256)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def insn(code, dst=0, src=0, off=0, imm=0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def ld_map_fd(dst, fd) -> bytes:
    # BPF_LD | BPF_DW | BPF_IMM with src = BPF_PSEUDO_MAP_FD, two slots.
    return insn(0x18, dst, 1, 0, fd) + insn(0, 0, 0, 0, 0)


def program(ringbuf_fd: int, data_off: int, end_off: int, verdict: int) -> bytes:
    """if data + 14 <= data_end: ringbuf_output(&ethertype, 8); return verdict."""
    return b"".join(
        [
            insn(0x61, 2, 1, data_off),  # r2 = ctx->data (u32 load)
            insn(0x61, 3, 1, end_off),  # r3 = ctx->data_end
            insn(0xBF, 4, 2),  # r4 = r2
            insn(0x07, 4, 0, 0, 14),  # r4 += 14
            insn(0x2D, 4, 3, 9),  # if r4 > r3 goto out (+9)
            insn(0x69, 5, 2, 12),  # r5 = *(u16 *)(r2 + 12)   ethertype
            insn(0x7B, 10, 5, -8),  # *(u64 *)(r10 - 8) = r5
            *[ld_map_fd(1, ringbuf_fd)],  # r1 = ringbuf (2 slots)
            insn(0xBF, 2, 10),  # r2 = r10
            insn(0x07, 2, 0, 0, -8),  # r2 += -8
            insn(0xB7, 3, 0, 0, 8),  # r3 = 8
            insn(0xB7, 4, 0, 0, 0),  # r4 = 0
            insn(0x85, 0, 0, 0, HELPER_RINGBUF_OUTPUT),
            insn(0xB7, 0, 0, 0, verdict),  # out: r0 = verdict
            insn(0x95),  # exit
        ]
    )


def prog_load(prog_type, insns: bytes, expected_attach=0) -> int:
    code = ctypes.create_string_buffer(insns, len(insns))
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack(
        "<IIQQIIQII16sII",
        prog_type,
        len(insns) // 8,
        ctypes.addressof(code),
        ctypes.addressof(license),
        1,
        len(log),
        ctypes.addressof(log),
        0,
        0,
        b"probe",
        0,
        expected_attach,
    )
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        text = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(e.errno, f"{e.strerror}: {text[-1] if text else 'no verifier log'}")


def btf_blob() -> bytes:
    # One type: `int`, 4 bytes, signed.
    types = struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32)
    strings = b"\0int\0"
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def main() -> int:
    ifname = sys.argv[1] if len(sys.argv) > 1 else "lo"
    ifindex = socket.if_nametoindex(ifname)
    failed = False
    fds = {}

    def step(name, fn):
        nonlocal failed
        try:
            fds[name] = fn()
            print(f"ok    {name}")
        except OSError as e:
            failed = True
            print(f"FAIL  {name}: {errno.errorcode.get(e.errno, e.errno)} {e.strerror}")

    blob = ctypes.create_string_buffer(btf_blob(), len(btf_blob()))
    step("btf_load", lambda: bpf(BPF_BTF_LOAD, struct.pack("<QQIII", ctypes.addressof(blob), 0, len(blob), 0, 0)))
    step("map_create_ringbuf", lambda: bpf(BPF_MAP_CREATE, struct.pack("<IIIII", MAP_RINGBUF, 0, 0, 16 << 20, 0)))
    step("map_create_lru_hash", lambda: bpf(BPF_MAP_CREATE, struct.pack("<IIIII", MAP_LRU_HASH, 40, 64, 65536, 0)))
    ring = fds.get("map_create_ringbuf")
    if ring is None:
        return 1
    # xdp_md: data @0, data_end @4; __sk_buff: data @76, data_end @80.
    step("prog_load_xdp", lambda: prog_load(PROG_XDP, program(ring, 0, 4, 2), ATTACH_XDP))
    step("prog_load_tc", lambda: prog_load(PROG_SCHED_CLS, program(ring, 76, 80, 0), ATTACH_TCX_EGRESS))
    if "prog_load_xdp" in fds:
        step(
            f"attach_xdp_generic_{ifname}",
            lambda: bpf(BPF_LINK_CREATE, struct.pack("<IIII", fds["prog_load_xdp"], ifindex, ATTACH_XDP, XDP_FLAGS_SKB_MODE)),
        )
    if "prog_load_tc" in fds:
        step(
            f"attach_tcx_egress_{ifname}",
            lambda: bpf(BPF_LINK_CREATE, struct.pack("<IIII", fds["prog_load_tc"], ifindex, ATTACH_TCX_EGRESS, 0)),
        )
    step("netlink_route_socket", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).detach())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
