//! Checked views of the headers between a captured frame and its TCP payload.
//!
//! Each view is built with `new_checked`, which validates every length the accessors rely on, so
//! the accessors themselves index without further checks and cannot panic. Nothing is copied.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A header that is too short or inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The captured bytes end inside the header or before the length it declares (snaplen).
    #[error("{0} truncated")]
    Truncated(Layer),
    /// A field holds an impossible value (version, header length).
    #[error("{0} malformed")]
    Malformed(Layer),
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

/// EtherTypes the dissector follows.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
}

/// Ethernet II frame: destination, source, EtherType.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<'a>(&'a [u8]);

impl<'a> EthernetFrame<'a> {
    pub const HEADER_LEN: usize = 14;
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::HEADER_LEN {
            return Err(WireError::Truncated(Layer::Link));
        }
        Ok(Self(b))
    }
    pub fn ethertype(&self) -> u16 {
        be16(self.0, 12)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::HEADER_LEN..]
    }
}

/// An 802.1Q / 802.1ad tag following an EtherType of 0x8100 / 0x88a8.
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<'a>(&'a [u8]);

impl<'a> VlanTag<'a> {
    pub const LEN: usize = 4;
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::LEN {
            return Err(WireError::Truncated(Layer::Vlan));
        }
        Ok(Self(b))
    }
    pub fn ethertype(&self) -> u16 {
        be16(self.0, 2)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.0[Self::LEN..]
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

/// IPv4 header with its options; the payload ends at the total length.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<'a> {
    b: &'a [u8],
    header_len: usize,
    end: usize,
}

impl<'a> Ipv4Packet<'a> {
    pub const MIN_LEN: usize = 20;
    pub const PROTO_TCP: u8 = 6;

    /// Checks version, header length and total length. A total length of 0 (segmentation
    /// offload captured before the NIC fills it in) means "up to the end of the capture".
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::MIN_LEN {
            return Err(WireError::Truncated(Layer::Ipv4));
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::Malformed(Layer::Ipv4));
        }
        let header_len = usize::from(b[0] & 0x0f) * 4;
        if header_len < Self::MIN_LEN {
            return Err(WireError::Malformed(Layer::Ipv4));
        }
        if b.len() < header_len {
            return Err(WireError::Truncated(Layer::Ipv4));
        }
        let total = usize::from(be16(b, 2));
        let end = if total == 0 { b.len() } else { total };
        if end < header_len {
            return Err(WireError::Malformed(Layer::Ipv4));
        }
        if end > b.len() {
            return Err(WireError::Truncated(Layer::Ipv4));
        }
        Ok(Self { b, header_len, end })
    }
    pub fn protocol(&self) -> u8 {
        self.b[9]
    }
    /// More-fragments set or a non-zero fragment offset.
    pub fn is_fragment(&self) -> bool {
        be16(self.b, 6) & 0x3fff != 0
    }
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b[12], self.b[13], self.b[14], self.b[15])
    }
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b[16], self.b[17], self.b[18], self.b[19])
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.b[self.header_len..self.end]
    }
}

/// IPv6 header, with hop-by-hop, routing, destination-options and AH extension headers walked.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<'a> {
    b: &'a [u8],
    /// Upper-layer protocol after the extension headers.
    protocol: u8,
    payload_start: usize,
    end: usize,
    fragment: bool,
}

impl<'a> Ipv6Packet<'a> {
    pub const HEADER_LEN: usize = 40;
    /// At most this many extension headers are walked (a chain of tiny headers is an attack).
    pub const MAX_EXTENSION_HEADERS: usize = 8;

    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::HEADER_LEN {
            return Err(WireError::Truncated(Layer::Ipv6));
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::Malformed(Layer::Ipv6));
        }
        let payload_len = usize::from(be16(b, 4));
        // 0: jumbogram or segmentation offload; take the capture's end.
        let end = if payload_len == 0 {
            b.len()
        } else {
            Self::HEADER_LEN + payload_len
        };
        if end > b.len() {
            return Err(WireError::Truncated(Layer::Ipv6));
        }
        let mut next = b[6];
        let mut at = Self::HEADER_LEN;
        let mut fragment = false;
        for _ in 0..Self::MAX_EXTENSION_HEADERS {
            let len = match next {
                0 | 43 | 60 => {
                    if at + 2 > end {
                        return Err(WireError::Truncated(Layer::Ipv6));
                    }
                    (usize::from(b[at + 1]) + 1) * 8
                }
                51 => {
                    if at + 2 > end {
                        return Err(WireError::Truncated(Layer::Ipv6));
                    }
                    (usize::from(b[at + 1]) + 2) * 4
                }
                44 => {
                    fragment = true;
                    8
                }
                _ => break,
            };
            if at + len > end {
                return Err(WireError::Truncated(Layer::Ipv6));
            }
            next = b[at];
            at += len;
        }
        Ok(Self {
            b,
            protocol: next,
            payload_start: at,
            end,
            fragment,
        })
    }
    pub fn protocol(&self) -> u8 {
        self.protocol
    }
    /// A fragment header was present (fragments are not reassembled).
    pub fn is_fragment(&self) -> bool {
        self.fragment
    }
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&self.b[8..24]).unwrap_or([0; 16]))
    }
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&self.b[24..40]).unwrap_or([0; 16]))
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.b[self.payload_start..self.end]
    }
}

/// Source and destination address of an IPv4 or IPv6 packet, and its upper-layer payload.
#[derive(Debug, Clone, Copy)]
pub struct IpView<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub fragment: bool,
    pub payload: &'a [u8],
}

impl<'a> From<Ipv4Packet<'a>> for IpView<'a> {
    fn from(p: Ipv4Packet<'a>) -> Self {
        Self {
            src: p.src().into(),
            dst: p.dst().into(),
            protocol: p.protocol(),
            fragment: p.is_fragment(),
            payload: p.payload(),
        }
    }
}

impl<'a> From<Ipv6Packet<'a>> for IpView<'a> {
    fn from(p: Ipv6Packet<'a>) -> Self {
        Self {
            src: p.src().into(),
            dst: p.dst().into(),
            protocol: p.protocol(),
            fragment: p.is_fragment(),
            payload: p.payload(),
        }
    }
}

/// TCP header with options; the payload is the rest of the IP payload.
#[derive(Debug, Clone, Copy)]
pub struct TcpHeader<'a> {
    b: &'a [u8],
    header_len: usize,
}

impl<'a> TcpHeader<'a> {
    pub const MIN_LEN: usize = 20;
    pub fn new_checked(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < Self::MIN_LEN {
            return Err(WireError::Truncated(Layer::Tcp));
        }
        let header_len = usize::from(b[12] >> 4) * 4;
        if header_len < Self::MIN_LEN {
            return Err(WireError::Malformed(Layer::Tcp));
        }
        if b.len() < header_len {
            return Err(WireError::Truncated(Layer::Tcp));
        }
        Ok(Self { b, header_len })
    }
    pub fn src_port(&self) -> u16 {
        be16(self.b, 0)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.b, 2)
    }
    pub fn seq(&self) -> u32 {
        be32(self.b, 4)
    }
    /// FIN, SYN, RST, PSH, ACK, URG, ECE, CWR (the low byte of the flags field).
    pub fn flags(&self) -> u8 {
        self.b[13]
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.b[self.header_len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_checks_lengths() {
        let mut p = [0u8; 24];
        p[0] = 0x45;
        p[3] = 24;
        p[9] = 6;
        assert_eq!(
            Ipv4Packet::new_checked(&p).map(|v| v.payload().len()),
            Ok(4)
        );
        p[3] = 30; // total length beyond the capture
        assert_eq!(
            Ipv4Packet::new_checked(&p).err(),
            Some(WireError::Truncated(Layer::Ipv4))
        );
        p[3] = 10; // shorter than the header
        assert_eq!(
            Ipv4Packet::new_checked(&p).err(),
            Some(WireError::Malformed(Layer::Ipv4))
        );
        p[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&p).err(),
            Some(WireError::Malformed(Layer::Ipv4))
        );
        assert_eq!(
            Ipv4Packet::new_checked(&p[..10]).err(),
            Some(WireError::Truncated(Layer::Ipv4))
        );
    }

    #[test]
    fn ipv6_walks_extension_headers() {
        let mut p = vec![0u8; 40 + 8 + 20];
        p[0] = 0x60;
        p[5] = 28;
        p[6] = 0; // hop-by-hop
        p[40] = 6; // then TCP
        p[41] = 0; // 8 bytes
        let v = Ipv6Packet::new_checked(&p).expect("valid");
        assert_eq!(v.protocol(), 6);
        assert_eq!(v.payload().len(), 20);
        p[41] = 5; // 48 bytes: beyond the packet
        assert_eq!(
            Ipv6Packet::new_checked(&p).err(),
            Some(WireError::Truncated(Layer::Ipv6))
        );
    }

    #[test]
    fn tcp_data_offset_is_checked() {
        let mut t = [0u8; 24];
        t[12] = 0x60; // 24 bytes
        assert_eq!(TcpHeader::new_checked(&t).map(|h| h.payload().len()), Ok(0));
        t[12] = 0x70;
        assert!(TcpHeader::new_checked(&t).is_err());
        t[12] = 0x40;
        assert_eq!(
            TcpHeader::new_checked(&t).err(),
            Some(WireError::Malformed(Layer::Tcp))
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
