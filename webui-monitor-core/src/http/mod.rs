//! HTTP/1.1 over reassembled byte streams: message framing, bodies, content decoding,
//! server-sent events and JSON field extraction, yielding [`Exchange`]s.
//!
//! Layers, each usable alone: `head` (start line and header fields), `chunked` (transfer
//! coding), `decode` (Content-Encoding with an output cap), `sse` (event streams), `ndjson`
//! (Ollama's line streams), `fields` (the JSON fields the semantics need), and `connection`,
//! which drives them per connection. The public surface is that driver, [`HttpConnection`],
//! and what it yields: [`Exchange`]s and the facts in [`exchange`].
pub(crate) mod chunked;
pub(crate) mod connection;
pub(crate) mod decode;
pub mod exchange;
pub(crate) mod fields;
pub(crate) mod head;
pub(crate) mod ndjson;
pub(crate) mod sse;

pub use connection::{HttpConnection, HttpCounters, HttpEvent, HttpLimits, HttpShared};
pub use exchange::Exchange;

pub use crate::json::JsonLimits;

#[cfg(test)]
mod tests;
