//! The pcap reader and the reassembler on the real Open WebUI captures: packet counts, link
//! types, connections, and the exact stream bytes per connection and direction of
//! `<capture>.expected.json`.
#[path = "support/expected_check.rs"]
mod expected_check;

use std::{collections::BTreeMap, fs::File, io::BufReader};

use expected_check::{CAPTURES, expected, fixture_dir};
use webui_monitor_core::{
    pcap::{CaptureReader, Dissector, PcapLimits},
    reassembly::{CloseReason, Reassembler, ReassemblyLimits, StreamHandler},
    segment::{ConnectionKey, Direction, Timestamp},
};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Seen {
    packets: [u64; 2],
    bytes: [u64; 2],
    syn: bool,
    fin: [bool; 2],
    rst: bool,
    gaps: u64,
    closed: Option<CloseReason>,
}

#[derive(Default)]
struct Counter {
    conns: BTreeMap<u16, Seen>,
}

impl StreamHandler for Counter {
    type State = u16;
    fn open(&mut self, key: ConnectionKey, _mid: bool, _ts: Timestamp) -> u16 {
        self.conns.entry(key.client.port()).or_default();
        key.client.port()
    }
    fn data(&mut self, s: &mut u16, _: ConnectionKey, d: Direction, data: &[u8], _: Timestamp) {
        self.conns.entry(*s).or_default().bytes[d.index()] += data.len() as u64;
    }
    fn gap(&mut self, s: &mut u16, _: ConnectionKey, _: Direction, _: u64, _: Timestamp) {
        self.conns.entry(*s).or_default().gaps += 1;
    }
    fn fin(&mut self, _: &mut u16, _: ConnectionKey, _: Direction, _: Timestamp) {}
    fn close(&mut self, s: u16, _: ConnectionKey, reason: CloseReason, _: Timestamp) {
        self.conns.entry(s).or_default().closed = Some(reason);
    }
}

#[test]
fn captures_match_expected_connections_and_stream_bytes() {
    for name in CAPTURES {
        let expected = expected(name);
        let file = File::open(fixture_dir().join(format!("{name}.pcap"))).expect("pcap");
        let mut reader =
            CaptureReader::new(BufReader::new(file), PcapLimits::default()).expect("header");
        assert_eq!(reader.format_name(), "pcap");
        let dissector = Dissector::new([8080]);
        let mut reassembler = Reassembler::new(ReassemblyLimits::default());
        let mut handler = Counter::default();
        let mut link_types: BTreeMap<String, u64> = BTreeMap::new();
        let mut flags: BTreeMap<u16, Seen> = BTreeMap::new();
        let mut last = Timestamp::default();
        while let Some(p) = reader.next_packet().expect("packet") {
            *link_types.entry(p.link_type.0.to_string()).or_default() += 1;
            last = p.timestamp;
            let seg = dissector
                .dissect(p.link_type, p.timestamp, p.data)
                .expect("every packet is TCP on port 8080");
            let f = flags.entry(seg.key.client.port()).or_default();
            f.packets[seg.direction.index()] += 1;
            f.syn |= seg.flags.syn();
            f.fin[seg.direction.index()] |= seg.flags.fin();
            f.rst |= seg.flags.rst();
            reassembler.on_segment(&seg, &mut handler);
        }
        reassembler.finish(last, &mut handler);

        let meta = &expected["meta"];
        assert_eq!(
            reader.packets(),
            meta["packets"].as_u64().expect("packets"),
            "{name}"
        );
        let want_links: BTreeMap<String, u64> = meta["link_types"]
            .as_object()
            .expect("link_types")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
            .collect();
        assert_eq!(link_types, want_links, "{name}");
        assert_eq!(
            handler.conns.len() as u64,
            meta["tcp_connections"].as_u64().expect("tcp_connections"),
            "{name}"
        );
        assert_eq!(reassembler.counters().gaps, 0, "{name}");
        assert_eq!(reassembler.counters().connections_mid_stream, 0, "{name}");
        assert_eq!(reassembler.buffered_bytes(), 0, "{name}");

        let mut retransmitted = 0;
        for c in expected["connections"].as_array().expect("connections") {
            let port = c["connection"].as_u64().expect("port") as u16;
            let seen = &handler.conns[&port];
            let f = &flags[&port];
            let field = |k: &str| c[k].as_u64().expect(k);
            assert_eq!(
                seen.bytes,
                [field("stream_bytes_c2s"), field("stream_bytes_s2c")],
                "{name} {port}"
            );
            assert_eq!(
                f.packets,
                [field("packets_c2s"), field("packets_s2c")],
                "{name} {port}"
            );
            assert_eq!(
                f.syn,
                c["syn_seen"].as_bool().expect("syn"),
                "{name} {port}"
            );
            assert_eq!(
                f.fin[0],
                c["fin_client"].as_bool().expect("fin"),
                "{name} {port}"
            );
            assert_eq!(
                f.fin[1],
                c["fin_server"].as_bool().expect("fin"),
                "{name} {port}"
            );
            assert_eq!(f.rst, c["rst"].as_bool().expect("rst"), "{name} {port}");
            let reason = if f.rst {
                CloseReason::Rst
            } else {
                CloseReason::Fin
            };
            assert_eq!(seen.closed, Some(reason), "{name} {port}");
            retransmitted += field("retransmitted_bytes");
        }
        assert_eq!(
            reassembler.counters().duplicate_bytes,
            retransmitted,
            "{name}"
        );
    }
}

/// A dissected segment, owned, for comparing captures.
type SegmentRow = (String, bool, u32, u8, Vec<u8>, u64);

fn segments(bytes: &[u8]) -> Vec<SegmentRow> {
    let mut reader = CaptureReader::new(bytes, PcapLimits::default()).expect("header");
    let dissector = Dissector::new([8080]);
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().expect("packet") {
        let s = dissector
            .dissect(p.link_type, p.timestamp, p.data)
            .expect("segment");
        out.push((
            s.key.to_string(),
            s.direction == Direction::Request,
            s.seq,
            s.flags.0,
            s.payload.to_vec(),
            s.timestamp.as_nanos(),
        ));
    }
    out
}

/// Re-encodes a capture's frames (Ethernet + IPv4) as another format and link type.
#[derive(Clone, Copy)]
enum Encoding {
    /// pcapng, big-endian, nanosecond `if_tsresol`, Linux cooked v2 frames.
    PcapngBigSll2,
    /// pcapng, little-endian, default µs, BSD loopback frames; a second interface declared.
    PcapngLittleNull,
    /// Classic pcap, big-endian, nanosecond magic, raw IP (101).
    ClassicBigNanosRaw,
    /// Classic pcap, little-endian, µs, Linux cooked v1 with an 802.1Q tag inside.
    ClassicSllVlan,
}

fn reencode(original: &[u8], enc: Encoding) -> Vec<u8> {
    let big = matches!(enc, Encoding::PcapngBigSll2 | Encoding::ClassicBigNanosRaw);
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, t: u32, body: &[u8]| {
        let padded = body.len().next_multiple_of(4);
        let total = (12 + padded) as u32;
        out.extend_from_slice(&u32b(t));
        out.extend_from_slice(&u32b(total));
        out.extend_from_slice(body);
        out.resize(out.len() + padded - body.len(), 0);
        out.extend_from_slice(&u32b(total));
    };
    let link: u32 = match enc {
        Encoding::PcapngBigSll2 => 276,
        Encoding::PcapngLittleNull => 0,
        Encoding::ClassicBigNanosRaw => 101,
        Encoding::ClassicSllVlan => 113,
    };
    match enc {
        Encoding::PcapngBigSll2 | Encoding::PcapngLittleNull => {
            let mut shb = Vec::new();
            shb.extend_from_slice(&u32b(0x1a2b_3c4d));
            shb.extend_from_slice(&u16b(1));
            shb.extend_from_slice(&u16b(0));
            shb.extend_from_slice(&[0xff; 8]);
            block(&mut out, 0x0a0d_0d0a, &shb);
            if matches!(enc, Encoding::PcapngLittleNull) {
                let mut idb = Vec::new();
                idb.extend_from_slice(&u16b(1));
                idb.extend_from_slice(&[0; 6]);
                block(&mut out, 1, &idb); // interface 0: unused Ethernet
            }
            let mut idb = Vec::new();
            idb.extend_from_slice(&u16b(link as u16));
            idb.extend_from_slice(&u16b(0));
            idb.extend_from_slice(&u32b(0));
            if matches!(enc, Encoding::PcapngBigSll2) {
                idb.extend_from_slice(&u16b(9));
                idb.extend_from_slice(&u16b(1));
                idb.extend_from_slice(&[9, 0, 0, 0]);
            }
            idb.extend_from_slice(&[0; 4]);
            block(&mut out, 1, &idb);
        }
        Encoding::ClassicBigNanosRaw | Encoding::ClassicSllVlan => {
            let nanos = matches!(enc, Encoding::ClassicBigNanosRaw);
            out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
            out.extend_from_slice(&u16b(2));
            out.extend_from_slice(&u16b(4));
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&u32b(262_144));
            out.extend_from_slice(&u32b(link));
        }
    }
    let mut reader = CaptureReader::new(original, PcapLimits::default()).expect("header");
    while let Some(p) = reader.next_packet().expect("packet") {
        let ip = &p.data[14..];
        let mut frame = Vec::new();
        match enc {
            Encoding::PcapngBigSll2 => {
                frame.extend_from_slice(&[0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 772u16 as u8, 0, 6]);
                frame.extend_from_slice(&[0; 8]);
            }
            Encoding::PcapngLittleNull => frame.extend_from_slice(&2u32.to_le_bytes()),
            Encoding::ClassicBigNanosRaw => {}
            Encoding::ClassicSllVlan => {
                frame.extend_from_slice(&[0, 0, 3, 4, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00]);
                frame.extend_from_slice(&[0, 42, 0x08, 0x00]);
            }
        }
        frame.extend_from_slice(ip);
        let ns = p.timestamp.as_nanos();
        match enc {
            Encoding::PcapngBigSll2 | Encoding::PcapngLittleNull => {
                let ticks = if matches!(enc, Encoding::PcapngBigSll2) {
                    ns
                } else {
                    ns / 1000
                };
                let mut epb = Vec::new();
                let iface: u32 = if matches!(enc, Encoding::PcapngLittleNull) {
                    1
                } else {
                    0
                };
                epb.extend_from_slice(&u32b(iface));
                epb.extend_from_slice(&u32b((ticks >> 32) as u32));
                epb.extend_from_slice(&u32b(ticks as u32));
                epb.extend_from_slice(&u32b(frame.len() as u32));
                epb.extend_from_slice(&u32b(frame.len() as u32));
                epb.extend_from_slice(&frame);
                block(&mut out, 6, &epb);
            }
            Encoding::ClassicBigNanosRaw | Encoding::ClassicSllVlan => {
                let nanos = matches!(enc, Encoding::ClassicBigNanosRaw);
                let frac = if nanos {
                    ns % 1_000_000_000
                } else {
                    ns % 1_000_000_000 / 1000
                };
                out.extend_from_slice(&u32b((ns / 1_000_000_000) as u32));
                out.extend_from_slice(&u32b(frac as u32));
                out.extend_from_slice(&u32b(frame.len() as u32));
                out.extend_from_slice(&u32b(frame.len() as u32));
                out.extend_from_slice(&frame);
            }
        }
    }
    out
}

/// The same real traffic in every supported format and link type dissects to identical
/// segments, timestamps included.
#[test]
fn every_format_and_link_type_yields_identical_segments() {
    for name in ["script_jwt", "setup"] {
        let original = std::fs::read(fixture_dir().join(format!("{name}.pcap"))).expect("pcap");
        let want = segments(&original);
        assert!(!want.is_empty());
        for enc in [
            Encoding::PcapngBigSll2,
            Encoding::PcapngLittleNull,
            Encoding::ClassicBigNanosRaw,
            Encoding::ClassicSllVlan,
        ] {
            let got = segments(&reencode(&original, enc));
            assert!(got == want, "{name}: re-encoded capture differs");
        }
    }
}
