//! The kernel programs under `BPF_PROG_TEST_RUN`: crafted frames in, exact map contents and
//! ring records out. Needs root (or CAP_BPF + CAP_PERFMON).
use aya::programs::{TestRun, TestRunOptions};
use webui_monitor::capture::{
    Capture, CaptureConfig, DecodeError, Record,
    clock::{boot_now_ns, coarse_now_ns},
    loader,
};
use webui_monitor_common::{
    CHUNK_DATA_SIZE, CaptureStats, ConnKey, ConnStats, FAMILY_IPV4, FAMILY_IPV6, SEEN_FIN,
    SEEN_RESPONSE_SHIFT, SEEN_RST, SEEN_SYN, XDP_PROGRAM,
};
use webui_monitor_core::segment::{CaptureSkip, ConnectionKey, Direction};
use webui_monitor_tests::frame::{
    CLIENT4, CLIENT6, Ip, SERVER4, SERVER6, TPID_8021AD, TPID_8021Q, Tcp, frame, pattern,
};

const XDP_PASS: u32 = 2;
/// `TCX_NEXT` (-1) as the u32 the test run returns.
const TCX_NEXT: u32 = u32::MAX;
const PSH_ACK: u8 = 0x18;
const ACK: u8 = 0x10;
const SYN: u8 = 0x02;
const FIN_ACK: u8 = 0x11;
const RST: u8 = 0x04;
const UNPARSED: usize = 2;

fn v4() -> Ip {
    Ip::V4 {
        src: CLIENT4,
        dst: SERVER4,
        options: vec![],
    }
}

fn v4_response() -> Ip {
    Ip::V4 {
        src: SERVER4,
        dst: CLIENT4,
        options: vec![],
    }
}

fn request(seq: u32, flags: u8, payload: &[u8]) -> Tcp {
    Tcp {
        src_port: 40000,
        dst_port: 8080,
        seq,
        flags,
        options: vec![],
        payload: payload.to_vec(),
    }
}

fn key4() -> ConnKey {
    let mut key = ConnKey {
        client_port: 40000,
        server_port: 8080,
        family: FAMILY_IPV4,
        ..ConnKey::ZERO
    };
    key.client_addr[..4].copy_from_slice(&CLIENT4);
    key.server_addr[..4].copy_from_slice(&SERVER4);
    key
}

fn connection4() -> ConnectionKey {
    ConnectionKey {
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.2:8080".parse().unwrap(),
    }
}

/// A decoded record, minus its timestamp (checked separately).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    key: ConnectionKey,
    direction: Direction,
    seq: u32,
    flags: u8,
    payload: Vec<u8>,
    last_chunk: bool,
    truncated: bool,
    after_loss: bool,
    after_skip: Option<CaptureSkip>,
}

/// When a test case started, on the clocks of the ring records (BOOTTIME) and of the
/// connection table (MONOTONIC_COARSE).
#[derive(Clone, Copy)]
struct Since {
    boot_ns: u64,
    coarse_ns: u64,
}

impl Since {
    fn now() -> Self {
        Self {
            boot_ns: boot_now_ns().unwrap(),
            coarse_ns: coarse_now_ns().unwrap(),
        }
    }
}

struct Harness {
    capture: Capture,
}

impl Harness {
    fn new() -> Self {
        Self::with_ports(vec![8080])
    }

    fn with_ports(ports: Vec<u16>) -> Self {
        Self::with_config(CaptureConfig {
            ports,
            ..CaptureConfig::default()
        })
    }

    fn with_config(config: CaptureConfig) -> Self {
        Self {
            capture: Capture::load(&config).expect("load (root needed)"),
        }
    }

    fn xdp(&mut self, data: &[u8]) -> u32 {
        let program = loader::xdp(self.capture.ebpf_mut(), XDP_PROGRAM).unwrap();
        program
            .test_run(TestRunOptions {
                data_in: Some(data),
                ..TestRunOptions::default()
            })
            .expect("test run")
            .return_value
    }

    fn tc(&mut self, data: &[u8]) -> u32 {
        let program = loader::tc(self.capture.ebpf_mut()).unwrap();
        program
            .test_run(TestRunOptions {
                data_in: Some(data),
                ..TestRunOptions::default()
            })
            .expect("test run")
            .return_value
    }

    /// Every record now in the ring, with their timestamps checked to lie in `[since, now]`.
    fn records(&mut self, since: Since) -> Vec<Got> {
        let since = since.boot_ns;
        let until = boot_now_ns().unwrap();
        let mut out = Vec::new();
        self.capture.drain(|record| {
            let record = record.expect("decodable");
            assert!(
                (since..=until).contains(&record.boot_ns),
                "timestamp {} outside [{since}, {until}]",
                record.boot_ns
            );
            out.push(Got {
                key: record.key,
                direction: record.direction,
                seq: record.seq,
                flags: record.flags.0,
                payload: record.payload.to_vec(),
                last_chunk: record.last_chunk,
                truncated: record.truncated,
                after_loss: record.after_loss,
                after_skip: record.after_skip,
            });
        });
        out
    }

    fn totals(&self) -> CaptureStats {
        self.capture.totals().unwrap()
    }

    /// The connection's counters, with first/last seen checked to lie in `[since, now]`.
    fn connection(&self, key: &ConnKey, since: Since) -> ConnStats {
        let stats = self.capture.connection(key).expect("connection tracked");
        let since = since.coarse_ns;
        let until = coarse_now_ns().unwrap();
        assert!(since <= stats.first_seen_ns && stats.first_seen_ns <= stats.last_seen_ns);
        assert!(stats.last_seen_ns <= until);
        stats
    }
}

fn got(key: ConnectionKey, direction: Direction, seq: u32, flags: u8, payload: &[u8]) -> Got {
    Got {
        key,
        direction,
        seq,
        flags,
        payload: payload.to_vec(),
        last_chunk: true,
        truncated: false,
        after_loss: false,
        after_skip: None,
    }
}

#[tokio::test]
async fn ipv4_request_payload_is_one_record_and_counted() {
    let mut h = Harness::new();
    let since = Since::now();
    let body = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        h.xdp(&frame(&[], &v4(), &request(1000, PSH_ACK, body))),
        XDP_PASS
    );
    assert_eq!(
        h.records(since),
        vec![got(connection4(), Direction::Request, 1000, PSH_ACK, body)]
    );
    let stats = h.connection(&key4(), since);
    assert_eq!(stats.packets, [1, 0]);
    assert_eq!(stats.bytes, [body.len() as u64, 0]);
    assert_eq!(stats.flags, 0);
    assert_eq!(
        h.totals(),
        CaptureStats {
            packets: [1, 0],
            bytes: [body.len() as u64, 0],
            connections: 1,
            records: 1,
            ..CaptureStats::default()
        }
    );
}

#[tokio::test]
async fn response_direction_uses_the_canonical_key() {
    let mut h = Harness::new();
    let since = Since::now();
    let tcp = Tcp {
        src_port: 8080,
        dst_port: 40000,
        seq: 77,
        flags: PSH_ACK,
        payload: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        ..Tcp::default()
    };
    h.xdp(&frame(&[], &v4(), &request(1, PSH_ACK, b"x")));
    h.xdp(&frame(&[], &v4_response(), &tcp));
    let records = h.records(since);
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1],
        got(
            connection4(),
            Direction::Response,
            77,
            PSH_ACK,
            &tcp.payload
        )
    );
    let stats = h.connection(&key4(), since);
    assert_eq!(stats.packets, [1, 1]);
    assert_eq!(stats.bytes, [1, tcp.payload.len() as u64]);
    assert_eq!(
        h.totals().connections,
        1,
        "both directions are one connection"
    );
}

#[tokio::test]
async fn ipv6_with_double_vlan_and_tcp_options() {
    let mut h = Harness::with_ports(vec![443, 8080]);
    let since = Since::now();
    let tcp = Tcp {
        options: vec![2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2], // MSS, NOP, WS, SACK-permitted
        ..request(0xfffffff0, PSH_ACK, &pattern(300))
    };
    let ip = Ip::V6 {
        src: CLIENT6,
        dst: SERVER6,
    };
    let data = frame(&[(TPID_8021AD, 100), (TPID_8021Q, 200)], &ip, &tcp);
    assert_eq!(h.xdp(&data), XDP_PASS);
    let key = ConnectionKey {
        client: "[2001:db8::1]:40000".parse().unwrap(),
        server: "[2001:db8::2]:8080".parse().unwrap(),
    };
    assert_eq!(
        h.records(since),
        vec![got(
            key,
            Direction::Request,
            0xfffffff0,
            PSH_ACK,
            &pattern(300)
        )]
    );
    let ckey = ConnKey {
        client_addr: CLIENT6,
        server_addr: SERVER6,
        client_port: 40000,
        server_port: 8080,
        family: FAMILY_IPV6,
        ..ConnKey::ZERO
    };
    assert_eq!(h.connection(&ckey, since).bytes, [300, 0]);
}

#[tokio::test]
async fn ipv4_options_and_single_vlan() {
    let mut h = Harness::new();
    let since = Since::now();
    let ip = Ip::V4 {
        src: CLIENT4,
        dst: SERVER4,
        options: vec![0x94, 0x04, 0, 0, 1, 1, 1, 0], // Router Alert, NOPs, EOL
    };
    let data = frame(&[(TPID_8021Q, 5)], &ip, &request(5, PSH_ACK, b"abc"));
    assert_eq!(h.xdp(&data), XDP_PASS);
    assert_eq!(
        h.records(since),
        vec![got(connection4(), Direction::Request, 5, PSH_ACK, b"abc")]
    );
}

#[tokio::test]
async fn other_ports_leave_no_trace() {
    let mut h = Harness::new();
    let since = Since::now();
    let tcp = Tcp {
        dst_port: 8081,
        ..request(1, PSH_ACK, b"not ours")
    };
    assert_eq!(h.xdp(&frame(&[], &v4(), &tcp)), XDP_PASS);
    assert_eq!(h.tc(&frame(&[], &v4(), &tcp)), TCX_NEXT);
    assert_eq!(h.records(since), vec![]);
    assert!(h.capture.connections().is_empty());
    assert_eq!(h.totals(), CaptureStats::default());
}

#[tokio::test]
async fn syn_fin_rst_produce_empty_records_and_flags() {
    let mut h = Harness::new();
    let since = Since::now();
    h.xdp(&frame(&[], &v4(), &request(100, SYN, b"")));
    // A bare ACK: counted, no record.
    h.xdp(&frame(&[], &v4(), &request(101, 0x10, b"")));
    h.xdp(&frame(&[], &v4(), &request(101, FIN_ACK, b"")));
    let rst = Tcp {
        src_port: 8080,
        dst_port: 40000,
        seq: 9,
        flags: RST,
        ..Tcp::default()
    };
    h.xdp(&frame(&[], &v4_response(), &rst));
    assert_eq!(
        h.records(since),
        vec![
            got(connection4(), Direction::Request, 100, SYN, b""),
            got(connection4(), Direction::Request, 101, FIN_ACK, b""),
            got(connection4(), Direction::Response, 9, RST, b""),
        ]
    );
    let stats = h.connection(&key4(), since);
    assert_eq!(stats.packets, [3, 1]);
    assert_eq!(stats.bytes, [0, 0]);
    assert_eq!(
        stats.flags,
        SEEN_SYN | SEEN_FIN | (SEEN_RST << SEEN_RESPONSE_SHIFT)
    );
}

#[tokio::test]
async fn a_64k_segment_arrives_whole_in_chunks() {
    let mut h = Harness::new();
    let since = Since::now();
    // The largest IPv4 TCP payload: 65,535 − 20 − 20 bytes, spread over XDP fragments.
    let payload = pattern(65_495);
    let data = frame(&[], &v4(), &request(0xffff_0000, PSH_ACK | 0x01, &payload));
    assert_eq!(h.xdp(&data), XDP_PASS);
    let records = h.records(since);
    assert_eq!(records.len(), payload.len().div_ceil(CHUNK_DATA_SIZE));
    for (i, record) in records.iter().enumerate() {
        let offset = i * CHUNK_DATA_SIZE;
        let end = (offset + CHUNK_DATA_SIZE).min(payload.len());
        let last = i + 1 == records.len();
        assert_eq!(
            *record,
            Got {
                key: connection4(),
                direction: Direction::Request,
                seq: 0xffff_0000u32.wrapping_add(offset as u32),
                // FIN only on the last chunk.
                flags: if last { PSH_ACK | 0x01 } else { PSH_ACK },
                payload: payload[offset..end].to_vec(),
                last_chunk: last,
                truncated: false,
                after_loss: false,
                after_skip: None,
            },
            "chunk {i}"
        );
    }
    assert_eq!(h.totals().bytes, [payload.len() as u64, 0]);
    assert_eq!(h.totals().records, records.len() as u64);
}

/// A segment that fills one chunk exactly is one record with every flag; one byte more makes
/// two, SYN on the first, FIN on the second.
#[tokio::test]
async fn one_chunk_exactly_and_one_byte_more() {
    let mut h = Harness::new();
    let since = Since::now();
    let flags = PSH_ACK | SYN | 0x01;
    let whole = pattern(CHUNK_DATA_SIZE);
    assert_eq!(
        h.xdp(&frame(&[], &v4(), &request(7, flags, &whole))),
        XDP_PASS
    );
    assert_eq!(
        h.records(since),
        vec![got(connection4(), Direction::Request, 7, flags, &whole)]
    );
    let more = pattern(CHUNK_DATA_SIZE + 1);
    assert_eq!(
        h.xdp(&frame(&[], &v4(), &request(9, flags, &more))),
        XDP_PASS
    );
    assert_eq!(
        h.records(since),
        vec![
            Got {
                last_chunk: false,
                ..got(
                    connection4(),
                    Direction::Request,
                    9,
                    PSH_ACK | SYN,
                    &more[..CHUNK_DATA_SIZE],
                )
            },
            got(
                connection4(),
                Direction::Request,
                9 + CHUNK_DATA_SIZE as u32,
                PSH_ACK | 0x01,
                &more[CHUNK_DATA_SIZE..],
            ),
        ]
    );
    let stats = h.connection(&key4(), since);
    assert_eq!(stats.packets, [2, 0]);
    assert_eq!(stats.bytes, [(2 * CHUNK_DATA_SIZE + 1) as u64, 0]);
    let totals = h.totals();
    assert_eq!(totals.records, 3);
    assert_eq!(totals.lost_records, [0; 3]);
}

/// A 64 KB loopback frame with TCP timestamps ends past offset 0xffff, which
/// bpf_xdp_load_bytes cannot read from: the last chunk starts at 0xffff instead, the one
/// before it is shorter, and every byte still arrives exactly once.
#[tokio::test]
async fn chunks_never_start_past_offset_0xffff() {
    let mut h = Harness::new();
    let since = Since::now();
    let timestamps = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let payload = pattern(65_535 - 20 - 32);
    let tcp = Tcp {
        options: timestamps,
        ..request(500, PSH_ACK, &payload)
    };
    assert_eq!(h.xdp(&frame(&[], &v4(), &tcp)), XDP_PASS);
    let records = h.records(since);
    let payload_offset = 14 + 20 + 32;
    let last_start = 0xffff - payload_offset;
    let lengths: Vec<usize> = records.iter().map(|r| r.payload.len()).collect();
    let mut expected = vec![CHUNK_DATA_SIZE; 32];
    expected.push(last_start - 32 * CHUNK_DATA_SIZE);
    expected.push(payload.len() - last_start);
    assert_eq!(lengths, expected);
    let mut offset = 0;
    for record in &records {
        assert_eq!(record.seq, 500 + offset as u32);
        assert_eq!(
            record.payload,
            payload[offset..offset + record.payload.len()]
        );
        offset += record.payload.len();
    }
    assert_eq!(offset, payload.len());
    assert_eq!(h.totals().lost_records, [0, 0, 0]);
}

/// A BIG TCP segment (IPv4 total length 0, 70,000-byte frame) is cut at 34 chunks. Its 34th
/// chunk would start past offset 0xffff and is moved back, which makes it longer than a
/// chunk: it is counted as truncated too, and every payload byte is either delivered or
/// counted.
#[tokio::test]
async fn a_big_tcp_segment_is_cut_and_every_byte_accounted_for() {
    let mut h = Harness::new();
    let since = Since::now();
    let timestamps = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let payload_offset = 14 + 20 + 32;
    let payload = pattern(70_000 - payload_offset);
    let tcp = Tcp {
        options: timestamps,
        ..request(500, PSH_ACK, &payload)
    };
    let data = frame(&[], &v4(), &tcp);
    assert_eq!(data.len(), 70_000);
    assert_eq!(h.xdp(&data), XDP_PASS);
    let records = h.records(since);
    // Chunk 33 would start at 66 + 33 × 1,984 = 65,538: moved back by 3, so chunk 32 ends 3
    // bytes early.
    let mut expected = vec![CHUNK_DATA_SIZE; 32];
    expected.push(CHUNK_DATA_SIZE - 3);
    let lengths: Vec<usize> = records.iter().map(|r| r.payload.len()).collect();
    assert_eq!(lengths, expected);
    let delivered: usize = lengths.iter().sum();
    let received: Vec<u8> = records.iter().flat_map(|r| r.payload.clone()).collect();
    assert_eq!(received, payload[..delivered], "delivered bytes in order");
    let totals = h.totals();
    assert_eq!(totals.records, 33);
    assert_eq!(totals.lost_records, [0, 2, 0]);
    assert_eq!(
        totals.lost_bytes,
        [0, (payload.len() - delivered) as u64, 0]
    );
    assert_eq!(totals.bytes, [payload.len() as u64, 0]);
}

#[tokio::test]
async fn tc_egress_captures_like_xdp() {
    let mut h = Harness::new();
    let since = Since::now();
    let tcp = Tcp {
        src_port: 8080,
        dst_port: 40000,
        seq: 3,
        flags: PSH_ACK,
        payload: pattern(1448),
        ..Tcp::default()
    };
    assert_eq!(h.tc(&frame(&[], &v4_response(), &tcp)), TCX_NEXT);
    assert_eq!(
        h.records(since),
        vec![got(
            connection4(),
            Direction::Response,
            3,
            PSH_ACK,
            &pattern(1448)
        )]
    );
    assert_eq!(h.connection(&key4(), since).bytes, [0, 1448]);
}

#[tokio::test]
async fn malformed_headers_pass_and_are_counted() {
    let mut h = Harness::new();
    let since = Since::now();
    let good = frame(&[], &v4(), &request(1, PSH_ACK, b"payload"));
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("IPv4 header cut", good[..14 + 12].to_vec()));
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    cases.push(("IHL < 5", bad_ihl));
    let mut bad_doff = good.clone();
    bad_doff[14 + 20 + 12] = 0x40;
    cases.push(("TCP data offset < 5", bad_doff));
    let mut long_total = good.clone();
    long_total[16..18].copy_from_slice(&2000u16.to_be_bytes());
    cases.push(("IP length beyond the frame", long_total));
    cases.push(("TCP header cut", good[..14 + 20 + 10].to_vec()));
    let mut fragment = good.clone();
    fragment[20] = 0x20; // MF
    cases.push(("IPv4 fragment", fragment));
    cases.push((
        "IPv6 fragment of a TCP segment",
        with_ipv6_extension(44, &request(1, PSH_ACK, b"x")),
    ));
    let vlans = [(TPID_8021AD, 1), (TPID_8021Q, 2), (TPID_8021Q, 3)];
    cases.push((
        "three VLAN tags",
        frame(&vlans, &v4(), &request(1, 0, b"x")),
    ));

    let mut lost_bytes = 0;
    for (name, data) in &cases {
        assert_eq!(h.xdp(data), XDP_PASS, "{name}");
        lost_bytes += data.len() as u64;
    }
    assert_eq!(h.records(since), vec![]);
    let totals = h.totals();
    assert_eq!(totals.lost_records[UNPARSED], cases.len() as u64);
    assert_eq!(totals.lost_bytes[UNPARSED], lost_bytes);
    assert_eq!(totals.packets, [0, 0]);
    // Not IP, or not TCP: ignored, not counted.
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut udp = good.clone();
    udp[14 + 9] = 17;
    assert_eq!(h.xdp(&arp), XDP_PASS);
    assert_eq!(h.xdp(&udp), XDP_PASS);
    assert_eq!(h.totals(), totals);
}

/// An IPv6 frame with one 8-byte extension header of type `kind` before the TCP segment.
fn with_ipv6_extension(kind: u8, tcp: &Tcp) -> Vec<u8> {
    let plain = frame(
        &[],
        &Ip::V6 {
            src: CLIENT6,
            dst: SERVER6,
        },
        tcp,
    );
    let (header, l4) = plain.split_at(14 + 40);
    let mut out = header.to_vec();
    let payload_len = u16::from_be_bytes([out[18], out[19]]) + 8;
    out[18..20].copy_from_slice(&payload_len.to_be_bytes());
    out[20] = kind;
    // next header TCP, then (hop-by-hop: length 0 = 8 bytes, PadN) / (fragment: offset 0, M).
    if kind == 44 {
        out.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
    } else {
        out.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    }
    out.extend_from_slice(l4);
    out
}

#[tokio::test]
async fn ipv6_hop_by_hop_header_is_walked() {
    let mut h = Harness::new();
    let since = Since::now();
    assert_eq!(
        h.xdp(&with_ipv6_extension(0, &request(7, PSH_ACK, b"hello"))),
        XDP_PASS
    );
    let key = ConnectionKey {
        client: "[2001:db8::1]:40000".parse().unwrap(),
        server: "[2001:db8::2]:8080".parse().unwrap(),
    };
    assert_eq!(
        h.records(since),
        vec![got(key, Direction::Request, 7, PSH_ACK, b"hello")]
    );
}

#[tokio::test]
async fn ethernet_padding_is_not_payload() {
    let mut h = Harness::new();
    let since = Since::now();
    let mut data = frame(&[], &v4(), &request(1, PSH_ACK, b"ab"));
    data.resize(60, 0xee); // minimum Ethernet frame, padded
    h.xdp(&data);
    assert_eq!(
        h.records(since),
        vec![got(connection4(), Direction::Request, 1, PSH_ACK, b"ab")]
    );
}

/// Records take the ring space of their size class, not of the largest record: a one-page ring
/// (4,096 bytes) holds 30 records of a 56-byte segment (8 bytes of ring header + 64 of chunk
/// header + the 64-byte class = 136 bytes each; the producer may run at most 4,095 bytes
/// ahead). The 31st is lost and counted, and once userspace has read the ring there is room
/// again.
#[tokio::test]
async fn small_segments_pack_the_ring_and_a_full_ring_is_counted() {
    let mut h = Harness::with_config(CaptureConfig {
        ring_bytes: 4096,
        ..CaptureConfig::default()
    });
    let since = Since::now();
    let payload = pattern(56);
    for i in 0..31u32 {
        let seq = 1000 + i * 56;
        assert_eq!(
            h.xdp(&frame(&[], &v4(), &request(seq, PSH_ACK, &payload))),
            XDP_PASS
        );
    }
    let expected: Vec<Got> = (0..30u32)
        .map(|i| {
            got(
                connection4(),
                Direction::Request,
                1000 + i * 56,
                PSH_ACK,
                &payload,
            )
        })
        .collect();
    assert_eq!(h.records(since), expected);
    let totals = h.totals();
    assert_eq!(totals.records, 30);
    assert_eq!(totals.lost_records, [1, 0, 0]);
    assert_eq!(totals.lost_bytes, [56, 0, 0]);
    // Every packet is counted, captured or not.
    assert_eq!(totals.packets, [31, 0]);
    assert_eq!(h.connection(&key4(), since).bytes, [31 * 56, 0]);

    // A bare ACK of the direction makes no record and leaves the mark for the next one.
    let seq = 1000 + 31 * 56;
    assert_eq!(h.xdp(&frame(&[], &v4(), &request(seq, ACK, &[]))), XDP_PASS);
    assert_eq!(h.records(since), vec![]);
    assert_eq!(
        h.xdp(&frame(
            &[],
            &v4(),
            &request(1000 + 31 * 56, PSH_ACK, &payload)
        )),
        XDP_PASS
    );
    // The first record of the direction after the loss says so (reassembly gives the hole up
    // at once); the next does not.
    let after = h.records(since);
    assert_eq!(
        after,
        vec![Got {
            after_loss: true,
            ..got(
                connection4(),
                Direction::Request,
                1000 + 31 * 56,
                PSH_ACK,
                &payload,
            )
        }]
    );
    assert_eq!(
        h.xdp(&frame(
            &[],
            &v4(),
            &request(1000 + 32 * 56, PSH_ACK, &payload)
        )),
        XDP_PASS
    );
    assert!(!h.records(since)[0].after_loss);
    assert_eq!(h.totals().records, 32);
}

/// Ring events seen by an edge-triggered epoll instance, which (like the daemon's tokio
/// reactor) only learns of records when the kernel wakes the ring's readers.
struct RingWakeups(std::os::fd::OwnedFd);

impl RingWakeups {
    fn watch(ring: std::os::fd::BorrowedFd<'_>) -> Self {
        use std::os::fd::{AsRawFd as _, FromRawFd as _};
        // SAFETY: plain syscalls; the new fd is owned by the OwnedFd right away.
        unsafe {
            let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            assert!(epoll >= 0, "epoll_create1");
            let epoll = std::os::fd::OwnedFd::from_raw_fd(epoll);
            let mut event = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: 0,
            };
            let added = libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                ring.as_raw_fd(),
                &mut event,
            );
            assert_eq!(added, 0, "epoll_ctl");
            Self(epoll)
        }
    }

    /// Whether a wakeup arrived within `timeout_ms`.
    fn woken(&self, timeout_ms: i32) -> bool {
        use std::os::fd::AsRawFd as _;
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: one writable event.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), &mut event, 1, timeout_ms) };
        assert!(n >= 0, "epoll_wait");
        n == 1
    }
}

/// Records wake the reader only when the unread part of the ring crosses an eighth of it;
/// otherwise the daemon reads them every `drain_interval`. With a 64 KiB ring the threshold is
/// 8,192 bytes and a full-MTU record takes 1,544 (8 + the 1,536-byte class): the 6th record takes the
/// unread bytes from 7,720 to 9,264 and wakes the reader, the 7th finds them above already and
/// does not.
#[tokio::test]
async fn the_reader_is_woken_when_records_pile_up() {
    let mut h = Harness::with_config(CaptureConfig {
        ring_bytes: 64 << 10,
        ..CaptureConfig::default()
    });
    let since = Since::now();
    let wakeups = RingWakeups::watch(h.capture.ring_fd());
    let payload = pattern(1448);
    let send = |h: &mut Harness, i: u32| {
        let packet = frame(&[], &v4(), &request(1000 + i * 1448, PSH_ACK, &payload));
        assert_eq!(h.xdp(&packet), XDP_PASS);
    };
    for i in 0..5 {
        send(&mut h, i);
    }
    assert!(
        !wakeups.woken(100),
        "5 records (7,720 bytes) woke the reader"
    );
    send(&mut h, 5);
    assert!(
        wakeups.woken(5_000),
        "the 6th record did not wake the reader"
    );
    send(&mut h, 6);
    assert!(!wakeups.woken(100), "the 7th record woke the reader again");
    assert_eq!(h.records(since).len(), 7);
    assert_eq!(h.totals().records, 7);
}

/// Without a wakeup from the kernel, `Capture::readable` still returns within its
/// `drain_interval`, so a lone record reaches the daemon (here: within 5 s, against a 20 ms
/// interval; without the interval this would wait for a wakeup that never comes).
#[tokio::test]
async fn a_record_without_a_wakeup_is_read_after_the_drain_interval() {
    let mut h = Harness::with_config(CaptureConfig {
        drain_interval: std::time::Duration::from_millis(20),
        ..CaptureConfig::default()
    });
    let since = Since::now();
    let wakeups = RingWakeups::watch(h.capture.ring_fd());
    let body = b"hello";
    h.xdp(&frame(&[], &v4(), &request(1000, PSH_ACK, body)));
    assert!(!wakeups.woken(0), "a lone record woke the reader");
    tokio::time::timeout(std::time::Duration::from_secs(5), h.capture.readable())
        .await
        .expect("readable() returned within its drain interval")
        .unwrap();
    assert_eq!(
        h.records(since),
        vec![got(connection4(), Direction::Request, 1000, PSH_ACK, body)]
    );
}

/// An idle ring is read less and less often, down to once per `idle_drain_interval`, so an idle
/// daemon hardly wakes; records bring the reads back to every `drain_interval`.
#[tokio::test]
async fn an_idle_ring_is_read_less_often_until_records_come() {
    let mut h = Harness::with_config(CaptureConfig {
        drain_interval: std::time::Duration::from_millis(10),
        idle_drain_interval: std::time::Duration::from_secs(1),
        ..CaptureConfig::default()
    });
    let wait_ms = |h: &Harness| h.capture.drain_wait().as_millis();
    assert_eq!(wait_ms(&h), 10);
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(h.capture.drain(|_| {}), 0);
        waits.push(wait_ms(&h));
    }
    assert_eq!(waits, [20, 40, 80, 160, 320, 640, 1000, 1000]);
    h.xdp(&frame(&[], &v4(), &request(1000, PSH_ACK, b"hello")));
    assert_eq!(h.capture.drain(|_| {}), 1);
    assert_eq!(wait_ms(&h), 10);
}

/// A read bounded in bytes stops at the record that reaches the bound (the daemon's loop bounds
/// each read to one ring's worth, so that a reader behind the kernel still runs its other
/// work), and the rest is due at once (virtual time, so the result is exact).
#[tokio::test(start_paused = true)]
async fn a_bounded_read_leaves_the_rest_due_at_once() {
    use std::time::Duration;
    let mut h = Harness::with_config(CaptureConfig {
        drain_interval: Duration::from_millis(10),
        ..CaptureConfig::default()
    });
    for seq in [1000, 1005, 1010] {
        h.xdp(&frame(&[], &v4(), &request(seq, PSH_ACK, b"hello")));
    }
    let mut seqs = Vec::new();
    let mut push = |record: Result<Record<'_>, DecodeError>| seqs.push(record.unwrap().seq);
    assert_eq!(h.capture.drain_at_most(1, &mut push), 1);
    // A record of five payload bytes takes 128 bytes (its size class, header included), and
    // the ring's header 8 more.
    assert_eq!(h.capture.drained_bytes(), 136);
    assert_eq!(h.capture.drain_wait(), Duration::ZERO);
    let start = tokio::time::Instant::now();
    h.capture.readable().await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the rest was not due at once"
    );
    assert_eq!(h.capture.drain_at_most(1000, &mut push), 2);
    assert_eq!(h.capture.drained_bytes(), 272);
    assert_eq!(h.capture.drain_wait(), Duration::from_millis(10));
    assert_eq!(h.capture.drain_at_most(1000, &mut push), 0);
    assert_eq!(h.capture.drain_wait(), Duration::from_millis(20));
    assert_eq!(seqs, [1000, 1005, 1010]);
}

/// The daemon's loop re-creates `Capture::readable` whenever another branch fires (its 1 s
/// stats tick among them): the next drain still comes when due instead of being put off by
/// every tick (virtual time, so the result is exact).
#[tokio::test(start_paused = true)]
async fn other_timers_do_not_put_off_the_next_drain() {
    use std::time::Duration;
    let mut h = Harness::with_config(CaptureConfig {
        drain_interval: Duration::from_millis(10),
        idle_drain_interval: Duration::from_secs(1),
        ..CaptureConfig::default()
    });
    while h.capture.drain_wait() < Duration::from_secs(1) {
        assert_eq!(h.capture.drain(|_| {}), 0);
    }
    let start = tokio::time::Instant::now();
    h.xdp(&frame(&[], &v4(), &request(1000, PSH_ACK, b"hello")));
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let drained_at = loop {
        tokio::select! {
            ready = h.capture.readable() => {
                ready.unwrap();
                if h.capture.drain(|_| {}) > 0 {
                    break tokio::time::Instant::now();
                }
            }
            _ = tick.tick() => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the drain was put off"
        );
    };
    assert_eq!(drained_at - start, Duration::from_secs(1));
}

/// A skip span (`SkipSpan`): payload inside it is counted, not copied; a segment ending at its
/// end or carrying FIN leaves a record without payload at the payload's end; a segment
/// crossing its end is copied from there; payload outside it is copied whole; forgotten, it
/// skips nothing.
#[tokio::test]
async fn skip_spans_leave_payload_out_exactly() {
    use webui_monitor_core::{pipeline::SkipCommand, reassembly::SkipRange};
    let mut h = Harness::with_config(CaptureConfig {
        skip_min_bytes: 8 * 1024,
        ..CaptureConfig::default()
    });
    let since = Since::now();
    let data: Vec<u8> = pattern(50);
    let skip = SkipCommand::Skip {
        connection: connection4(),
        range: SkipRange {
            direction: Direction::Request,
            from: 1000,
            to: 1100,
            chunked: false,
        },
    };
    h.capture.apply_skip(&skip).expect("map write");
    for (seq, flags, len) in [
        (1000, PSH_ACK, 50), // inside: nothing
        (1050, PSH_ACK, 50), // ends at the span's end: the mark
        (1080, PSH_ACK, 40), // crosses it: the last 20 bytes
        (1100, PSH_ACK, 10), // after it: whole
        (1000, FIN_ACK, 30), // inside with FIN: the FIN at 1030
        (900, PSH_ACK, 10),  // before it: whole
    ] {
        h.xdp(&frame(&[], &v4(), &request(seq, flags, &data[..len])));
    }
    assert_eq!(
        h.records(since),
        vec![
            got(connection4(), Direction::Request, 1100, PSH_ACK, b""),
            got(
                connection4(),
                Direction::Request,
                1100,
                PSH_ACK,
                &data[20..40]
            ),
            got(
                connection4(),
                Direction::Request,
                1100,
                PSH_ACK,
                &data[..10]
            ),
            got(connection4(), Direction::Request, 1030, FIN_ACK, b""),
            got(connection4(), Direction::Request, 900, PSH_ACK, &data[..10]),
        ]
    );
    let totals = h.totals();
    assert_eq!(totals.skipped_bytes, 50 + 50 + 20 + 30);
    assert_eq!(totals.bytes, [190, 0]);
    assert_eq!(totals.records, 5);

    h.capture
        .apply_skip(&SkipCommand::Forget {
            connection: connection4(),
        })
        .expect("map delete");
    let since = Since::now();
    h.xdp(&frame(&[], &v4(), &request(1000, PSH_ACK, &data)));
    assert_eq!(
        h.records(since),
        vec![got(connection4(), Direction::Request, 1000, PSH_ACK, &data)]
    );
    assert_eq!(h.totals().skipped_bytes, 150);
}

/// A chunked skip span (`SkipSpan` with `SKIP_CHUNKED`) followed along its body: the kernel
/// reads the size lines at the span's end, moves the span past whole chunks, and copies from
/// the last chunk's line, a line the segment cuts, or the line past its bound, after a record
/// without payload that carries the span's counters. The capture model's test
/// (`webui-monitor-core/src/capture_model.rs`: `a_chunked_range_follows_the_body`) sends the
/// same segments and expects the same.
#[tokio::test]
async fn a_chunked_span_follows_the_body() {
    use webui_monitor_core::{pipeline::SkipCommand, reassembly::SkipRange};
    let mut h = Harness::with_config(CaptureConfig {
        skip_min_bytes: 8 * 1024,
        ..CaptureConfig::default()
    });
    let chunked = |from, to| SkipCommand::Skip {
        connection: connection4(),
        range: SkipRange {
            direction: Direction::Request,
            from,
            to,
            chunked: true,
        },
    };
    let span_to = |h: &Harness| {
        let spans = h.capture.skip_spans(&key4()).expect("spans");
        let span = spans.spans[Direction::Request.index()];
        (span.from, span.to, span.chunks, span.data)
    };
    // The span's mark, then the payload from `seq` on, if any.
    let marked = |seq, payload: &[u8], chunks, data| {
        let mark = Got {
            after_skip: Some(CaptureSkip { chunks, data }),
            last_chunk: payload.is_empty(),
            ..got(connection4(), Direction::Request, seq, ACK, b"")
        };
        let rest = got(connection4(), Direction::Request, seq, ACK, payload);
        if payload.is_empty() {
            vec![mark]
        } else {
            vec![mark, rest]
        }
    };
    let since = Since::now();
    // An empty span at the first size line; three lines in the segment, the third chunk's
    // data runs past its end: the span moved to the fourth line, and the mark says so.
    h.capture
        .apply_skip(&chunked(1000, 1000))
        .expect("map write");
    let a = [
        b"10\r\n".as_slice(),
        &[b'a'; 16],
        b"\r\n8\r\n",
        &[b'b'; 8],
        b"\r\n20\r\n",
        &[b'c'; 10],
    ]
    .concat();
    h.xdp(&frame(&[], &v4(), &request(1000, ACK, &a)));
    assert_eq!(h.records(since), marked(1073, b"", 3, 56));
    assert_eq!(span_to(&h), (1000, 1073, 3, 56));
    // The rest of the third chunk, a fourth chunk, the last chunk: copied from the last
    // chunk's line, with the counters.
    let b = [&[b'c'; 22][..], b"\r\n5\r\nddddd\r\n0\r\n\r\n"].concat();
    h.xdp(&frame(&[], &v4(), &request(1049, ACK, &b)));
    assert_eq!(h.records(since), marked(1083, b"0\r\n\r\n", 4, 61));
    assert_eq!(span_to(&h), (1000, 1083, 4, 61));
    assert_eq!(h.totals().skipped_bytes, 49 + 34);
    // A size line cut by the segment's end: copied from the line, the span unmoved.
    h.capture
        .apply_skip(&chunked(2000, 2010))
        .expect("map write");
    let c = [&[b'e'; 8][..], b"\r\n1f"].concat();
    h.xdp(&frame(&[], &v4(), &request(2000, ACK, &c)));
    assert_eq!(h.records(since), marked(2010, b"1f", 0, 0));
    assert_eq!(span_to(&h), (2000, 2010, 0, 0));
    // Five lines: four followed, copied from the fifth.
    h.capture
        .apply_skip(&chunked(3000, 3000))
        .expect("map write");
    let d = b"1\r\na\r\n".repeat(5);
    h.xdp(&frame(&[], &v4(), &request(3000, ACK, &d)));
    assert_eq!(h.records(since), marked(3024, b"1\r\na\r\n", 4, 4));
    // Ending where the chunk it followed ends: the mark, with the counters.
    h.capture
        .apply_skip(&chunked(4000, 4000))
        .expect("map write");
    h.xdp(&frame(&[], &v4(), &request(4000, ACK, b"3\r\nabc\r\n")));
    assert_eq!(h.records(since), marked(4008, b"", 1, 3));
    // Inside the span, not reaching its end, moving nothing: nothing sent.
    h.capture
        .apply_skip(&chunked(8000, 8100))
        .expect("map write");
    h.xdp(&frame(&[], &v4(), &request(8000, ACK, &[b'f'; 50])));
    assert_eq!(h.records(since), vec![]);
    h.capture
        .apply_skip(&chunked(4000, 4008))
        .expect("map write");
    // Past the span's end (the kernel passed it before the span was written): whole.
    h.xdp(&frame(&[], &v4(), &request(4010, ACK, b"3\r\nabc\r\n")));
    assert_eq!(
        h.records(since),
        vec![got(
            connection4(),
            Direction::Request,
            4010,
            ACK,
            b"3\r\nabc\r\n"
        )]
    );
    assert_eq!(h.totals().skipped_bytes, 83 + 10 + 24 + 8 + 50);
    // A line with a chunk extension is not followed.
    h.capture
        .apply_skip(&chunked(7000, 7000))
        .expect("map write");
    h.xdp(&frame(&[], &v4(), &request(7000, ACK, b"3;x\r\nabc\r\n")));
    assert_eq!(h.records(since), marked(7000, b"3;x\r\nabc\r\n", 0, 0));
    // A plain span is not followed past its end.
    h.capture
        .apply_skip(&SkipCommand::Skip {
            connection: connection4(),
            range: SkipRange {
                direction: Direction::Request,
                from: 5000,
                to: 5000,
                chunked: false,
            },
        })
        .expect("map write");
    h.xdp(&frame(&[], &v4(), &request(5000, ACK, b"3\r\nabc\r\n")));
    assert_eq!(
        h.records(since),
        vec![got(
            connection4(),
            Direction::Request,
            5000,
            ACK,
            b"3\r\nabc\r\n"
        )]
    );
    // The egress program follows the same way.
    h.capture
        .apply_skip(&chunked(6000, 6000))
        .expect("map write");
    let e = [b"3\r\nabc\r\n".as_slice(), b"0\r\n\r\n"].concat();
    h.tc(&frame(&[], &v4(), &request(6000, ACK, &e)));
    assert_eq!(h.records(since), marked(6008, b"0\r\n\r\n", 1, 3));
    assert_eq!(h.totals().skipped_bytes, 175 + 8);
}
