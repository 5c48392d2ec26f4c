//! The pcap reader and the reassembler on the real Open WebUI captures: packet counts, link
//! types, connections, and the exact stream bytes per connection and direction of
//! `<capture>.expected.json`.
use std::{
    collections::BTreeMap,
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
};

use webui_monitor::{
    pcap::{CaptureReader, Dissector, PcapLimits},
    reassembly::{CloseReason, Reassembler, ReassemblyLimits, StreamHandler},
    segment::{ConnectionKey, Direction, Timestamp},
};

const CAPTURES: [&str; 5] = [
    "setup",
    "setup_model_access",
    "browser",
    "script_jwt",
    "script_apikey",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui")
}

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
        let dir = fixtures();
        let expected: serde_json::Value = serde_json::from_reader(BufReader::new(
            File::open(dir.join(format!("{name}.expected.json"))).expect("expected json"),
        ))
        .expect("json");
        let file = File::open(dir.join(format!("{name}.pcap"))).expect("pcap");
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
