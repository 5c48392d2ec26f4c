//! Prometheus metrics. Each domain owns one file and one struct that registers its families in
//! the shared registry: `openwebui_*` for what Open WebUI's users do, `webui_monitor_*` for the
//! monitor itself. The kernel capture's families belong to the shell that runs the capture;
//! [`util`] helps it register them the same way. Attribution's facts reach the `openwebui_*`
//! families through the [`PrometheusSink`], and the OpenTelemetry GenAI families through the
//! [`GenAiSink`]; the audit trail's view (`audit`) is fed by `crate::audit::AuditSink`.
pub mod audit;
pub mod genai;
pub(crate) mod openwebui;
mod openwebui_sink;
pub(crate) mod stream;
mod user_series;
pub mod util;
pub(crate) mod websocket;

pub use genai::{GenAiMetrics, GenAiSink};
pub use openwebui::OpenWebuiMetrics;
pub use openwebui_sink::{PrometheusSink, SinkCounters};
pub use stream::StreamMetrics;
