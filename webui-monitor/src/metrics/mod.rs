//! Prometheus metrics. Each domain owns one file and one struct that registers its families in
//! the shared registry: `openwebui_*` for what Open WebUI's users do, `webui_monitor_*` for the
//! monitor itself.
pub mod capture;
pub mod openwebui;
pub mod stream;
mod util;
pub mod websocket;
