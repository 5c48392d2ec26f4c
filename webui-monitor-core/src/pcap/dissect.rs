//! From a captured frame to a [`Segment`] of a monitored connection.
//!
//! The headers are read in the order `webui_monitor_common::wire` defines, with its limits,
//! which is the order and the limits of the kernel parser: a frame the daemon counts as
//! unparsed is skipped here as [`SkipReason::Truncated`], [`SkipReason::Malformed`],
//! [`SkipReason::Fragment`] or [`SkipReason::TooManyHeaders`], and a frame the daemon does not
//! monitor as one of the other reasons (`tests/tests/parity.rs` checks both on crafted frames).
use std::net::{IpAddr, SocketAddr};

use webui_monitor_common::wire::{ethernet, ipv4, ipv6, protocol, tcp, vlan};

use crate::segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp};

use super::{
    LinkType,
    wire::{
        EthernetFrame, Ipv4Header, Ipv6Extension, Ipv6Header, NullFamily, NullHeader, Sll2Header,
        SllHeader, TcpHeader, VlanTag, WireError,
    },
};

/// Why a frame yielded no segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A link type this reader does not decode.
    UnsupportedLinkType,
    /// Not IPv4/IPv6 (ARP, LLDP, …).
    NotIp,
    /// IP, but not TCP.
    NotTcp,
    /// TCP between ports none of which is monitored.
    OtherPort,
    /// An IP fragment (fragments are not reassembled; TCP over loopback/LAN never fragments).
    Fragment,
    /// The capture cut the frame short (snaplen) or a header claims more than was captured.
    Truncated,
    /// A header with an impossible field.
    Malformed,
    /// More VLAN tags or IPv6 extension headers than are walked (`vlan::MAX_TAGS`,
    /// `ipv6::MAX_EXTENSION_HEADERS` of `webui_monitor_common::wire`).
    TooManyHeaders,
}

impl SkipReason {
    pub const ALL: [SkipReason; 8] = [
        SkipReason::UnsupportedLinkType,
        SkipReason::NotIp,
        SkipReason::NotTcp,
        SkipReason::OtherPort,
        SkipReason::Fragment,
        SkipReason::Truncated,
        SkipReason::Malformed,
        SkipReason::TooManyHeaders,
    ];

    /// Metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported_link_type",
            SkipReason::NotIp => "not_ip",
            SkipReason::NotTcp => "not_tcp",
            SkipReason::OtherPort => "other_port",
            SkipReason::Fragment => "fragment",
            SkipReason::Truncated => "truncated",
            SkipReason::Malformed => "malformed",
            SkipReason::TooManyHeaders => "too_many_headers",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

impl From<WireError> for SkipReason {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated(_) => SkipReason::Truncated,
        }
    }
}

/// Turns frames into segments of connections to the monitored ports.
#[derive(Debug, Clone)]
pub struct Dissector {
    ports: Vec<u16>,
}

impl Dissector {
    /// `ports`: the server ports to monitor (Open WebUI: 8080).
    pub fn new(ports: impl IntoIterator<Item = u16>) -> Self {
        let mut ports: Vec<u16> = ports.into_iter().collect();
        ports.sort_unstable();
        ports.dedup();
        Self { ports }
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    fn monitored(&self, port: u16) -> bool {
        self.ports.binary_search(&port).is_ok()
    }

    /// Dissects one frame of link type `link`.
    ///
    /// The server side of the connection is the endpoint on a monitored port, the destination
    /// when both are (`webui_monitor_common::wire::tcp::server`, as in the kernel).
    pub fn dissect<'a>(
        &self,
        link: LinkType,
        ts: Timestamp,
        frame: &'a [u8],
    ) -> Result<Segment<'a>, SkipReason> {
        let ip = network_layer(link, frame)?;
        let tcp = TcpHeader::new_checked(ip.segment)?;
        let src = SocketAddr::new(ip.src, tcp.src_port());
        let dst = SocketAddr::new(ip.dst, tcp.dst_port());
        let direction = match tcp::server(self.monitored(src.port()), self.monitored(dst.port())) {
            None => return Err(SkipReason::OtherPort),
            Some(tcp::Server::Destination) => Direction::Request,
            Some(tcp::Server::Source) => Direction::Response,
        };
        // Ethernet pads short frames: the IP length, when there is one, is authoritative.
        let segment_len = match ip.segment_len {
            None => ip.segment.len(),
            Some(len) if len > ip.segment.len() => return Err(SkipReason::Truncated),
            Some(len) => len,
        };
        let header_len = tcp.header_len();
        if header_len < tcp::MIN_HEADER_LEN {
            return Err(SkipReason::Malformed);
        }
        if header_len > segment_len {
            return Err(SkipReason::Truncated);
        }
        let key = match direction {
            Direction::Request => ConnectionKey {
                client: src,
                server: dst,
            },
            Direction::Response => ConnectionKey {
                client: dst,
                server: src,
            },
        };
        Ok(Segment {
            key,
            direction,
            seq: tcp.seq(),
            flags: TcpFlags(tcp.flags()),
            payload: &ip.segment[header_len..segment_len],
            timestamp: ts,
            after_capture_loss: false,
            capture_skip: None,
        })
    }
}

/// A TCP/IP packet up to its TCP header, as the reading order leaves it.
struct Network<'a> {
    src: IpAddr,
    dst: IpAddr,
    /// From the TCP header to the end of the frame.
    segment: &'a [u8],
    /// The TCP segment's length according to the IP header; `None` when the IP length is 0
    /// (segmentation offload, BIG TCP), which means "up to the end of the frame".
    segment_len: Option<usize>,
}

/// Strips the link layer and reads the IP header up to TCP.
fn network_layer(link: LinkType, frame: &[u8]) -> Result<Network<'_>, SkipReason> {
    match link {
        LinkType::ETHERNET => {
            let eth = EthernetFrame::new_checked(frame)?;
            by_ethertype(eth.ethertype(), eth.payload())
        }
        LinkType::LINUX_SLL => {
            let sll = SllHeader::new_checked(frame)?;
            by_ethertype(sll.protocol(), sll.payload())
        }
        LinkType::LINUX_SLL2 => {
            let sll = Sll2Header::new_checked(frame)?;
            by_ethertype(sll.protocol(), sll.payload())
        }
        LinkType::NULL | LinkType::LOOP => {
            let null = NullHeader::new_checked(frame)?;
            match null.family() {
                NullFamily::Ipv4 => over_ipv4(null.payload()),
                NullFamily::Ipv6 => over_ipv6(null.payload()),
                NullFamily::Other(_) => Err(SkipReason::NotIp),
            }
        }
        LinkType::RAW | LinkType::RAW_DLT12 | LinkType::RAW_DLT14 => match frame.first() {
            Some(b) if b >> 4 == ipv4::VERSION => over_ipv4(frame),
            Some(b) if b >> 4 == ipv6::VERSION => over_ipv6(frame),
            Some(_) => Err(SkipReason::NotIp),
            None => Err(SkipReason::Truncated),
        },
        LinkType::IPV4 => over_ipv4(frame),
        LinkType::IPV6 => over_ipv6(frame),
        _ => Err(SkipReason::UnsupportedLinkType),
    }
}

fn by_ethertype(mut ethertype: u16, mut payload: &[u8]) -> Result<Network<'_>, SkipReason> {
    for _ in 0..vlan::MAX_TAGS {
        if !ethernet::is_tag(ethertype) {
            break;
        }
        let tag = VlanTag::new_checked(payload)?;
        ethertype = tag.ethertype();
        payload = tag.payload();
    }
    match ethertype {
        ethernet::ethertype::IPV4 => over_ipv4(payload),
        ethernet::ethertype::IPV6 => over_ipv6(payload),
        tag if ethernet::is_tag(tag) => Err(SkipReason::TooManyHeaders),
        _ => Err(SkipReason::NotIp),
    }
}

fn over_ipv4(b: &[u8]) -> Result<Network<'_>, SkipReason> {
    let ip = Ipv4Header::new_checked(b)?;
    if ip.protocol() != protocol::TCP {
        return Err(SkipReason::NotTcp);
    }
    let header_len = ip.header_len();
    if ip.version() != ipv4::VERSION || header_len < ipv4::MIN_HEADER_LEN {
        return Err(SkipReason::Malformed);
    }
    if ip.is_fragment() {
        return Err(SkipReason::Fragment);
    }
    let total_len = usize::from(ip.total_len());
    if total_len != 0 && total_len < header_len {
        return Err(SkipReason::Malformed);
    }
    Ok(Network {
        src: ip.src().into(),
        dst: ip.dst().into(),
        segment: b.get(header_len..).ok_or(SkipReason::Truncated)?,
        segment_len: (total_len != 0).then(|| total_len - header_len),
    })
}

fn over_ipv6(b: &[u8]) -> Result<Network<'_>, SkipReason> {
    let ip = Ipv6Header::new_checked(b)?;
    if ip.version() != ipv6::VERSION {
        return Err(SkipReason::Malformed);
    }
    let mut next_header = ip.next_header();
    let mut at = ipv6::HEADER_LEN;
    for _ in 0..ipv6::MAX_EXTENSION_HEADERS {
        let Some(kind) = ipv6::extension(next_header) else {
            break;
        };
        let extension = Ipv6Extension::new_checked(b.get(at..).unwrap_or_default())?;
        next_header = extension.next_header();
        if kind == ipv6::Extension::Fragment {
            return Err(
                if next_header == protocol::TCP || ipv6::extension(next_header).is_some() {
                    SkipReason::Fragment
                } else {
                    SkipReason::NotTcp
                },
            );
        }
        at += kind.len(extension.length());
    }
    if next_header != protocol::TCP {
        return Err(if ipv6::extension(next_header).is_some() {
            SkipReason::TooManyHeaders
        } else {
            SkipReason::NotTcp
        });
    }
    let payload_len = usize::from(ip.payload_len());
    let extensions = at - ipv6::HEADER_LEN;
    if payload_len != 0 && payload_len < extensions {
        return Err(SkipReason::Malformed);
    }
    Ok(Network {
        src: ip.src().into(),
        dst: ip.dst().into(),
        segment: b.get(at..).ok_or(SkipReason::Truncated)?,
        segment_len: (payload_len != 0).then(|| payload_len - extensions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 + TCP 40000 -> 8080, seq 0x01020304, flags PSH|ACK, payload "hi".
    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 42, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2,
        ];
        p.extend_from_slice(&[
            0x9c, 0x40, 0x1f, 0x90, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        p.extend_from_slice(b"hi");
        p
    }

    fn check(seg: Result<Segment<'_>, SkipReason>) {
        let seg = seg.expect("segment");
        assert_eq!(seg.key.client, "127.0.0.1:40000".parse().expect("addr"));
        assert_eq!(seg.key.server, "127.0.0.2:8080".parse().expect("addr"));
        assert_eq!(seg.direction, Direction::Request);
        assert_eq!(seg.seq, 0x01020304);
        assert_eq!(seg.flags, TcpFlags(0x18));
        assert_eq!(seg.payload, b"hi");
    }

    #[test]
    fn every_link_type() {
        let d = Dissector::new([8080]);
        let ts = Timestamp::from_secs(1);
        let ip = ipv4_tcp();

        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        check(d.dissect(LinkType::ETHERNET, ts, &eth));

        let mut qinq = vec![0u8; 12];
        qinq.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        qinq.extend_from_slice(&ip);
        check(d.dissect(LinkType::ETHERNET, ts, &qinq));

        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        check(d.dissect(LinkType::LINUX_SLL, ts, &sll));

        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        check(d.dissect(LinkType::LINUX_SLL2, ts, &sll2));

        for link in [
            LinkType::RAW,
            LinkType::RAW_DLT12,
            LinkType::RAW_DLT14,
            LinkType::IPV4,
        ] {
            check(d.dissect(link, ts, &ip));
        }

        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        check(d.dissect(LinkType::NULL, ts, &null));
    }

    #[test]
    fn ipv6_and_response_orientation() {
        let d = Dissector::new([8080]);
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        p.extend_from_slice(&[0u8; 15]);
        p.push(2); // src ::2
        p.extend_from_slice(&[0u8; 15]);
        p.push(1); // dst ::1
        p.extend_from_slice(&[
            0x1f, 0x90, 0x9c, 0x40, 0, 0, 0, 9, 0, 0, 0, 0, 0x50, 0x11, 0, 0, 0, 0, 0, 0,
        ]);
        let seg = d
            .dissect(LinkType::IPV6, Timestamp::default(), &p)
            .expect("segment");
        assert_eq!(seg.direction, Direction::Response);
        assert_eq!(seg.key.server, "[::2]:8080".parse().expect("addr"));
        assert_eq!(seg.key.client, "[::1]:40000".parse().expect("addr"));
        assert!(seg.flags.fin());
    }

    #[test]
    fn skips_are_classified() {
        let d = Dissector::new([9999]);
        let ts = Timestamp::default();
        let ip = ipv4_tcp();
        assert_eq!(
            d.dissect(LinkType::RAW, ts, &ip).err(),
            Some(SkipReason::OtherPort)
        );
        assert_eq!(
            d.dissect(LinkType(147), ts, &ip).err(),
            Some(SkipReason::UnsupportedLinkType)
        );
        let d = Dissector::new([8080]);
        assert_eq!(
            d.dissect(LinkType::RAW, ts, &ip[..30]).err(),
            Some(SkipReason::Truncated)
        );
        let mut udp = ip.clone();
        udp[9] = 17;
        assert_eq!(
            d.dissect(LinkType::RAW, ts, &udp).err(),
            Some(SkipReason::NotTcp)
        );
        let mut frag = ip.clone();
        frag[6] = 0x20; // MF
        assert_eq!(
            d.dissect(LinkType::RAW, ts, &frag).err(),
            Some(SkipReason::Fragment)
        );
        let arp = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x06, 0, 0];
        assert_eq!(
            d.dissect(LinkType::ETHERNET, ts, &arp).err(),
            Some(SkipReason::NotIp)
        );
    }

    /// An Ethernet frame: `tags` VLAN tags, IPv6 with `extensions` (kind, bytes) before the
    /// TCP segment 40000 -> 8080 with payload "hi".
    fn ipv6_frame(tags: usize, extensions: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for _ in 0..tags {
            f.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        f.extend_from_slice(&[0x86, 0xdd]);
        let tcp = [
            0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0, b'h',
            b'i',
        ];
        let ext_len: usize = extensions.iter().map(|(_, e)| e.len()).sum();
        let first = extensions.first().map_or(6, |(kind, _)| *kind);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((ext_len + tcp.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[first, 64]);
        f.extend_from_slice(&[0u8; 32]);
        for (i, (_, ext)) in extensions.iter().enumerate() {
            let mut ext = ext.clone();
            ext[0] = extensions.get(i + 1).map_or(6, |(kind, _)| *kind);
            f.extend_from_slice(&ext);
        }
        f.extend_from_slice(&tcp);
        f
    }

    #[test]
    fn walk_limits_are_the_kernels() {
        let d = Dissector::new([8080]);
        let ts = Timestamp::default();
        let dissect = |f: &[u8]| {
            d.dissect(LinkType::ETHERNET, ts, f)
                .map(|s| s.payload.to_vec())
        };
        let hop = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
        let routing = (43u8, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let fragment = (44u8, vec![0; 8]);
        assert_eq!(dissect(&ipv6_frame(2, &[])), Ok(b"hi".to_vec()));
        assert_eq!(
            dissect(&ipv6_frame(3, &[])),
            Err(SkipReason::TooManyHeaders)
        );
        let four = vec![hop.clone(), routing, hop.clone(), hop.clone()];
        assert_eq!(dissect(&ipv6_frame(0, &four)), Ok(b"hi".to_vec()));
        let five = [four.clone(), vec![hop.clone()]].concat();
        assert_eq!(
            dissect(&ipv6_frame(0, &five)),
            Err(SkipReason::TooManyHeaders)
        );
        assert_eq!(
            dissect(&ipv6_frame(0, &[hop.clone(), fragment.clone()])),
            Err(SkipReason::Fragment)
        );
        assert_eq!(
            dissect(&ipv6_frame(0, &[fragment, hop])),
            Err(SkipReason::Fragment)
        );
    }
}
