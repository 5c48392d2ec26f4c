//! Arbitrary segment sequences (few connections, small caps): reassembly never panics, never
//! holds more than its caps, and ends with nothing buffered.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use webui_monitor_core::{
    reassembly::{CloseReason, Reassembler, ReassemblyLimits, StreamHandler},
    segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp},
};

/// Counts bytes and checks that timestamps handed over never go backwards per connection.
struct Check;

impl StreamHandler for Check {
    type State = Timestamp;
    fn open(&mut self, _: ConnectionKey, _: bool, ts: Timestamp) -> Timestamp {
        ts
    }
    fn data(
        &mut self,
        last: &mut Timestamp,
        _: ConnectionKey,
        _: Direction,
        data: &[u8],
        ts: Timestamp,
    ) {
        assert!(!data.is_empty());
        assert!(ts >= *last);
        *last = ts;
    }
    fn gap(&mut self, _: &mut Timestamp, _: ConnectionKey, _: Direction, len: u64, _: Timestamp) {
        assert!(len > 0);
    }
    fn fin(&mut self, _: &mut Timestamp, _: ConnectionKey, _: Direction, _: Timestamp) {}
    fn close(&mut self, _: Timestamp, _: ConnectionKey, _: CloseReason, _: Timestamp) {}
}

fuzz_target!(|data: &[u8]| {
    let limits = ReassemblyLimits {
        max_connections: 3,
        max_buffered_bytes_per_connection: 256,
        max_buffered_bytes_total: 512,
        max_buffered_pieces_per_connection: 8,
        hole_timeout_ms: 5,
        idle_timeout_ms: 50,
        closed_linger_ms: 20,
        max_closed_connections: 2,
        max_window_bytes: 4096,
        window_resync_ms: 10,
    };
    let mut r: Reassembler<Timestamp> = Reassembler::new(limits);
    let mut h = Check;
    let mut ts = 0u64;
    // Record: port (1), direction (0x80) + capture loss (0x40) + flags (1), seq (4), time step
    // ms (1), length (1), payload.
    let mut rest = data;
    while rest.len() >= 8 {
        let port = u16::from(rest[0] % 4);
        let direction = if rest[1] & 0x80 == 0 {
            Direction::Request
        } else {
            Direction::Response
        };
        let flags = TcpFlags(rest[1] & 0x1f);
        let rest_flags = rest[1];
        // Sequence numbers near a small base so that records overlap and reorder.
        let seq = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]) % 2048;
        ts += u64::from(rest[6]) * 1_000_000;
        let len = usize::from(rest[7]).min(rest.len() - 8);
        let payload = &rest[8..8 + len];
        rest = &rest[8 + len..];
        let key = ConnectionKey {
            client: SocketAddr::from((Ipv4Addr::LOCALHOST, 40000 + port)),
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        };
        let segment = Segment {
            key,
            direction,
            seq,
            flags,
            payload,
            timestamp: Timestamp::from_nanos(ts),
            after_capture_loss: rest_flags & 0x40 != 0,
            capture_skip: None,
        };
        r.on_segment(&segment, &mut h);
        assert!(r.buffered_bytes() <= 512);
        assert!(r.active_connections() <= 3);
        if rest.first().is_some_and(|b| *b == 0xff) {
            r.on_tick(Timestamp::from_nanos(ts), &mut h);
        }
    }
    r.finish(Timestamp::from_nanos(ts), &mut h);
    assert_eq!(r.buffered_bytes(), 0);
});
