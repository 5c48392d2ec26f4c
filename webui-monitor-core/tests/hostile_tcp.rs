//! Forged TCP segments — as anyone who can reach the host can send them past XDP, which sees
//! ingress before the kernel checks sequence numbers and handshakes — must not close, blind or
//! evict a real connection, nor add usage. Each test replays crafted segments through a
//! [`Monitor`] and reads every user's completions and tokens, and the reassembly's trust
//! counters, back from its registry.
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
};

use webui_monitor_core::{
    Monitor, MonitorConfig,
    segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp},
    usage_summary::summarize,
};

#[path = "support/cast.rs"]
mod cast;

use cast::{ALICE, ALICE_KEY, BOB, BOB_KEY, MALLORY_KEY, answer, completion_with, directory};

const REQ: Direction = Direction::Request;
const RESP: Direction = Direction::Response;
const ACK: u8 = TcpFlags::ACK;

fn completion(key: &str) -> Vec<u8> {
    completion_with(key, "")
}

fn server() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 8080))
}

/// A monitor and the traffic time of its next segment.
struct Wire {
    monitor: Monitor,
    registry: prometheus::Registry,
    t: u64,
}

impl Wire {
    fn new() -> Self {
        let registry = prometheus::Registry::new();
        let mut monitor = Monitor::new(&MonitorConfig::default(), None, &registry).unwrap();
        monitor.set_directory(Some(directory()));
        Self {
            monitor,
            registry,
            t: 1_700_000_000_000_000_000,
        }
    }

    fn send(&mut self, key: ConnectionKey, direction: Direction, seq: u32, flags: u8, data: &[u8]) {
        self.t += 1_000;
        self.monitor.on_segment(
            &Segment {
                key,
                direction,
                seq,
                flags: TcpFlags(flags),
                payload: data,
                timestamp: Timestamp::from_nanos(self.t),
                after_capture_loss: false,
                capture_skip: None,
            },
            |_| {},
        );
    }

    /// A request and its answer at the next sequence numbers `next` (request, response).
    fn exchange(
        &mut self,
        key: ConnectionKey,
        next: &mut [u32; 2],
        request: &[u8],
        response: &[u8],
    ) {
        for (direction, data) in [(REQ, request), (RESP, response)] {
            let d = direction.index();
            self.send(key, direction, next[d], ACK, data);
            next[d] = next[d].wrapping_add(data.len() as u32);
        }
    }

    /// Every user's (completions, input tokens, output tokens), after the end of input.
    fn users(&mut self) -> BTreeMap<String, (u64, u64, u64)> {
        self.monitor
            .finish(Timestamp::from_nanos(self.t + 1_000), |_| {});
        summarize(&self.registry.gather(), 0.0)
            .users
            .into_iter()
            .filter(|u| u.completions > 0 || u.tokens().total() > 0)
            .map(|u| {
                let tokens = u.tokens();
                (u.user, (u.completions, tokens.input, tokens.output))
            })
            .collect()
    }

    /// `webui_monitor_reassembly_trust_events_total{event}`.
    fn trust(&self, event: &str) -> u64 {
        self.monitor.refresh_metrics();
        let family = self
            .registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "webui_monitor_reassembly_trust_events_total")
            .expect("trust family registered");
        family
            .get_metric()
            .iter()
            .find(|m| m.get_label().iter().any(|l| l.value() == event))
            .map(|m| m.get_counter().get_value() as u64)
            .expect("event exported")
    }
}

/// A proxy's pooled upstream connection carries Alice's completion, then Bob's. In between,
/// 100,000 spoofed 4-tuples each send Mallory's completion request (no handshake, no answer),
/// and forged segments hit the pooled connection itself: a RST and a completion of Mallory
/// outside its window.
#[test]
fn forged_segments_and_a_tuple_flood_leave_the_established_connection_and_its_counts() {
    const FLOOD: u32 = 100_000;
    let mut w = Wire::new();
    let pooled = ConnectionKey {
        client: SocketAddr::from(([10, 0, 0, 1], 40000)),
        server: server(),
    };
    let mut next = [1001u32, 5001u32];
    w.send(pooled, REQ, 1000, TcpFlags::SYN, b"");
    w.send(pooled, RESP, 5000, TcpFlags::SYN | ACK, b"");
    w.exchange(pooled, &mut next, &completion(ALICE_KEY), &answer(10, 20));

    let mallory = completion(MALLORY_KEY);
    for i in 0..FLOOD {
        let spoofed = ConnectionKey {
            client: SocketAddr::from((Ipv4Addr::from(0x0b00_0000 + i), 40000)),
            server: server(),
        };
        w.send(spoofed, REQ, i.wrapping_mul(7919), ACK, &mallory);
    }
    let far = 1 << 30;
    let [req, resp] = next;
    w.send(pooled, REQ, req.wrapping_add(far), TcpFlags::RST, b"");
    w.send(pooled, RESP, resp.wrapping_add(far), TcpFlags::RST, b"");
    w.send(pooled, REQ, req.wrapping_add(far), ACK, &mallory);
    w.send(
        pooled,
        RESP,
        resp.wrapping_add(far),
        ACK,
        &answer(1000, 2000),
    );

    w.exchange(pooled, &mut next, &completion(BOB_KEY), &answer(3, 4));
    let evicted = u64::from(FLOOD) - (65_536 - 1);
    assert_eq!(w.trust("unconfirmed_evicted"), evicted);
    assert_eq!(w.trust("rst_out_of_window"), 2);
    assert_eq!(w.trust("out_of_window_segments"), 2);
    assert_eq!(w.trust("handshakes"), 1);
    assert_eq!(w.trust("confirmed"), 0);
    assert_eq!(
        w.users(),
        BTreeMap::from([
            (ALICE.to_string(), (1, 10, 20)),
            (BOB.to_string(), (1, 3, 4)),
        ])
    );
    assert_eq!(w.trust("unconfirmed_closed"), u64::from(FLOOD));
    // Each spoofed request was parsed, and left unanswered at its close: not reported.
    assert_eq!(w.trust("unconfirmed_exchanges"), u64::from(FLOOD));
}

/// The monitor started on a live pooled connection: it sees neither handshake nor the start of
/// the streams. The connection is confirmed by the first answer, and its exchanges count.
#[test]
fn mid_stream_pickup_is_confirmed_and_its_exchanges_count() {
    let mut w = Wire::new();
    let key = ConnectionKey {
        client: SocketAddr::from(([10, 0, 0, 1], 40001)),
        server: server(),
    };
    let mut next = [3_000_000_000u32, u32::MAX - 100]; // the response stream wraps
    w.exchange(key, &mut next, &completion(ALICE_KEY), &answer(10, 20));
    w.exchange(key, &mut next, &completion(BOB_KEY), &answer(3, 4));
    assert_eq!(w.trust("confirmed"), 1);
    assert_eq!(w.trust("out_of_window_segments"), 0);
    assert_eq!(
        w.users(),
        BTreeMap::from([
            (ALICE.to_string(), (1, 10, 20)),
            (BOB.to_string(), (1, 3, 4)),
        ])
    );
    assert_eq!(w.trust("unconfirmed_exchanges"), 0);
}
