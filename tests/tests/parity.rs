//! The kernel parser and the replay dissector read the same frames the same way: crafted
//! frames go through both kernel programs under `BPF_PROG_TEST_RUN` and through
//! `pcap::Dissector`, and all three must reach the same verdict (monitored, unparsed, not
//! monitored), the same connection key and direction, and the same payload offset and length.
//! Both follow `webui_monitor_common::wire`; this is where a difference between them shows.
//! Needs root (or CAP_BPF + CAP_PERFMON). `cargo xtask test-kernels` runs it in every kernel
//! of the matrix.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use aya::programs::{TestRun, TestRunOptions};
use webui_monitor::capture::{Capture, CaptureConfig, loader};
use webui_monitor_common::{
    CaptureStats, ConnKey, ConnStats, FAMILY_IPV4, LossReason, XDP_PROGRAM,
    wire::{ipv6, protocol, vlan},
};
use webui_monitor_core::{
    pcap::{Dissector, LinkType, SkipReason},
    segment::{ConnectionKey, Direction, Timestamp},
};
use webui_monitor_tests::frame::{
    CLIENT4, CLIENT6, Ip, SERVER4, SERVER6, TPID_8021AD, TPID_8021Q, Tcp, frame, pattern,
};

const PORT: u16 = 8080;
const PSH_ACK: u8 = 0x18;
const ACK: u8 = 0x10;
const SYN: u8 = 0x02;
const FIN_ACK: u8 = 0x11;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const AH: u8 = 51;
const UNPARSED: usize = LossReason::Unparsed as usize;

/// What a parser made of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Not TCP/IP, or TCP on other ports.
    NotMonitored,
    /// TCP/IP the parser could not read: the daemon counts it as lost, the replay skips it.
    Unparsed,
    Monitored {
        key: ConnectionKey,
        direction: Direction,
        /// Where the payload starts in the frame; `None` without payload (the kernel's offset
        /// shows only through the bytes it copies).
        payload_offset: Option<usize>,
        payload_len: usize,
    },
}

fn replay(ports: &[u16], frame: &[u8]) -> Verdict {
    let dissector = Dissector::new(ports.iter().copied());
    match dissector.dissect(LinkType::ETHERNET, Timestamp::default(), frame) {
        Ok(segment) => Verdict::Monitored {
            key: segment.key,
            direction: segment.direction,
            payload_offset: (!segment.payload.is_empty())
                .then(|| segment.payload.as_ptr() as usize - frame.as_ptr() as usize),
            payload_len: segment.payload.len(),
        },
        Err(
            SkipReason::Truncated
            | SkipReason::Malformed
            | SkipReason::Fragment
            | SkipReason::TooManyHeaders,
        ) => Verdict::Unparsed,
        Err(
            SkipReason::UnsupportedLinkType
            | SkipReason::NotIp
            | SkipReason::NotTcp
            | SkipReason::OtherPort,
        ) => Verdict::NotMonitored,
    }
}

#[derive(Clone, Copy, Debug)]
enum Hook {
    Xdp,
    Tc,
}

struct Kernel {
    capture: Capture,
}

impl Kernel {
    fn new(ports: &[u16]) -> Self {
        let config = CaptureConfig {
            ports: ports.to_vec(),
            ..CaptureConfig::default()
        };
        Self {
            capture: Capture::load(&config).expect("load (root needed)"),
        }
    }

    /// Runs the program of `hook` on `data`; `false` if the kernel refused to run it.
    fn run(&mut self, hook: Hook, data: &[u8]) -> bool {
        let options = TestRunOptions {
            data_in: Some(data),
            ..TestRunOptions::default()
        };
        let ebpf = self.capture.ebpf_mut();
        let ran = match hook {
            Hook::Xdp => loader::xdp(ebpf, XDP_PROGRAM).unwrap().test_run(options),
            Hook::Tc => loader::tc(ebpf).unwrap().test_run(options),
        };
        match (hook, ran) {
            (_, Ok(_)) => true,
            // The skb test run refuses some frames whose network header is cut short (the
            // stack never hands TC such an skb); XDP runs every frame.
            (Hook::Tc, Err(_)) => false,
            (Hook::Xdp, Err(e)) => panic!("XDP test run of a {}-byte frame: {e}", data.len()),
        }
    }

    fn connections(&self) -> HashMap<ConnKey, ConnStats> {
        self.capture.connections().into_iter().collect()
    }

    /// What the program hooked at `hook` made of `frame`, read from the counters, the
    /// connection table and the ring; `None` if the kernel refused to run it.
    fn verdict(&mut self, hook: Hook, frame: &[u8]) -> Option<Verdict> {
        let totals: CaptureStats = self.capture.totals().unwrap();
        let connections = self.connections();
        if !self.run(hook, frame) {
            assert_eq!(
                self.capture.totals().unwrap(),
                totals,
                "{hook:?}: refused yet counted"
            );
            return None;
        }
        let after = self.capture.totals().unwrap();
        let mut payload = Vec::new();
        self.capture.drain(|record| {
            payload.extend_from_slice(record.expect("decodable").payload);
        });
        let packets = |s: &CaptureStats| s.packets[0] + s.packets[1];
        if after.lost_records[UNPARSED] != totals.lost_records[UNPARSED] {
            assert_eq!(
                packets(&after),
                packets(&totals),
                "{hook:?}: unparsed yet counted"
            );
            assert_eq!(
                after.lost_bytes[UNPARSED] - totals.lost_bytes[UNPARSED],
                frame.len() as u64
            );
            assert!(payload.is_empty(), "{hook:?}: unparsed yet records");
            return Some(Verdict::Unparsed);
        }
        if packets(&after) == packets(&totals) {
            assert_eq!(after, totals, "{hook:?}: not monitored yet counted");
            assert!(payload.is_empty(), "{hook:?}: not monitored yet records");
            return Some(Verdict::NotMonitored);
        }
        let direction = if after.packets[0] != totals.packets[0] {
            Direction::Request
        } else {
            Direction::Response
        };
        let dir = direction as usize;
        let payload_len = (after.bytes[dir] - totals.bytes[dir]) as usize;
        assert_eq!(
            payload.len(),
            payload_len,
            "{hook:?}: records hold the counted bytes"
        );
        let changed: Vec<ConnKey> = self
            .connections()
            .into_iter()
            .filter(|(key, stats)| connections.get(key) != Some(stats))
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            changed.len(),
            1,
            "{hook:?}: one connection counted: {changed:?}"
        );
        let payload_offset = (!payload.is_empty()).then(|| {
            let at: Vec<usize> = frame
                .windows(payload.len())
                .enumerate()
                .filter(|(_, window)| *window == payload)
                .map(|(at, _)| at)
                .collect();
            assert_eq!(
                at.len(),
                1,
                "{hook:?}: the payload is found once in the frame"
            );
            at[0]
        });
        Some(Verdict::Monitored {
            key: connection_key(&changed[0]),
            direction,
            payload_offset,
            payload_len,
        })
    }
}

fn connection_key(key: &ConnKey) -> ConnectionKey {
    let addr = |bytes: [u8; 16]| -> IpAddr {
        if key.family == FAMILY_IPV4 {
            Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()
        } else {
            Ipv6Addr::from(bytes).into()
        }
    };
    ConnectionKey {
        client: SocketAddr::new(addr(key.client_addr), key.client_port),
        server: SocketAddr::new(addr(key.server_addr), key.server_port),
    }
}

fn v4() -> Ip {
    Ip::V4 {
        src: CLIENT4,
        dst: SERVER4,
        options: vec![],
    }
}

fn v6() -> Ip {
    Ip::V6 {
        src: CLIENT6,
        dst: SERVER6,
    }
}

fn request(flags: u8, payload: &[u8]) -> Tcp {
    Tcp {
        src_port: 40000,
        dst_port: PORT,
        seq: 1000,
        flags,
        options: vec![],
        payload: payload.to_vec(),
    }
}

/// A payload no header byte sequence can be mistaken for.
fn body() -> Vec<u8> {
    pattern(300).iter().map(|b| b | 0x80).collect()
}

/// An IPv6 extension header of `kind` (its next-header byte is filled in by
/// [`with_extensions`]) whose length byte is `length`.
fn extension(kind: u8, length: u8) -> (u8, Vec<u8>) {
    let len = match ipv6::extension(kind) {
        Some(walked) => walked.len(length),
        None => 8,
    };
    let mut header = vec![0u8; len];
    header[1] = length;
    if kind == protocol::FRAGMENT {
        header[1] = 0;
    }
    (kind, header)
}

/// A fragment header with `offset` (in 8-byte units) and more-fragments `more`.
fn fragment(offset: u16, more: bool) -> (u8, Vec<u8>) {
    let mut header = vec![0u8; 8];
    header[2..4].copy_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    header[4..8].copy_from_slice(&[0, 0, 0, 7]);
    (protocol::FRAGMENT, header)
}

/// An IPv6 frame with `extensions` between the fixed header and the upper layer `upper`
/// (protocol number) carrying `tcp`'s bytes.
fn with_extensions(
    vlans: &[(u16, u16)],
    extensions: &[(u8, Vec<u8>)],
    upper: u8,
    tcp: &Tcp,
) -> Vec<u8> {
    let plain = frame(vlans, &v6(), tcp);
    let ip = 14 + 4 * vlans.len();
    let (header, l4) = plain.split_at(ip + ipv6::HEADER_LEN);
    let mut out = header.to_vec();
    let ext_len: usize = extensions.iter().map(|(_, e)| e.len()).sum();
    let payload_len = u16::from_be_bytes([out[ip + 4], out[ip + 5]]) + ext_len as u16;
    out[ip + 4..ip + 6].copy_from_slice(&payload_len.to_be_bytes());
    out[ip + 6] = extensions.first().map_or(upper, |(kind, _)| *kind);
    for (i, (_, header)) in extensions.iter().enumerate() {
        let next = extensions.get(i + 1).map_or(upper, |(kind, _)| *kind);
        out.push(next);
        out.extend_from_slice(&header[1..]);
    }
    out.extend_from_slice(l4);
    out
}

/// Offset of the IPv4 header in an untagged frame.
const IP: usize = 14;

/// Every frame, named.
fn frames() -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, data: Vec<u8>| cases.push((name.to_owned(), data));
    let body = body();
    let good4 = frame(&[], &v4(), &request(PSH_ACK, &body));
    let good6 = frame(&[], &v6(), &request(PSH_ACK, &body));

    // Plain TCP, both families, both directions.
    add("IPv4", good4.clone());
    add("IPv6", good6.clone());
    let response = Tcp {
        src_port: PORT,
        dst_port: 40000,
        ..request(PSH_ACK, &body)
    };
    let v4_back = Ip::V4 {
        src: SERVER4,
        dst: CLIENT4,
        options: vec![],
    };
    add("IPv4 response", frame(&[], &v4_back, &response));
    let v6_back = Ip::V6 {
        src: SERVER6,
        dst: CLIENT6,
    };
    add("IPv6 response", frame(&[], &v6_back, &response));
    let with_options = Tcp {
        options: vec![2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2],
        ..request(PSH_ACK, &body)
    };
    add("TCP options", frame(&[], &v4(), &with_options));

    // VLAN tags: up to the limit, and one more.
    let tags = [(TPID_8021AD, 100), (TPID_8021Q, 200), (TPID_8021Q, 300)];
    for n in 1..=vlan::MAX_TAGS + 1 {
        add(
            &format!("IPv4, {n} VLAN tags"),
            frame(&tags[..n], &v4(), &request(PSH_ACK, &body)),
        );
        add(
            &format!("IPv6, {n} VLAN tags"),
            frame(&tags[..n], &v6(), &request(PSH_ACK, &body)),
        );
    }
    add(
        "one 802.1Q tag",
        frame(&[(TPID_8021Q, 7)], &v4(), &request(PSH_ACK, &body)),
    );
    add(
        "VLAN tag cut",
        frame(&tags[..1], &v4(), &request(PSH_ACK, &body))[..16].to_vec(),
    );

    // IPv4 options: skipped by the header length.
    for options in [
        vec![1, 1, 1, 0],
        vec![0x94, 4, 0, 0, 1, 1, 1, 0],
        vec![1; 40],
    ] {
        let ip = Ip::V4 {
            src: CLIENT4,
            dst: SERVER4,
            options: options.clone(),
        };
        add(
            &format!("IPv4, {} option bytes", options.len()),
            frame(&[], &ip, &request(PSH_ACK, &body)),
        );
    }

    // IPv6 extension headers of each walked kind: up to the limit, and one more.
    for (kind, length) in [
        (protocol::HOP_BY_HOP, 0),
        (protocol::ROUTING, 1),
        (protocol::DESTINATION_OPTIONS, 2),
        (protocol::HOP_BY_HOP, 3),
    ] {
        for n in 0..=ipv6::MAX_EXTENSION_HEADERS + 1 {
            let chain = vec![extension(kind, length); n];
            add(
                &format!("IPv6, {n} extension headers {kind} of length {length}"),
                with_extensions(&[], &chain, protocol::TCP, &request(PSH_ACK, &body)),
            );
        }
    }
    let mixed = vec![
        extension(protocol::HOP_BY_HOP, 0),
        extension(protocol::DESTINATION_OPTIONS, 1),
        extension(protocol::ROUTING, 2),
        extension(protocol::DESTINATION_OPTIONS, 0),
    ];
    add(
        "IPv6, four mixed extension headers, 2 VLAN tags",
        with_extensions(&tags[..2], &mixed, protocol::TCP, &request(PSH_ACK, &body)),
    );
    let mut extension_cut =
        with_extensions(&[], &mixed[..1], protocol::TCP, &request(PSH_ACK, b""));
    extension_cut.truncate(IP + 40 + 1);
    add("IPv6 extension header cut", extension_cut);
    let mut extension_beyond = with_extensions(
        &[],
        &[extension(protocol::HOP_BY_HOP, 40)],
        protocol::TCP,
        &request(PSH_ACK, b""),
    );
    extension_beyond.truncate(IP + 40 + 40);
    add(
        "IPv6 extension header longer than the frame",
        extension_beyond,
    );
    let mut short_payload_len =
        with_extensions(&[], &mixed, protocol::TCP, &request(PSH_ACK, &body));
    short_payload_len[IP + 4..IP + 6].copy_from_slice(&16u16.to_be_bytes());
    add(
        "IPv6 payload length shorter than its extension headers",
        short_payload_len,
    );

    // Fragments.
    let mut mf = good4.clone();
    mf[IP + 6] = 0x20;
    add("IPv4 first fragment", mf);
    let mut later = good4.clone();
    later[IP + 7] = 0x10;
    add("IPv4 later fragment", later);
    let mut udp_fragment = good4.clone();
    udp_fragment[IP + 6] = 0x20;
    udp_fragment[IP + 9] = UDP;
    add("IPv4 UDP fragment", udp_fragment);
    let tcp = request(PSH_ACK, &body);
    add(
        "IPv6 first fragment of TCP",
        with_extensions(&[], &[fragment(0, true)], protocol::TCP, &tcp),
    );
    add(
        "IPv6 later fragment of TCP",
        with_extensions(&[], &[fragment(100, false)], protocol::TCP, &tcp),
    );
    add(
        "IPv6 atomic fragment",
        with_extensions(&[], &[fragment(0, false)], protocol::TCP, &tcp),
    );
    add(
        "IPv6 hop-by-hop, fragment, TCP",
        with_extensions(
            &[],
            &[extension(0, 0), fragment(0, true)],
            protocol::TCP,
            &tcp,
        ),
    );
    add(
        "IPv6 fragment, destination options, TCP",
        with_extensions(
            &[],
            &[fragment(0, true), extension(60, 0)],
            protocol::TCP,
            &tcp,
        ),
    );
    add(
        "IPv6 fragment of UDP",
        with_extensions(&[], &[fragment(0, true)], UDP, &tcp),
    );

    // Truncated and malformed headers.
    add("IPv4 header cut", good4[..IP + 12].to_vec());
    add("IPv6 header cut", good6[..IP + 30].to_vec());
    add("IPv4 options cut", {
        let ip = Ip::V4 {
            src: CLIENT4,
            dst: SERVER4,
            options: vec![1; 40],
        };
        frame(&[], &ip, &request(PSH_ACK, b""))[..IP + 30].to_vec()
    });
    add("TCP header cut", good4[..IP + 20 + 10].to_vec());
    add("TCP header cut, IPv6", good6[..IP + 40 + 19].to_vec());
    let mut bad_ihl = good4.clone();
    bad_ihl[IP] = 0x44;
    add("IPv4 header length 16", bad_ihl);
    let mut bad_version4 = good4.clone();
    bad_version4[IP] = 0x65;
    add("IPv4 version 6", bad_version4);
    let mut bad_version6 = good6.clone();
    bad_version6[IP] = 0x40;
    add("IPv6 version 4", bad_version6);
    let mut short_total = good4.clone();
    short_total[IP + 2..IP + 4].copy_from_slice(&12u16.to_be_bytes());
    add("IPv4 total length below the header", short_total);
    let mut long_total = good4.clone();
    long_total[IP + 2..IP + 4].copy_from_slice(&2000u16.to_be_bytes());
    add("IPv4 total length beyond the frame", long_total.clone());
    let mut long_payload6 = good6.clone();
    long_payload6[IP + 4..IP + 6].copy_from_slice(&2000u16.to_be_bytes());
    add("IPv6 payload length beyond the frame", long_payload6);
    let mut short_doff = good4.clone();
    short_doff[IP + 20 + 12] = 0x40;
    add("TCP data offset 16", short_doff);
    let mut long_doff = frame(&[], &v4(), &request(PSH_ACK, b"abc"));
    long_doff[IP + 20 + 12] = 0xf0;
    add("TCP data offset beyond the segment", long_doff);
    let mut big_tcp = good4.clone();
    big_tcp[IP + 2..IP + 4].copy_from_slice(&0u16.to_be_bytes());
    add("IPv4 total length 0 (BIG TCP)", big_tcp);
    let mut jumbo = good6.clone();
    jumbo[IP + 4..IP + 6].copy_from_slice(&0u16.to_be_bytes());
    add("IPv6 payload length 0", jumbo);

    // Not TCP.
    let mut arp = good4.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    add("ARP", arp);
    let mut udp4 = good4.clone();
    udp4[IP + 9] = UDP;
    add("IPv4 UDP", udp4);
    let mut udp4_bad = good4.clone();
    udp4_bad[IP + 9] = UDP;
    udp4_bad[IP] = 0x44;
    add("IPv4 UDP with header length 16", udp4_bad);
    let mut udp6 = good6.clone();
    udp6[IP + 6] = UDP;
    add("IPv6 UDP", udp6);
    add(
        "ICMPv6 after hop-by-hop",
        with_extensions(&[], &[extension(0, 0)], ICMPV6, &tcp),
    );
    add(
        "IPv6 no next header",
        with_extensions(&[], &[extension(60, 0)], 59, &tcp),
    );
    add(
        "IPv6 authentication header",
        with_extensions(&[], &[extension(0, 0)], AH, &tcp),
    );

    // Other ports, also with lengths that are wrong only if the segment were read.
    let other = Tcp {
        dst_port: PORT + 1,
        ..request(PSH_ACK, &body)
    };
    add("IPv4 other port", frame(&[], &v4(), &other));
    add("IPv6 other port", frame(&[], &v6(), &other));
    let mut other_long = frame(&[], &v4(), &other);
    other_long[IP + 2..IP + 4].copy_from_slice(&2000u16.to_be_bytes());
    add("other port, IPv4 total length beyond the frame", other_long);
    let mut other_doff = frame(&[], &v4(), &other);
    other_doff[IP + 20 + 12] = 0x40;
    add("other port, TCP data offset 16", other_doff);

    // No payload.
    add("bare ACK", frame(&[], &v4(), &request(ACK, b"")));
    add("SYN", frame(&[], &v6(), &request(SYN, b"")));
    add("FIN", frame(&tags[..2], &v4(), &request(FIN_ACK, b"")));
    let mut padded_ack = frame(&[], &v4(), &request(ACK, b""));
    padded_ack.resize(60, 0xee);
    add("bare ACK padded to 60 bytes", padded_ack);
    let mut padded = frame(&[], &v4(), &request(PSH_ACK, &[0xc1, 0xc2]));
    padded.resize(60, 0xee);
    add("2 bytes padded to 60", padded);
    cases
}

/// Runs every frame through both programs and the dissector, monitoring `ports`; returns the
/// frames they read differently, and how many frames got each verdict.
fn compare(ports: &[u16], frames: Vec<(String, Vec<u8>)>) -> (Vec<String>, [usize; 3]) {
    let mut kernel = Kernel::new(ports);
    let mut disagreements = Vec::new();
    let mut verdicts = [0usize; 3];
    for (name, frame) in frames {
        let replay = replay(ports, &frame);
        let xdp = kernel
            .verdict(Hook::Xdp, &frame)
            .expect("XDP runs every frame");
        let tc = kernel.verdict(Hook::Tc, &frame);
        if tc.is_none() {
            // Only a frame the kernel could not read anyway may be refused.
            println!("{name}: the TC test run refused the frame");
            if replay != Verdict::Unparsed {
                disagreements.push(format!(
                    "{name}: TC refused a frame replay reads as {replay:?}"
                ));
            }
        }
        if xdp != replay || tc.as_ref().is_some_and(|tc| *tc != replay) {
            disagreements.push(format!(
                "{name}:\n  replay {replay:?}\n  xdp    {xdp:?}\n  tc     {tc:?}"
            ));
        }
        verdicts[match replay {
            Verdict::NotMonitored => 0,
            Verdict::Unparsed => 1,
            Verdict::Monitored { .. } => 2,
        }] += 1;
    }
    (disagreements, verdicts)
}

#[tokio::test]
async fn kernel_and_replay_agree_on_every_frame() {
    let (disagreements, verdicts) = compare(&[PORT], frames());
    assert!(
        disagreements.is_empty(),
        "{} frames read differently:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    // Every verdict is exercised.
    assert!(verdicts.iter().all(|&n| n >= 5), "verdicts {verdicts:?}");
}

/// Both endpoints on monitored ports: the destination is the server (`tcp::server`).
#[tokio::test]
async fn kernel_and_replay_orient_connections_between_monitored_ports_alike() {
    const OTHER: u16 = 9090;
    let segment = |src_port, dst_port| Tcp {
        src_port,
        dst_port,
        ..request(PSH_ACK, &body())
    };
    let v4_back = Ip::V4 {
        src: SERVER4,
        dst: CLIENT4,
        options: vec![],
    };
    let v6_back = Ip::V6 {
        src: SERVER6,
        dst: CLIENT6,
    };
    let mut frames = Vec::new();
    for (family, forth, back) in [("IPv4", v4(), v4_back), ("IPv6", v6(), v6_back)] {
        for (src_port, dst_port) in [(OTHER, PORT), (PORT, OTHER), (PORT, PORT), (OTHER, OTHER)] {
            frames.push((
                format!("{family} {src_port} -> {dst_port}"),
                frame(&[], &forth, &segment(src_port, dst_port)),
            ));
            frames.push((
                format!("{family} {src_port} -> {dst_port}, reversed addresses"),
                frame(&[], &back, &segment(src_port, dst_port)),
            ));
        }
        let same = match forth {
            Ip::V4 { src, .. } => Ip::V4 {
                src,
                dst: src,
                options: vec![],
            },
            Ip::V6 { src, .. } => Ip::V6 { src, dst: src },
        };
        frames.push((
            format!("{family} {PORT} -> {PORT}, one address"),
            frame(&[], &same, &segment(PORT, PORT)),
        ));
    }
    let (disagreements, verdicts) = compare(&[PORT, OTHER], frames);
    assert!(
        disagreements.is_empty(),
        "{} frames read differently:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert_eq!(verdicts, [0, 0, 18]);
}

/// The expected verdicts themselves, on the replay side (the kernel agrees, see above): the
/// limits are the shared ones, not whatever both might drift to together.
#[test]
fn the_limits_are_the_shared_ones() {
    let body = body();
    let tags = [(TPID_8021AD, 1), (TPID_8021Q, 2), (TPID_8021Q, 3)];
    let replay = |data: &[u8]| replay(&[PORT], data);
    let monitored = |data: &[u8]| matches!(replay(data), Verdict::Monitored { .. });
    assert!(monitored(&frame(
        &tags[..vlan::MAX_TAGS],
        &v4(),
        &request(PSH_ACK, &body)
    )));
    assert_eq!(
        replay(&frame(
            &tags[..vlan::MAX_TAGS + 1],
            &v4(),
            &request(PSH_ACK, &body)
        )),
        Verdict::Unparsed
    );
    let hop = extension(protocol::HOP_BY_HOP, 0);
    let chain = |n| vec![hop.clone(); n];
    let tcp = request(PSH_ACK, &body);
    assert!(monitored(&with_extensions(
        &[],
        &chain(ipv6::MAX_EXTENSION_HEADERS),
        protocol::TCP,
        &tcp
    )));
    assert_eq!(
        replay(&with_extensions(
            &[],
            &chain(ipv6::MAX_EXTENSION_HEADERS + 1),
            protocol::TCP,
            &tcp
        )),
        Verdict::Unparsed
    );
    let frame4 = frame(&[], &v4(), &tcp);
    assert_eq!(
        replay(&frame4),
        Verdict::Monitored {
            key: ConnectionKey {
                client: "10.0.0.1:40000".parse().unwrap(),
                server: "10.0.0.2:8080".parse().unwrap(),
            },
            direction: Direction::Request,
            payload_offset: Some(14 + 20 + 20),
            payload_len: body.len(),
        }
    );
}
