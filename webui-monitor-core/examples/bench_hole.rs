//! Cost of a segment that lands behind a hole, as a ratio against in-order segments, in one
//! process.
//!
//! `cargo run --release -p webui-monitor-core --example bench_hole [PIECES]`
//!
//! One connection receives `PIECES` (default 10,000) segments of 100 bytes. In the baseline they
//! arrive in order and are delivered at once; in the hole variant the first segment is missing,
//! so every later one is buffered behind the hole (the caps are raised so none is skipped).
//! The variants alternate for `ROUNDS` rounds; each one's best round counts (the least disturbed
//! on a shared machine), and the ratio of the best times is printed. Buffering copies each
//! payload, so the ratio stays above 1 even when looking up the oldest buffered piece is free;
//! what it shows is whether the cost per segment grows with the number of pieces held back.
use std::{
    hint::black_box,
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use webui_monitor_core::{
    reassembly::{CloseReason, Reassembler, ReassemblyLimits, StreamHandler},
    segment::{ConnectionKey, Direction, Segment, TcpFlags, Timestamp},
};

const ROUNDS: usize = 7;
const SEGMENT: usize = 100;

/// Counts delivered bytes so the work cannot be optimised away.
#[derive(Default)]
struct Count(u64);

impl StreamHandler for Count {
    type State = ();
    fn open(&mut self, _: ConnectionKey, _: bool, _: Timestamp) {}
    fn data(&mut self, _: &mut (), _: ConnectionKey, _: Direction, data: &[u8], _: Timestamp) {
        self.0 += data.len() as u64;
    }
    fn gap(&mut self, _: &mut (), _: ConnectionKey, _: Direction, len: u64, _: Timestamp) {
        self.0 += len;
    }
    fn fin(&mut self, _: &mut (), _: ConnectionKey, _: Direction, _: Timestamp) {}
    fn close(&mut self, _: (), _: ConnectionKey, _: CloseReason, _: Timestamp) {}
}

/// Feeds segments 0..pieces (skipping segment 0 when `hole`) and returns the time spent in
/// `on_segment` for segments 1..pieces.
fn run(pieces: usize, hole: bool) -> Duration {
    let key = ConnectionKey {
        client: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000)),
        server: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 8080)),
    };
    let limits = ReassemblyLimits {
        max_buffered_bytes_per_connection: usize::MAX,
        max_buffered_bytes_total: usize::MAX,
        max_buffered_pieces_per_connection: usize::MAX,
        hole_timeout_ms: u64::MAX,
        ..ReassemblyLimits::default()
    };
    let mut r = Reassembler::new(limits);
    let mut h = Count::default();
    let payload = [b'x'; SEGMENT];
    let seg = |i: usize, flags: u8| Segment {
        key,
        direction: Direction::Request,
        seq: 1000 + 1 + (i * SEGMENT) as u32,
        flags: TcpFlags(flags),
        payload: &payload,
        timestamp: Timestamp::from_nanos(1_000_000 + i as u64),
        after_capture_loss: false,
        capture_skip: None,
    };
    // The SYN fixes the stream start, so segment 1 can be placed behind a missing segment 0;
    // with the SYN-ACK the connection is established, as nearly every data segment's is.
    let syn = Segment {
        seq: 1000,
        flags: TcpFlags(TcpFlags::SYN),
        payload: &[],
        ..seg(0, 0)
    };
    r.on_segment(&syn, &mut h);
    let syn_ack = Segment {
        direction: Direction::Response,
        seq: 5000,
        flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
        ..syn
    };
    r.on_segment(&syn_ack, &mut h);
    if !hole {
        r.on_segment(&seg(0, TcpFlags::ACK), &mut h);
    }
    let start = Instant::now();
    for i in 1..pieces {
        r.on_segment(&seg(i, TcpFlags::ACK), &mut h);
    }
    let elapsed = start.elapsed();
    let expected = if hole { 0 } else { (pieces * SEGMENT) as u64 };
    assert_eq!(h.0, expected, "hole={hole}: delivered bytes");
    assert_eq!(
        r.buffered_bytes(),
        if hole { (pieces - 1) * SEGMENT } else { 0 }
    );
    black_box(&r);
    elapsed
}

fn main() {
    let pieces: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PIECES must be a number"))
        .unwrap_or(10_000);
    let (mut base, mut hole) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        base = base.min(run(pieces, false));
        hole = hole.min(run(pieces, true));
    }
    let per = |d: Duration| d.as_nanos() as f64 / (pieces - 1) as f64;
    println!("{pieces} segments, best of {ROUNDS} rounds");
    println!("in order:      {:8.1} ns/segment", per(base));
    println!("behind a hole: {:8.1} ns/segment", per(hole));
    println!("ratio:         {:8.2}", per(hole) / per(base));
}
