//! Open WebUI semantics: who sent each request (JWT, cookie, API key), how (web UI or script),
//! to which route and model, with how many tokens — from [`crate::pipeline::PipelineEvent`]s to
//! Prometheus metrics.
//!
//! Modules, in the order a request meets them: [`credential`] picks the credential Open WebUI
//! acts on, [`jwt`] verifies it, [`apikey`] resolves API keys through the [`db`] snapshot,
//! [`route`] names the endpoint, [`users`] bounds the user label set, and [`attribution`] ties
//! it all together (including the web UI's WebSocket answers).
pub mod apikey;
pub mod attribution;
#[cfg(test)]
mod attribution_tests;
mod b64;
pub mod credential;
pub mod db;
#[cfg(test)]
mod expected_check;
#[cfg(test)]
mod fixture_tests;
pub mod jwt;
pub mod labels;
pub mod route;
pub(crate) mod users;

// TODO(lead): move this declaration to `metrics/mod.rs` as `pub mod openwebui;` and change the
// re-export below to `crate::metrics::openwebui::OpenWebuiMetrics`.
#[path = "../metrics/openwebui.rs"]
pub mod metrics;

pub use attribution::{Attributor, SemanticsConfig};
pub use metrics::OpenWebuiMetrics;
