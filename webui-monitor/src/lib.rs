//! webui-monitor, the shell around [`webui_monitor_core`]: who uses Open WebUI, how, with which
//! model and how many tokens — watched from the kernel on the plaintext hop between the reverse
//! proxy and Open WebUI.
//!
//! The core is the whole monitor as a sans-IO state machine (segments and traffic time in,
//! facts and metrics out). This crate owns everything with a file descriptor, a clock or a
//! terminal:
//!
//! * [`capture`]: the eBPF programs, their ring buffer and counters, decoded into the core's
//!   segments; [`capture::metrics`] mirrors the kernel's totals into Prometheus.
//! * [`config`]: the configuration file, `WEBUI_MONITOR_*` variables and flags, and the JWT
//!   secret; it builds the core's [`MonitorConfig`](webui_monitor_core::MonitorConfig).
//! * [`audit`]: the audit trail's writer (size-rotated JSON-lines file or the journal).
//! * [`db`]: Open WebUI's SQLite database, read into the core's user and API-key directory.
//! * `daemon`: `webui-monitor run`, the tokio loop driving the core's
//!   [`Monitor`](webui_monitor_core::Monitor) and serving its registry (`server`).
//! * [`replay`]: `webui-monitor replay`, the same monitor over a capture file.
//! * `top`: `webui-monitor top`, an HTTP client of the daemon's `/api/users`.
//! * [`cli`]: the command line.
pub mod audit;
pub mod capture;
pub mod cli;
pub mod config;
pub(crate) mod daemon;
pub mod db;
pub mod privileges;
pub mod replay;
pub(crate) mod server;
pub(crate) mod top;
