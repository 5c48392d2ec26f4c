//! The one parser both hooks share: Ethernet (up to two 802.1Q/802.1ad tags), IPv4 (options via
//! IHL) or IPv6, TCP (options via data offset).
//!
//! The monitored-port check comes as early as possible, so traffic on other ports costs a few
//! loads and compares.
use core::ptr::read_volatile;

use webui_monitor_common::{
    ConnKey, DIRECTION_REQUEST, DIRECTION_RESPONSE, FAMILY_IPV4, FAMILY_IPV6, MAX_PORTS,
};

use crate::{CONFIG, packet::Packet, zeroed};

const ETH_HEADER: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
/// Extension headers walked before giving up (counted as unparsed if TCP may follow).
const MAX_IPV6_EXTENSION_HEADERS: usize = 4;

#[inline(always)]
fn is_ipv6_extension(next_header: u8) -> bool {
    matches!(
        next_header,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT | IPPROTO_DSTOPTS
    )
}
const TCP_HEADER: usize = 20;

/// A TCP segment of a monitored connection.
pub struct Segment {
    pub key: ConnKey,
    pub direction: u8,
    pub seq: u32,
    pub tcp_flags: u8,
    /// Offset of the first payload byte in the packet.
    pub payload_offset: u32,
    pub payload_len: u32,
}

pub enum Parsed {
    /// Not TCP, or TCP on ports nobody monitors.
    Ignored,
    /// Headers truncated or malformed, or a form the parser does not read (see
    /// `LossReason::Unparsed`). The program still passes the packet.
    Unparsed,
    Monitored(Segment),
}

#[inline(always)]
fn be16(p: *const u8) -> u16 {
    // SAFETY: callers pass pointers checked by `Packet::ptr_at` for at least 2 bytes.
    unsafe { u16::from_be_bytes([*p, *p.add(1)]) }
}

/// Four packet bytes as an in-memory word (order preserved), without an unaligned load.
#[inline(always)]
fn word(p: *const u8) -> u32 {
    // SAFETY: callers pass pointers checked by `Packet::ptr_at` for at least 4 bytes.
    unsafe { u32::from_ne_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]) }
}

#[inline(always)]
fn be32(p: *const u8) -> u32 {
    // SAFETY: callers pass pointers checked by `Packet::ptr_at` for at least 4 bytes.
    unsafe { u32::from_be_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]) }
}

/// Which endpoint is the server: `Some(DIRECTION_REQUEST)` if the destination port is
/// monitored, `Some(DIRECTION_RESPONSE)` if only the source port is.
#[inline(always)]
fn direction_of(src_port: u16, dst_port: u16) -> Option<u8> {
    // SAFETY: CONFIG is plain data in .rodata; volatile keeps the compiler from folding the
    // zero-initialised value the loader overwrites before load.
    let count = unsafe { read_volatile(&raw const CONFIG.port_count) } as usize;
    let mut response = false;
    for i in 0..MAX_PORTS {
        if i >= count {
            break;
        }
        let port = unsafe { read_volatile(&raw const CONFIG.ports[i]) };
        if port == dst_port {
            return Some(DIRECTION_REQUEST);
        }
        response |= port == src_port;
    }
    if response {
        Some(DIRECTION_RESPONSE)
    } else {
        None
    }
}

#[inline(always)]
pub fn parse<P: Packet>(pkt: &P) -> Parsed {
    let Some(ethertype) = pkt.ptr_at::<[u8; 2]>(12) else {
        return Parsed::Ignored;
    };
    let mut ethertype = be16(ethertype.cast());
    let mut offset = ETH_HEADER;
    // Up to two tags: 802.1ad (outer) + 802.1Q (inner). The TC hook usually sees none, because
    // the stack keeps the tag in skb metadata.
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let Some(tag) = pkt.ptr_at::<[u8; 4]>(offset) else {
            return Parsed::Unparsed;
        };
        ethertype = be16(unsafe { (tag as *const u8).add(2) });
        offset += 4;
    }

    // IP payload length according to the IP header; 0 means "use the frame length" (BIG TCP).
    let ip_payload_len: u32;
    let l4_offset: usize;
    let family: u8;
    let ip_header: *const u8;
    match ethertype {
        ETH_P_IPV4 => {
            let Some(ip) = pkt.ptr_at::<[u8; 20]>(offset) else {
                return Parsed::Unparsed;
            };
            let ip = ip as *const u8;
            let (version_ihl, protocol) = unsafe { (*ip, *ip.add(9)) };
            if protocol != IPPROTO_TCP {
                return Parsed::Ignored;
            }
            let ihl = ((version_ihl & 0x0f) as usize) * 4;
            if version_ihl >> 4 != 4 || ihl < 20 {
                return Parsed::Unparsed;
            }
            // A fragment's ports are unknown (or absent): it cannot be attributed.
            if be16(unsafe { ip.add(6) }) & 0x3fff != 0 {
                return Parsed::Unparsed;
            }
            let total_len = be16(unsafe { ip.add(2) }) as u32;
            if total_len != 0 && total_len < ihl as u32 {
                return Parsed::Unparsed;
            }
            ip_payload_len = if total_len == 0 {
                0
            } else {
                total_len - ihl as u32
            };
            family = FAMILY_IPV4;
            ip_header = ip;
            l4_offset = offset + ihl;
        }
        ETH_P_IPV6 => {
            let Some(ip) = pkt.ptr_at::<[u8; 40]>(offset) else {
                return Parsed::Unparsed;
            };
            let ip = ip as *const u8;
            if unsafe { *ip } >> 4 != 6 {
                return Parsed::Unparsed;
            }
            // Walk the extension headers that may precede TCP (ICMPv6 such as MLD often
            // carries a hop-by-hop header: it must not count as unparsed).
            let mut next_header = unsafe { *ip.add(6) };
            let mut l4 = offset + 40;
            for _ in 0..MAX_IPV6_EXTENSION_HEADERS {
                let length = match next_header {
                    IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                        let Some(ext) = pkt.ptr_at::<[u8; 2]>(l4) else {
                            return Parsed::Unparsed;
                        };
                        let ext = ext as *const u8;
                        next_header = unsafe { *ext };
                        (unsafe { *ext.add(1) } as usize + 1) * 8
                    }
                    IPPROTO_FRAGMENT => {
                        let Some(ext) = pkt.ptr_at::<[u8; 4]>(l4) else {
                            return Parsed::Unparsed;
                        };
                        let ext = ext as *const u8;
                        next_header = unsafe { *ext };
                        // A fragment's TCP ports are unknown (or absent).
                        if next_header == IPPROTO_TCP {
                            return Parsed::Unparsed;
                        }
                        8
                    }
                    _ => break,
                };
                l4 += length;
            }
            if next_header != IPPROTO_TCP {
                return if is_ipv6_extension(next_header) {
                    Parsed::Unparsed
                } else {
                    Parsed::Ignored
                };
            }
            let payload_len = be16(unsafe { ip.add(4) }) as u32;
            let extensions = (l4 - offset - 40) as u32;
            if payload_len != 0 && payload_len < extensions {
                return Parsed::Unparsed;
            }
            ip_payload_len = if payload_len == 0 {
                0
            } else {
                payload_len - extensions
            };
            family = FAMILY_IPV6;
            ip_header = ip;
            l4_offset = l4;
        }
        // A third tag: beyond what the parser reads.
        ETH_P_8021Q | ETH_P_8021AD => return Parsed::Unparsed,
        _ => return Parsed::Ignored,
    }

    let Some(tcp) = pkt.ptr_at::<[u8; TCP_HEADER]>(l4_offset) else {
        return Parsed::Unparsed;
    };
    let tcp = tcp as *const u8;
    let src_port = be16(tcp);
    let dst_port = be16(unsafe { tcp.add(2) });
    let Some(direction) = direction_of(src_port, dst_port) else {
        return Parsed::Ignored;
    };

    let total_len = pkt.total_len();
    if (l4_offset as u32) > total_len {
        return Parsed::Unparsed;
    }
    // Ethernet pads short frames: the IP length, when present, is authoritative.
    let frame_payload_len = total_len - l4_offset as u32;
    let l4_len = if ip_payload_len == 0 {
        frame_payload_len
    } else if ip_payload_len > frame_payload_len {
        return Parsed::Unparsed;
    } else {
        ip_payload_len
    };
    let data_offset = ((unsafe { *tcp.add(12) } >> 4) as u32) * 4;
    if (data_offset as usize) < TCP_HEADER || data_offset > l4_len {
        return Parsed::Unparsed;
    }

    // Built only now: traffic on other ports never pays for it. Word-wise: a byte-wise or
    // variable-length copy compiles to a call into a byte loop on BPF.
    let mut key: ConnKey = zeroed();
    key.family = family;
    // SAFETY: `ip_header` was bounds-checked for the whole fixed header of its family.
    unsafe {
        let (src, dst) = if family == FAMILY_IPV4 {
            (ip_header.add(12), ip_header.add(16))
        } else {
            (ip_header.add(8), ip_header.add(24))
        };
        let (client, server) = if direction == DIRECTION_REQUEST {
            (src, dst)
        } else {
            (dst, src)
        };
        let words = if family == FAMILY_IPV4 { 1 } else { 4 };
        let client_words = key.client_addr.as_mut_ptr().cast::<u32>();
        let server_words = key.server_addr.as_mut_ptr().cast::<u32>();
        for i in 0..4 {
            if i >= words {
                break;
            }
            // ConnKey is 8-byte aligned and the address fields start at 0 and 16.
            client_words.add(i).write(word(client.add(4 * i)));
            server_words.add(i).write(word(server.add(4 * i)));
        }
    }
    if direction == DIRECTION_REQUEST {
        key.client_port = src_port;
        key.server_port = dst_port;
    } else {
        key.client_port = dst_port;
        key.server_port = src_port;
    }
    Parsed::Monitored(Segment {
        key,
        direction,
        seq: be32(unsafe { tcp.add(4) }),
        tcp_flags: unsafe { *tcp.add(13) },
        payload_offset: l4_offset as u32 + data_offset,
        payload_len: l4_len - data_offset,
    })
}
