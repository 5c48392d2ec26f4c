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
//! In the order the data flows; each layer uses only the ones before it:
//!
//! 1. [`segment`]: one TCP segment of a monitored connection, with its traffic time. The
//!    daemon decodes them from kernel records; [`pcap`] dissects them out of capture files.
//! 2. [`reassembly`]: ordered byte streams per connection and direction (first copy wins,
//!    caps, gaps, an LRU connection table).
//! 3. [`http`] (with `json`): HTTP/1.1 exchanges — keep-alive, pipelining, chunked,
//!    gzip/deflate/br/zstd, SSE, NDJSON and the JSON fields that matter, in bounded memory.
//! 4. [`websocket`]: upgraded connections — RFC 6455, permessage-deflate, Engine.IO,
//!    Socket.IO and Open WebUI's events.
//! 5. [`pipeline`]: 2–4 per connection, as [`PipelineEvent`]s (exchanges and socket facts).
//! 6. [`openwebui`]: who sent each request, with which credential, from which client, to which
//!    route and model, with how many tokens — as [`openwebui::Fact`]s handed to a sink.
//! 7. [`metrics`]: the Prometheus families, including the engines' own health; its
//!    [`metrics::PrometheusSink`] applies attribution's facts to the `openwebui_*` families
//!    (spend priced by [`pricing`]), [`metrics::GenAiSink`] to the OpenTelemetry GenAI ones.
//! 8. [`audit`]: the audit trail of scripted session-credential calls, another sink of the same
//!    facts, queued for the shell to write.
//! 9. [`Monitor`]: 5–8 as one state machine; [`usage_summary`] reads its registry back per
//!    user; [`replay`] drives it from a capture file.
//!
//! # Driving a [`Monitor`]
//!
//! A [`Monitor`] is built from a [`MonitorConfig`], Open WebUI's JWT secret (if known) and the
//! [`prometheus::Registry`] it registers its families in. It has four kinds of methods:
//!
//! * **A. Input**, [`Monitor::on_segment`]: one TCP segment, in the order the capture delivered
//!   it (ring buffer or file order). Each segment carries its own capture timestamp.
//! * **B. Time**, [`Monitor::on_tick`]: traffic time has advanced to `now`. Connections, users
//!   and WebSocket answers idle since before their timeouts expire, and the stream counters are
//!   mirrored into the registry. Nothing expires without ticks; they need not be regular (the
//!   daemon ticks every second of wall time, `replay` every second of packet time).
//! * **C. Context**, [`Monitor::set_directory`]: a new snapshot of Open WebUI's users and API
//!   keys ([`openwebui::Directory`]), whenever the shell has read one (at start, periodically,
//!   on SIGHUP); `None` when no database is configured. Exchanges are attributed with the
//!   snapshot installed when they complete.
//! * **D. Output**, [`Monitor::drain_audit`]: the audit events ([`audit`]) queued since the
//!   last call; the shell calls it after each batch of input and after `finish`, and writes them.
//! * **D'. Output**, [`Monitor::poll_skip`]: commands for the capture about body bytes nothing
//!   reads ([`pipeline::SkipCommand`]), when [`MonitorConfig::skip_unread_bodies_from`] is set;
//!   the shell calls it after each input, tick and `finish` until it returns `None`, and
//!   applies them (the daemon to its kernel map, `replay` to [`capture_model::SkipFilter`]).
//! * **E. Getters** taking `&self` ([`Monitor::pipeline`], [`Monitor::stream_metrics`]), which
//!   may be called at any time.
//!
//! A, B and [`Monitor::finish`] take an observer that sees every [`PipelineEvent`] they
//! complete — an HTTP exchange or a WebSocket fact — before it is attributed (`replay --json`
//! writes its lines from it; the daemon passes `|_| {}`). Attribution's facts reach the
//! `openwebui_*` families as each event is attributed.
//!
//! The order of calls:
//!
//! 1. [`Monitor::new`], then [`Monitor::set_directory`] with the first snapshot (C may come
//!    again at any later point);
//! 2. [`Monitor::on_segment`] for each segment, interleaved with [`Monitor::on_tick`] as time
//!    passes — a tick's `now` should not run ahead of segments still to come by more than the
//!    idle timeouts, or their connections are expired under them;
//! 3. [`Monitor::finish`] once, after the last segment: every connection is closed and
//!    flushed, and what still waits for an answer is settled. It is the last input call.
//!
//! The registry can be encoded at any time. Ticks and `finish` bring the stream-level
//! `webui_monitor_*` counters up to date; call [`Monitor::refresh_metrics`] first if segments
//! arrived since the last of them.
pub mod audit;
pub mod capture_model;
pub mod http;
pub(crate) mod json;
pub mod memory;
pub mod metrics;
mod monitor;
pub mod openwebui;
pub mod pcap;
pub mod pipeline;
pub mod pricing;
pub mod reassembly;
pub mod replay;
pub mod secret;
pub mod segment;
pub mod usage;
pub mod usage_summary;
pub mod websocket;

pub use monitor::{Monitor, MonitorConfig};
pub use pipeline::PipelineEvent;

/// The parsers under the HTTP engine, for the fuzz targets in `fuzz/` only: built with
/// `--cfg fuzzing` (as cargo-fuzz builds), not part of the API.
#[doc(hidden)]
#[cfg(fuzzing)]
pub mod fuzzing {
    pub use crate::{
        http::{
            chunked::ChunkedDecoder,
            head::{
                FramingHeaders, HeadLimits, find_request_line, find_status_line, framing_line,
                parse_request, parse_response, plausible_request_line, plausible_status_line,
                refused_request_framing,
            },
            ndjson::NdjsonParser,
            sse::SseParser,
        },
        json::{JsonLimits, JsonScanner, JsonValue, JsonVisitor},
    };
}

/// The fixture captures and their expected results, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/support/expected_check.rs"]
mod expected_check;
