//! Checked views of the headers between a captured frame and its TCP payload.
//!
//! Each view is built with `new_checked`, which validates the length its accessors rely on, so
//! the accessors index without further checks and cannot panic. Nothing is copied. The layouts
//! of Ethernet, VLAN tags, IP and TCP are `webui_monitor_common::wire`'s, which the kernel
//! parser reads too; what the fields mean for a frame's verdict is decided in `dissect`, in the
//! order that module defines. The link-layer headers only a capture file has (Linux cooked,
//! BSD loopback) are defined here.
use std::net::{Ipv4Addr, Ipv6Addr};

use webui_monitor_common::wire::{Field, ethernet, ipv4, ipv6, tcp, vlan};

/// A header cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The captured bytes end inside the header (snaplen, or a runt frame).
    #[error("{0} truncated")]
    Truncated(Layer),
}

/// Which header a [`WireError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Link,
    Vlan,
    Ipv4,
    Ipv6,
    Tcp,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Link => "link-layer header",
            Layer::Vlan => "802.1Q tag",
            Layer::Ipv4 => "IPv4 header",
            Layer::Ipv6 => "IPv6 header",
            Layer::Tcp => "TCP header",
        })
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn field16(b: &[u8], field: Field) -> u16 {
    be16(b, field.start)
}

/// Ethernet II frame: destination, source, EtherType.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<'a>(&'a [u8]);

impl<'a> EthernetFrame<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < ethernet::HEADER_LEN {
            return Err(WireError::Truncated(Layer::Link));
        }
        Ok(Self(b))
    }
    pub fn ethertype(&self) -> u16 {
        field16(self.0, ethernet::field::ETHERTYPE)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[ethernet::HEADER_LEN..]
    }
}

/// An 802.1Q / 802.1ad tag following an EtherType of 0x8100 / 0x88a8.
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<'a>(&'a [u8]);

impl<'a> VlanTag<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < vlan::TAG_LEN {
            return Err(WireError::Truncated(Layer::Vlan));
        }
        Ok(Self(b))
    }
    pub fn ethertype(&self) -> u16 {
        field16(self.0, vlan::field::ETHERTYPE)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[vlan::TAG_LEN..]
    }
}

/// Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`, 113): 16 bytes, protocol last.
#[derive(Debug, Clone, Copy)]
pub struct SllHeader<'a>(&'a [u8]);

impl<'a> SllHeader<'a> {
    pub const LEN: usize = 16;
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::LEN {
            return Err(WireError::Truncated(Layer::Link));
        }
        Ok(Self(b))
    }
    pub fn protocol(&self) -> u16 {
        be16(self.0, 14)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::LEN..]
    }
}

/// Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`, 276): 20 bytes, protocol first.
#[derive(Debug, Clone, Copy)]
pub struct Sll2Header<'a>(&'a [u8]);

impl<'a> Sll2Header<'a> {
    pub const LEN: usize = 20;
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::LEN {
            return Err(WireError::Truncated(Layer::Link));
        }
        Ok(Self(b))
    }
    pub fn protocol(&self) -> u16 {
        be16(self.0, 0)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::LEN..]
    }
}

/// BSD loopback (`LINKTYPE_NULL`, 0, host byte order; `LINKTYPE_LOOP`, 108, network order):
/// a 4-byte address family.
#[derive(Debug, Clone, Copy)]
pub struct NullHeader<'a>(&'a [u8]);

/// What the address family of a loopback header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullFamily {
    Ipv4,
    Ipv6,
    Other(u32),
}

impl<'a> NullHeader<'a> {
    pub const LEN: usize = 4;
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::LEN {
            return Err(WireError::Truncated(Layer::Link));
        }
        Ok(Self(b))
    }
    /// The family, whichever byte order the capturing host used: valid families are small, so
    /// the order that yields a value below 65,536 is the right one.
    pub fn family(&self) -> NullFamily {
        let raw = [self.0[0], self.0[1], self.0[2], self.0[3]];
        let le = u32::from_le_bytes(raw);
        let v = if le > 0xffff {
            u32::from_be_bytes(raw)
        } else {
            le
        };
        match v {
            2 => NullFamily::Ipv4,
            // AF_INET6 differs per BSD: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS); 10 (Linux).
            10 | 24 | 28 | 30 => NullFamily::Ipv6,
            other => NullFamily::Other(other),
        }
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::LEN..]
    }
}

/// The fixed IPv4 header at the start of the packet (options and payload follow).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Header<'a>(&'a [u8]);

impl<'a> Ipv4Header<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < ipv4::MIN_HEADER_LEN {
            return Err(WireError::Truncated(Layer::Ipv4));
        }
        Ok(Self(b))
    }
    pub fn version(&self) -> u8 {
        ipv4::version(self.0[ipv4::field::VERSION_IHL])
    }
    /// The header length in bytes, options included (may exceed what was captured).
    pub fn header_len(&self) -> usize {
        ipv4::header_len(self.0[ipv4::field::VERSION_IHL])
    }
    pub fn total_len(&self) -> u16 {
        field16(self.0, ipv4::field::TOTAL_LEN)
    }
    pub fn is_fragment(&self) -> bool {
        ipv4::is_fragment(field16(self.0, ipv4::field::FLAGS_FRAGMENT))
    }
    pub fn protocol(&self) -> u8 {
        self.0[ipv4::field::PROTOCOL]
    }
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(octets::<4>(self.0, ipv4::field::SOURCE))
    }
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(octets::<4>(self.0, ipv4::field::DESTINATION))
    }
}

/// The fixed IPv6 header at the start of the packet (extension headers and payload follow).
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Header<'a>(&'a [u8]);

impl<'a> Ipv6Header<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < ipv6::HEADER_LEN {
            return Err(WireError::Truncated(Layer::Ipv6));
        }
        Ok(Self(b))
    }
    pub fn version(&self) -> u8 {
        self.0[ipv6::field::VERSION] >> 4
    }
    pub fn payload_len(&self) -> u16 {
        field16(self.0, ipv6::field::PAYLOAD_LEN)
    }
    pub fn next_header(&self) -> u8 {
        self.0[ipv6::field::NEXT_HEADER]
    }
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(octets::<16>(self.0, ipv6::field::SOURCE))
    }
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(octets::<16>(self.0, ipv6::field::DESTINATION))
    }
}

/// The start of an IPv6 extension header: what walking past it needs.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Extension<'a>(&'a [u8]);

impl<'a> Ipv6Extension<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < ipv6::EXTENSION_READ_LEN {
            return Err(WireError::Truncated(Layer::Ipv6));
        }
        Ok(Self(b))
    }
    pub fn next_header(&self) -> u8 {
        self.0[ipv6::extension_field::NEXT_HEADER]
    }
    /// The length byte, in the unit of the header's kind (`ipv6::Extension::len`).
    pub fn length(&self) -> u8 {
        self.0[ipv6::extension_field::LENGTH]
    }
}

/// The fixed TCP header at the start of the segment (options and payload follow).
#[derive(Debug, Clone, Copy)]
pub struct TcpHeader<'a>(&'a [u8]);

impl<'a> TcpHeader<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < tcp::MIN_HEADER_LEN {
            return Err(WireError::Truncated(Layer::Tcp));
        }
        Ok(Self(b))
    }
    pub fn src_port(&self) -> u16 {
        field16(self.0, tcp::field::SOURCE_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        field16(self.0, tcp::field::DESTINATION_PORT)
    }
    pub fn seq(&self) -> u32 {
        be32(self.0, tcp::field::SEQ.start)
    }
    /// FIN, SYN, RST, PSH, ACK, URG, ECE, CWR (the low byte of the flags field).
    pub fn flags(&self) -> u8 {
        self.0[tcp::field::FLAGS]
    }
    /// The header length in bytes, options included (may exceed what was captured).
    pub fn header_len(&self) -> usize {
        tcp::header_len(self.0[tcp::field::DATA_OFFSET])
    }
}

/// The `N` bytes of `field`, which the view's check covers.
fn octets<const N: usize>(b: &[u8], field: Field) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&b[field]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_headers_are_checked_for_length() {
        let mut p = [0u8; 24];
        p[0] = 0x46;
        p[3] = 24;
        p[6] = 0x20; // MF
        p[9] = 6;
        let v4 = Ipv4Header::new_checked(&p).expect("20 bytes");
        assert_eq!(
            (v4.version(), v4.header_len(), v4.total_len(), v4.protocol()),
            (4, 24, 24, 6)
        );
        assert!(v4.is_fragment());
        assert_eq!(
            Ipv4Header::new_checked(&p[..19]).err(),
            Some(WireError::Truncated(Layer::Ipv4))
        );
        assert_eq!(
            Ipv6Header::new_checked(&[0x60; 39]).err(),
            Some(WireError::Truncated(Layer::Ipv6))
        );
        assert_eq!(
            Ipv6Extension::new_checked(&[6]).err(),
            Some(WireError::Truncated(Layer::Ipv6))
        );
        let mut t = [0u8; 20];
        t[12] = 0x60;
        assert_eq!(TcpHeader::new_checked(&t).map(|h| h.header_len()), Ok(24));
        assert_eq!(
            TcpHeader::new_checked(&t[..19]).err(),
            Some(WireError::Truncated(Layer::Tcp))
        );
    }

    #[test]
    fn null_family_in_either_byte_order() {
        assert_eq!(NullHeader(&[2, 0, 0, 0]).family(), NullFamily::Ipv4);
        assert_eq!(NullHeader(&[0, 0, 0, 2]).family(), NullFamily::Ipv4);
        assert_eq!(NullHeader(&[0, 0, 0, 30]).family(), NullFamily::Ipv6);
        assert_eq!(NullHeader(&[7, 0, 0, 0]).family(), NullFamily::Other(7));
    }
}
