//! HTTP/1.1 over reassembled byte streams: message framing, bodies, content decoding,
//! server-sent events and JSON field extraction, yielding [`Exchange`]s.
//!
//! Layers, each usable alone: [`head`] (start line and header fields), [`chunked`] (transfer
//! coding), [`decode`] (Content-Encoding with an output cap), [`sse`] (event streams), [`ndjson`]
//! (Ollama's line streams),
//! [`fields`] (the JSON fields the semantics need), and [`connection`], which drives them per
//! connection.
pub mod chunked;
pub mod connection;
pub mod decode;
pub mod exchange;
pub mod fields;
pub mod head;
pub mod ndjson;
pub mod sse;

pub use connection::{HttpConnection, HttpCounters, HttpEvent, HttpLimits, HttpShared};
pub use exchange::Exchange;

#[cfg(test)]
mod tests;
