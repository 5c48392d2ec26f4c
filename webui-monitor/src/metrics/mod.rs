//! Prometheus metrics. Each domain owns one file and one struct that registers its families in
//! the shared registry: `openwebui_*` for what Open WebUI's users do, `webui_monitor_*` for the
//! monitor itself.
pub mod openwebui;
pub mod stream;
pub(crate) mod util;
pub mod websocket;
