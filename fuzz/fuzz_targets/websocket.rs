//! Fuzzes the WebSocket decoder of an upgraded connection: frame parser, fragmentation,
//! permessage-deflate inflater, Engine.IO/Socket.IO and Open WebUI event parsing.
//!
//! Run: `AYA_BUILD_SKIP=1 cargo +nightly fuzz run websocket` (from the repository root). If the
//! installed nightly is older than the pinned toolchain (aya needs 1.98), build with the pinned
//! stable compiler instead; the coverage flags are stable `-C` options:
//!
//! ```text
//! cd fuzz && AYA_BUILD_SKIP=1 RUSTFLAGS="-Cpasses=sancov-module \
//!   -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
//!   -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
//!   --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
//!   cargo build --release --target x86_64-unknown-linux-gnu --bin websocket
//! ./target/x86_64-unknown-linux-gnu/release/websocket -rss_limit_mb=512 corpus/websocket
//! ```
//!
//! Seeds: the WebSocket streams of `fixtures/openwebui/browser.pcap` in the layout below
//! (byte 0 = 1, then records of up to 63 bytes).
//!
//! Input layout: byte 0 selects the negotiated extension; then records of one control byte
//! (bit 0: direction, bit 1: a gap instead of data, bits 2..7: length) followed by that many
//! bytes. Any input must neither panic nor grow memory beyond the configured caps.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use webui_monitor_core::{
    segment::{ConnectionKey, Direction, Timestamp},
    websocket::{WebSocketConnection, WebSocketLimits, WebSocketShared},
};

const EXTENSIONS: [Option<&str>; 4] = [
    None,
    Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
    Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    Some("permessage-deflate; server_max_window_bits=99"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    // Small caps so that the fuzzer reaches them.
    let limits = WebSocketLimits {
        max_frame_bytes: 1 << 16,
        max_message_bytes: 1 << 12,
        max_inflated_bytes: 1 << 20,
        max_token_bytes: 64,
        max_id_bytes: 16,
        max_tracked_messages: 2,
    };
    let mut shared = WebSocketShared::new(limits);
    let key = ConnectionKey {
        client: SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)),
        server: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
    };
    let mut conn = WebSocketConnection::new(key, EXTENSIONS[usize::from(mode & 3)], &mut shared);
    let mut out = Vec::new();
    let mut ts = 0u64;
    while let Some((&control, tail)) = rest.split_first() {
        let direction = if control & 1 == 0 {
            Direction::Request
        } else {
            Direction::Response
        };
        let len = usize::from(control >> 2).min(tail.len());
        let (chunk, after) = tail.split_at(len);
        rest = after;
        ts += 1;
        if control & 2 != 0 {
            conn.on_gap(
                direction,
                len as u64,
                Timestamp::from_nanos(ts),
                &mut shared,
                &mut out,
            );
        } else {
            conn.on_data(
                direction,
                chunk,
                Timestamp::from_nanos(ts),
                &mut shared,
                &mut out,
            );
        }
        // Events are bounded by the input: at most a handful per byte.
        assert!(out.len() <= 4 * data.len() + 2);
    }
    conn.on_close(Timestamp::from_nanos(ts + 1), &mut shared, &mut out);
});
