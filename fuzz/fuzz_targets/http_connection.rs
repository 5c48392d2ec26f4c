//! A whole HTTP connection driven by a script decoded from the input: data in either
//! direction (any sizes), gaps, FINs and a close. Nothing may panic, and state stays bounded.
#![no_main]
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use libfuzzer_sys::fuzz_target;
use webui_monitor_core::{
    http::{HttpConnection, HttpEvent, HttpLimits, HttpShared},
    segment::{ConnectionKey, Direction, Timestamp},
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let key = ConnectionKey {
        client: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000)),
        server: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)),
    };
    let mut shared = HttpShared {
        limits: HttpLimits {
            max_header_bytes: 1024,
            max_headers: 16,
            max_held_bytes: 1024,
            max_decoded_body_bytes: 1 << 20,
            max_pending_requests: 8,
            ..HttpLimits::default()
        },
        ..HttpShared::default()
    };
    let mut conn = HttpConnection::new(key, flags & 1 != 0);
    let mut out = Vec::new();
    let mut ts = 0u64;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        ts += 1;
        let direction = if op & 0x80 == 0 {
            Direction::Request
        } else {
            Direction::Response
        };
        let arg = usize::from(op & 0x3f);
        match (op >> 6) & 1 {
            0 => {
                let n = (arg * 8 + 1).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                conn.on_data(direction, chunk, Timestamp(ts), &mut shared, &mut out);
            }
            _ => match arg {
                0 => conn.on_fin(direction, Timestamp(ts), &mut shared, &mut out),
                1 => conn.on_close(Timestamp(ts), &mut shared, &mut out),
                n => conn.on_gap(direction, n as u64, Timestamp(ts), &mut shared, &mut out),
            },
        }
        // Consume events as the pipeline would, so memory stays flat.
        for e in out.drain(..) {
            if let HttpEvent::Upgraded { leftover, .. } = e {
                assert!(leftover[0].len() <= 1024 + 64 * 1024);
            }
        }
    }
    conn.on_close(Timestamp(ts + 1), &mut shared, &mut out);
});
