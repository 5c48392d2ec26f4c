//! webui-monitor: who uses Open WebUI, how, with which model and how many tokens — watched from
//! the kernel on the plaintext hop between the reverse proxy and Open WebUI.
//!
//! The data path, in module order:
//!
//! 1. [`capture`] (live, eBPF) or [`pcap`] (replay) produce [`segment::Segment`]s;
//! 2. [`reassembly`] turns them into ordered byte streams per connection and direction;
//! 3. [`http`] turns streams into request/response [`http::Exchange`]s, decoding bodies, SSE and
//!    the JSON fields that matter ([`json`]); upgraded connections go to [`websocket`];
//! 4. [`openwebui`] attributes each exchange and socket message to a user, an auth method, a
//!    client kind and a model, and counts tokens;
//! 5. [`metrics`] exposes it all for Prometheus.
//!
//! [`pipeline`] wires 2–5 together as a sans-IO state machine: segments in, metrics and events
//! out. The async shell ([`capture`], [`server`]) owns file descriptors, timers and sockets.
pub mod capture;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
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
pub mod server;
pub mod top;
pub mod usage_summary;
pub mod websocket;
