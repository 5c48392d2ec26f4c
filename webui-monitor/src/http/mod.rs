//! HTTP/1.1 over reassembled byte streams: message framing, bodies, content decoding,
//! server-sent events and JSON field extraction, yielding [`Exchange`]s.
pub mod connection;
pub mod exchange;

pub use connection::{HttpConnection, HttpEvent, HttpLimits, HttpShared};
pub use exchange::Exchange;
