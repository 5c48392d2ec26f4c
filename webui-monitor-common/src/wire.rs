//! The headers between an Ethernet frame and its TCP payload, and how far they are read: one
//! definition for the kernel parser (`webui-monitor-ebpf`, `parse.rs`) and the replay
//! dissector (`webui-monitor-core`, `pcap::dissect`), so that a replay decodes exactly the
//! frames the daemon decodes. `tests/tests/parity.rs` runs crafted frames through both.
//!
//! Each layer declares its fields once, as byte ranges in a `field` module, and looks only at
//! the layers below it (`ethernet` → `vlan` → `ipv4`/`ipv6` → `tcp`). Nothing here reads
//! memory: the kernel reads through bounds-checked packet pointers, the replay through slices,
//! and both take the offsets, lengths and limits from here.
//!
//! # The reading order, and what each step decides
//!
//! A frame ends in one of three verdicts: *not monitored* (not TCP/IP, or TCP on other ports),
//! *unparsed* (a TCP/IP frame the parser cannot read: counted as a loss by the daemon, skipped
//! with a reason by the replay), or *monitored* (a connection key, a direction and the TCP
//! payload's offset and length). Where two rules apply, the first in this order decides:
//!
//! 1. EtherType. Up to [`vlan::MAX_TAGS`] 802.1Q/802.1ad tags are unwrapped; a tag cut short,
//!    or one more tag, is unparsed. Neither IPv4 nor IPv6: not monitored.
//! 2. IPv4: the fixed header cut short is unparsed; a protocol other than TCP is not monitored;
//!    a version other than 4, a header length below 20, a fragment, or a total length below
//!    the header length is unparsed. Options are skipped by the header length, not read.
//! 3. IPv6: the fixed header cut short, or a version other than 6, is unparsed. At most
//!    [`ipv6::MAX_EXTENSION_HEADERS`] extension headers of the kinds [`ipv6::extension`]
//!    names are walked; one cut short is unparsed. The authentication header is not walked
//!    (its length rule would double the kernel's verifier walk): what follows it is not
//!    monitored. A fragment header ends the walk: unparsed if TCP or another walked extension
//!    header follows it (the ports of a fragment are unknown), not monitored otherwise. After the walk, TCP goes on; another walked extension header
//!    (the limit was reached) is unparsed; anything else is not monitored. A payload length
//!    shorter than the extension headers is unparsed.
//! 4. TCP: the fixed header cut short is unparsed; neither port monitored is not monitored
//!    (checked this early so that other traffic costs the kernel little; [`tcp::server`]
//!    says which endpoint is the server); an IP length beyond the frame, a data offset below
//!    20 or beyond the IP payload is unparsed.
//!
//! An IP length of zero means "up to the end of the frame" (segmentation offload, BIG TCP). A
//! non-zero one is authoritative: Ethernet pads short frames, and the padding is not payload.
/// A field: the bytes it occupies, counted from the start of its header.
pub type Field = core::ops::Range<usize>;

/// Ethernet II: destination, source, EtherType.
pub mod ethernet {
    pub mod field {
        use super::super::Field;
        pub const DESTINATION: Field = 0..6;
        pub const SOURCE: Field = 6..12;
        pub const ETHERTYPE: Field = 12..14;
    }
    pub const HEADER_LEN: usize = field::ETHERTYPE.end;

    /// EtherTypes the parsers follow.
    pub mod ethertype {
        pub const IPV4: u16 = 0x0800;
        pub const IPV6: u16 = 0x86dd;
        /// 802.1Q tag (the inner one of a QinQ pair).
        pub const VLAN: u16 = 0x8100;
        /// 802.1ad tag (the outer one of a QinQ pair).
        pub const QINQ: u16 = 0x88a8;
    }

    /// Whether a VLAN tag follows an EtherType of this value.
    #[inline(always)]
    pub const fn is_tag(ethertype: u16) -> bool {
        ethertype == ethertype::VLAN || ethertype == ethertype::QINQ
    }
}

/// An 802.1Q / 802.1ad tag, after an EtherType for which [`ethernet::is_tag`] holds.
pub mod vlan {
    pub mod field {
        use super::super::Field;
        /// Priority, drop eligibility, VLAN id.
        pub const TCI: Field = 0..2;
        /// The EtherType of what follows the tag.
        pub const ETHERTYPE: Field = 2..4;
    }
    pub const TAG_LEN: usize = field::ETHERTYPE.end;

    /// Tags unwrapped: an 802.1ad outer and an 802.1Q inner tag (QinQ). The kernel usually
    /// sees none on egress, where the stack keeps the tag in skb metadata.
    pub const MAX_TAGS: usize = 2;
}

/// IP protocol numbers (IPv4 protocol, IPv6 next header).
pub mod protocol {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// IPv4. Options are not read: the header length skips them.
pub mod ipv4 {
    pub mod field {
        use super::super::Field;
        /// Version (high nibble) and header length in 32-bit words (low nibble).
        pub const VERSION_IHL: usize = 0;
        pub const TOTAL_LEN: Field = 2..4;
        /// Flags (3 bits) and fragment offset (13 bits).
        pub const FLAGS_FRAGMENT: Field = 6..8;
        pub const PROTOCOL: usize = 9;
        pub const SOURCE: Field = 12..16;
        pub const DESTINATION: Field = 16..20;
    }
    /// The fixed header: what must be present before anything is decided.
    pub const MIN_HEADER_LEN: usize = field::DESTINATION.end;
    pub const VERSION: u8 = 4;

    #[inline(always)]
    pub const fn version(version_ihl: u8) -> u8 {
        version_ihl >> 4
    }

    /// The header length in bytes, options included.
    #[inline(always)]
    pub const fn header_len(version_ihl: u8) -> usize {
        (version_ihl & 0x0f) as usize * 4
    }

    /// More-fragments set or a non-zero fragment offset: the ports of such a packet are
    /// unknown (or absent).
    #[inline(always)]
    pub const fn is_fragment(flags_fragment: u16) -> bool {
        flags_fragment & 0x3fff != 0
    }
}

/// IPv6 and the extension headers walked on the way to TCP.
pub mod ipv6 {
    use super::protocol;

    pub mod field {
        use super::super::Field;
        /// Version in the high nibble.
        pub const VERSION: usize = 0;
        pub const PAYLOAD_LEN: Field = 4..6;
        pub const NEXT_HEADER: usize = 6;
        pub const SOURCE: Field = 8..24;
        pub const DESTINATION: Field = 24..40;
    }
    pub const HEADER_LEN: usize = field::DESTINATION.end;
    pub const VERSION: u8 = 6;

    /// The fields every walked extension header starts with.
    pub mod extension_field {
        pub const NEXT_HEADER: usize = 0;
        /// The header's length, in the unit its kind uses (see [`super::Extension::len`]).
        pub const LENGTH: usize = 1;
    }
    /// What is read of an extension header to walk past it.
    pub const EXTENSION_READ_LEN: usize = extension_field::LENGTH + 1;

    /// Extension headers walked before giving up: a frame with more is unparsed. Real traffic
    /// carries one or two (hop-by-hop for MLD and jumbograms, a routing header for SRv6).
    pub const MAX_EXTENSION_HEADERS: usize = 4;

    /// The kinds of extension header walked.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Extension {
        /// Hop-by-hop options, routing, destination options: length in 8-byte units after
        /// the first 8.
        Options,
        /// Fragment header, 8 bytes. It ends the walk (see the module docs).
        Fragment,
    }

    /// The kind of extension header a next-header value announces, if it is walked.
    #[inline(always)]
    pub const fn extension(next_header: u8) -> Option<Extension> {
        match next_header {
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DESTINATION_OPTIONS => {
                Some(Extension::Options)
            }
            protocol::FRAGMENT => Some(Extension::Fragment),
            _ => None,
        }
    }

    impl Extension {
        /// The header's whole length, from its length byte.
        #[inline(always)]
        pub const fn len(self, length: u8) -> usize {
            match self {
                Extension::Options => (length as usize + 1) * 8,
                Extension::Fragment => 8,
            }
        }
    }
}

/// TCP.
pub mod tcp {
    pub mod field {
        use super::super::Field;
        pub const SOURCE_PORT: Field = 0..2;
        pub const DESTINATION_PORT: Field = 2..4;
        pub const SEQ: Field = 4..8;
        pub const ACK: Field = 8..12;
        /// Data offset in 32-bit words (high nibble).
        pub const DATA_OFFSET: usize = 12;
        /// FIN, SYN, RST, PSH, ACK, URG, ECE, CWR.
        pub const FLAGS: usize = 13;
        pub const WINDOW: Field = 14..16;
        pub const CHECKSUM: Field = 16..18;
        pub const URGENT: Field = 18..20;
    }
    pub const MIN_HEADER_LEN: usize = field::URGENT.end;

    /// The header length in bytes, options included.
    #[inline(always)]
    pub const fn header_len(data_offset: u8) -> usize {
        (data_offset >> 4) as usize * 4
    }

    /// Which endpoint of a segment is the server (the connection key's orientation).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Server {
        Destination,
        Source,
    }

    /// The server of a segment, given which of its ports are monitored; `None` if neither
    /// is. The destination is whenever its port is monitored: the kernel decides with one pass
    /// over the ports that stops at the destination's, which keeps its verifier walk short. So
    /// a connection between two monitored ports counts once per direction.
    #[inline(always)]
    pub const fn server(src_monitored: bool, dst_monitored: bool) -> Option<Server> {
        if dst_monitored {
            Some(Server::Destination)
        } else if src_monitored {
            Some(Server::Source)
        } else {
            None
        }
    }
}
