//! HTTP/1.1 over reassembled byte streams: message framing, bodies, content decoding,
//! server-sent events and JSON field extraction, yielding [`Exchange`]s.
//!
//! Layers, each usable alone: `head` (start line and header fields), `chunked` (transfer
//! coding), `decode` (Content-Encoding with an output cap), `sse` (event streams), `ndjson`
//! (Ollama's line streams), `fields` (the JSON fields the semantics need). Above them, per
//! connection: `framer` (where one direction's messages start and end, with `skip_head` for
//! heads over the cap), `pairing` (requests waiting for their answers, in order), `body`
//! (which decoder reads a body), and `connection`, which joins them; `limits` holds the caps
//! and counters all connections share. The public surface is that driver, [`HttpConnection`],
//! and what it yields: [`Exchange`]s and the facts in [`exchange`].
mod body;
pub(crate) mod chunked;
pub(crate) mod connection;
pub(crate) mod decode;
pub mod exchange;
pub(crate) mod fields;
mod framer;
pub(crate) mod head;
pub(crate) mod limits;
pub(crate) mod ndjson;
mod pairing;
mod skip_head;
pub(crate) mod sse;

pub use connection::{HttpConnection, HttpEvent};
pub use exchange::Exchange;
pub use limits::{BodyReads, HttpCounters, HttpLimits, HttpShared, SpareDecoders};

pub use crate::json::JsonLimits;

#[cfg(test)]
mod tests;
