//! The one parser both hooks share: Ethernet (up to [`vlan::MAX_TAGS`] 802.1Q/802.1ad tags),
//! IPv4 (options skipped by the header length) or IPv6 (up to
//! [`ipv6::MAX_EXTENSION_HEADERS`] extension headers), TCP (options skipped by the data
//! offset). The layouts, limits and the order of the decisions are defined once in
//! `webui_monitor_common::wire`, which the replay dissector follows too.
//!
//! The monitored-port check comes as early as that order allows, so traffic on other ports
//! costs a few loads and compares.
use core::ptr::read_volatile;

use webui_monitor_common::{
    ConnKey, DIRECTION_REQUEST, DIRECTION_RESPONSE, FAMILY_IPV4, FAMILY_IPV6, MAX_PORTS,
    wire::{
        Field, ethernet,
        ipv4::{self, field as ip4},
        ipv6::{self, Extension, extension_field, field as ip6},
        protocol,
        tcp::{self, field as tcpf},
        vlan,
    },
};

use crate::{CONFIG, packet::Packet, zeroed};

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

/// Which endpoint is the server (`tcp::server`): `Some(DIRECTION_REQUEST)` if the destination
/// port is monitored, `Some(DIRECTION_RESPONSE)` if only the source port is. The loop stops at
/// the destination's port: tracking both ports through all 16 slots multiplies the states
/// the verifier walks past its limit.
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

/// The big-endian `u16` at `field` of the header at `header`.
#[inline(always)]
fn field16(header: *const u8, field: Field) -> u16 {
    be16(unsafe { header.add(field.start) })
}

/// The byte at `at` of the header at `header`.
#[inline(always)]
fn byte(header: *const u8, at: usize) -> u8 {
    // SAFETY: callers pass headers checked by `Packet::ptr_at` for more than `at` bytes.
    unsafe { *header.add(at) }
}

#[inline(always)]
pub fn parse<P: Packet>(pkt: &P) -> Parsed {
    let Some(ethertype) = pkt.ptr_at::<[u8; 2]>(ethernet::field::ETHERTYPE.start) else {
        return Parsed::Ignored;
    };
    let mut ethertype = be16(ethertype.cast());
    let mut offset = ethernet::HEADER_LEN;
    for _ in 0..vlan::MAX_TAGS {
        if !ethernet::is_tag(ethertype) {
            break;
        }
        let Some(tag) = pkt.ptr_at::<[u8; vlan::TAG_LEN]>(offset) else {
            return Parsed::Unparsed;
        };
        ethertype = field16(tag.cast(), vlan::field::ETHERTYPE);
        offset += vlan::TAG_LEN;
    }

    // IP payload length according to the IP header; 0 means "use the frame length" (BIG TCP).
    let ip_payload_len: u32;
    let l4_offset: usize;
    let family: u8;
    let ip_header: *const u8;
    match ethertype {
        ethernet::ethertype::IPV4 => {
            let Some(ip) = pkt.ptr_at::<[u8; ipv4::MIN_HEADER_LEN]>(offset) else {
                return Parsed::Unparsed;
            };
            let ip = ip as *const u8;
            let version_ihl = byte(ip, ip4::VERSION_IHL);
            if byte(ip, ip4::PROTOCOL) != protocol::TCP {
                return Parsed::Ignored;
            }
            let ihl = ipv4::header_len(version_ihl);
            if ipv4::version(version_ihl) != ipv4::VERSION || ihl < ipv4::MIN_HEADER_LEN {
                return Parsed::Unparsed;
            }
            if ipv4::is_fragment(field16(ip, ip4::FLAGS_FRAGMENT)) {
                return Parsed::Unparsed;
            }
            let total_len = field16(ip, ip4::TOTAL_LEN) as u32;
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
        ethernet::ethertype::IPV6 => {
            let Some(ip) = pkt.ptr_at::<[u8; ipv6::HEADER_LEN]>(offset) else {
                return Parsed::Unparsed;
            };
            let ip = ip as *const u8;
            if byte(ip, ip6::VERSION) >> 4 != ipv6::VERSION {
                return Parsed::Unparsed;
            }
            // ICMPv6 such as MLD often carries a hop-by-hop header: it must not count as
            // unparsed, so the walk tells TCP from the rest.
            let mut next_header = byte(ip, ip6::NEXT_HEADER);
            let mut l4 = offset + ipv6::HEADER_LEN;
            for _ in 0..ipv6::MAX_EXTENSION_HEADERS {
                let Some(kind) = ipv6::extension(next_header) else {
                    break;
                };
                let Some(ext) = pkt.ptr_at::<[u8; ipv6::EXTENSION_READ_LEN]>(l4) else {
                    return Parsed::Unparsed;
                };
                let ext = ext as *const u8;
                next_header = byte(ext, extension_field::NEXT_HEADER);
                if kind == Extension::Fragment {
                    // A fragment's ports are unknown (or absent).
                    return if next_header == protocol::TCP || ipv6::extension(next_header).is_some()
                    {
                        Parsed::Unparsed
                    } else {
                        Parsed::Ignored
                    };
                }
                l4 += kind.len(byte(ext, extension_field::LENGTH));
            }
            if next_header != protocol::TCP {
                return if ipv6::extension(next_header).is_some() {
                    Parsed::Unparsed
                } else {
                    Parsed::Ignored
                };
            }
            let payload_len = field16(ip, ip6::PAYLOAD_LEN) as u32;
            let extensions = (l4 - offset - ipv6::HEADER_LEN) as u32;
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
        // One tag more than the parser unwraps.
        ethernet::ethertype::VLAN | ethernet::ethertype::QINQ => return Parsed::Unparsed,
        _ => return Parsed::Ignored,
    }

    let Some(tcp) = pkt.ptr_at::<[u8; tcp::MIN_HEADER_LEN]>(l4_offset) else {
        return Parsed::Unparsed;
    };
    let tcp = tcp as *const u8;
    let src_port = field16(tcp, tcpf::SOURCE_PORT);
    let dst_port = field16(tcp, tcpf::DESTINATION_PORT);
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
    let data_offset = tcp::header_len(byte(tcp, tcpf::DATA_OFFSET)) as u32;
    if (data_offset as usize) < tcp::MIN_HEADER_LEN || data_offset > l4_len {
        return Parsed::Unparsed;
    }

    // Built only now: traffic on other ports never pays for it. Word-wise: a byte-wise or
    // variable-length copy compiles to a call into a byte loop on BPF.
    let mut key: ConnKey = zeroed();
    key.family = family;
    // SAFETY: `ip_header` was bounds-checked for the whole fixed header of its family.
    unsafe {
        let (src, dst) = if family == FAMILY_IPV4 {
            (
                ip_header.add(ip4::SOURCE.start),
                ip_header.add(ip4::DESTINATION.start),
            )
        } else {
            (
                ip_header.add(ip6::SOURCE.start),
                ip_header.add(ip6::DESTINATION.start),
            )
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
        seq: be32(unsafe { tcp.add(tcpf::SEQ.start) }),
        tcp_flags: byte(tcp, tcpf::FLAGS),
        payload_offset: l4_offset as u32 + data_offset,
        payload_len: l4_len - data_offset,
    })
}
