//! The sans-IO core of webui-monitor: TCP segments and traffic time in, Open WebUI usage facts
//! and Prometheus metrics out.
//!
//! This crate contains no capture, networking, file, terminal or runtime code and reads no
//! clock: every timestamp comes with the traffic, and the caller says when time passes. The
//! shells drive it — the daemon from the kernel's ring buffer, `webui-monitor replay` from a
//! capture file — and own every file descriptor, timer and thread. `cargo test -p
//! webui-monitor-core` therefore runs anywhere, without root or bpf-linker.
//!
//! # The data path
//!
//! Each layer only uses the ones above it in this list:
//!
//! 1. [`segment`]: one TCP segment of a monitored connection, with its traffic time. The
//!    daemon decodes them from kernel records; [`pcap`] dissects them out of capture files.
//! 2. [`reassembly`]: ordered byte streams per connection and direction (first copy wins,
//!    caps, gaps, an LRU connection table).
//! 3. [`http`] (with [`json`]): HTTP/1.1 exchanges — keep-alive, pipelining, chunked,
//!    gzip/deflate/br/zstd, SSE, NDJSON and the JSON fields that matter, in bounded memory.
//! 4. [`websocket`]: upgraded connections — RFC 6455, permessage-deflate, Engine.IO,
//!    Socket.IO and Open WebUI's events.
//! 5. [`pipeline`]: 2–4 per connection, as [`PipelineEvent`]s (exchanges and socket facts).
//! 6. [`openwebui`]: who sent each request, with which credential, from which client, to which
//!    route and model, with how many tokens.
//! 7. [`metrics`]: the Prometheus families, including the engines' own health.
//! 8. [`Monitor`]: 5–7 as one state machine; [`usage_summary`] reads its registry back per
//!    user; [`replay`] drives it from a capture file.
//!
//! # Driving a [`Monitor`]
//!
//! A `Monitor` has four kinds of methods:
//!
//! * **Input**, in traffic order: [`Monitor::on_segment`] for each segment. Events it completes
//!   are shown to the caller's observer, then attributed.
//! * **Time**: [`Monitor::on_tick`] whenever traffic time has advanced (the daemon calls it
//!   every second with the kernel clock mapped to wall time; `replay` once per second of
//!   packet timestamps). It expires idle connections, idle users and stale answers and brings
//!   the stream counters up to date. Without ticks nothing expires.
//! * **Context**: [`Monitor::set_directory`] with a new snapshot of Open WebUI's users and API
//!   keys, whenever the shell has read one (at start, periodically, on SIGHUP). Requests are
//!   attributed with the snapshot current when they complete.
//! * **End**: [`Monitor::finish`] once, after the last segment: every connection is closed
//!   and flushed and what still waits for an answer is settled. Nothing may be fed after it.
//!
//! and getters taking `&self` ([`Monitor::pipeline`], [`Monitor::stream_metrics`]), which may
//! be called at any time. Timestamps must not go backwards across calls: segments and ticks
//! carry one clock, the traffic's. The metrics live in the [`prometheus::Registry`] given to
//! [`Monitor::new`]; the caller serves or writes it, after [`Monitor::refresh_metrics`] if no
//! tick has run since the last input.
pub mod http;
pub mod json;
pub mod metrics;
pub mod monitor;
pub mod openwebui;
pub mod pcap;
pub mod pipeline;
pub mod reassembly;
pub mod replay;
pub mod segment;
pub mod usage_summary;
pub mod websocket;

pub use monitor::{Monitor, MonitorConfig};
pub use pipeline::PipelineEvent;

/// The fixture captures and their expected results, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/support/expected_check.rs"]
mod expected_check;
