//! From a captured frame to a [`Segment`] of a monitored connection.
use std::net::SocketAddr;

use crate::segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp};

use super::{
    LinkType,
    wire::{
        EthernetFrame, IpView, Ipv4Packet, Ipv6Packet, NullFamily, NullHeader, Sll2Header,
        SllHeader, TcpHeader, VlanTag, WireError, ethertype,
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
}

impl SkipReason {
    pub const ALL: [SkipReason; 7] = [
        SkipReason::UnsupportedLinkType,
        SkipReason::NotIp,
        SkipReason::NotTcp,
        SkipReason::OtherPort,
        SkipReason::Fragment,
        SkipReason::Truncated,
        SkipReason::Malformed,
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
            WireError::Malformed(_) => SkipReason::Malformed,
        }
    }
}

/// Turns frames into segments of connections to the monitored ports.
#[derive(Debug, Clone)]
pub struct Dissector {
    ports: Vec<u16>,
}

/// At most this many VLAN tags are unwrapped (802.1ad QinQ uses two).
const MAX_VLAN_TAGS: usize = 4;

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
    /// The server side of the connection is the endpoint on a monitored port. When both are
    /// monitored, the lower port is the server (clients use ephemeral, high ports); on a tie the
    /// lower address is.
    pub fn dissect<'a>(
        &self,
        link: LinkType,
        ts: Timestamp,
        frame: &'a [u8],
    ) -> Result<Segment<'a>, SkipReason> {
        let ip = network_layer(link, frame)?;
        if ip.protocol != Ipv4Packet::PROTO_TCP {
            return Err(SkipReason::NotTcp);
        }
        if ip.fragment {
            return Err(SkipReason::Fragment);
        }
        let tcp = TcpHeader::new_checked(ip.payload)?;
        let src = SocketAddr::new(ip.src, tcp.src_port());
        let dst = SocketAddr::new(ip.dst, tcp.dst_port());
        let direction = match (self.monitored(src.port()), self.monitored(dst.port())) {
            (false, false) => return Err(SkipReason::OtherPort),
            (false, true) => Direction::Request,
            (true, false) => Direction::Response,
            (true, true) => {
                if (dst.port(), dst.ip()) <= (src.port(), src.ip()) {
                    Direction::Request
                } else {
                    Direction::Response
                }
            }
        };
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
            payload: tcp.payload(),
            timestamp: ts,
        })
    }
}

/// Strips the link layer and parses the IP header.
fn network_layer(link: LinkType, frame: &[u8]) -> Result<IpView<'_>, SkipReason> {
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
                NullFamily::Ipv4 => Ok(Ipv4Packet::new_checked(null.payload())?.into()),
                NullFamily::Ipv6 => Ok(Ipv6Packet::new_checked(null.payload())?.into()),
                NullFamily::Other(_) => Err(SkipReason::NotIp),
            }
        }
        LinkType::RAW | LinkType::RAW_DLT12 | LinkType::RAW_DLT14 => match frame.first() {
            Some(b) if b >> 4 == 4 => Ok(Ipv4Packet::new_checked(frame)?.into()),
            Some(b) if b >> 4 == 6 => Ok(Ipv6Packet::new_checked(frame)?.into()),
            Some(_) => Err(SkipReason::NotIp),
            None => Err(SkipReason::Truncated),
        },
        LinkType::IPV4 => Ok(Ipv4Packet::new_checked(frame)?.into()),
        LinkType::IPV6 => Ok(Ipv6Packet::new_checked(frame)?.into()),
        _ => Err(SkipReason::UnsupportedLinkType),
    }
}

fn by_ethertype(mut ethertype: u16, mut payload: &[u8]) -> Result<IpView<'_>, SkipReason> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ethertype::IPV4 => return Ok(Ipv4Packet::new_checked(payload)?.into()),
            ethertype::IPV6 => return Ok(Ipv6Packet::new_checked(payload)?.into()),
            ethertype::VLAN | ethertype::QINQ => {
                let tag = VlanTag::new_checked(payload)?;
                ethertype = tag.ethertype();
                payload = tag.payload();
            }
            _ => return Err(SkipReason::NotIp),
        }
    }
    Err(SkipReason::Malformed)
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
}
