//! One HTTP/1.1 connection: both directions' byte streams in, [`HttpEvent`]s out.
//!
//! CONTRACT STUB (lead): the `http` helper replaces the bodies; the signatures are what the
//! pipeline calls.
use crate::{
    http::Exchange,
    segment::{ConnectionKey, Direction, Timestamp},
};

/// Caps of the HTTP engine. Every cap has a counter in [`HttpCounters`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Longest header block (start line through CRLFCRLF) accepted.
    pub max_header_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 128,
        }
    }
}

/// What every connection's HTTP engine has cut or rejected, summed over connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCounters {
    pub malformed_messages: u64,
}

/// Limits and counters shared by all connections (owned by the pipeline).
#[derive(Debug, Default)]
pub struct HttpShared {
    pub limits: HttpLimits,
    pub counters: HttpCounters,
}

#[derive(Debug)]
pub enum HttpEvent {
    /// A request and its final response (or a request whose response never came, on close).
    Exchange(Box<Exchange>),
    /// The last `Exchange` was a `101 Switching Protocols`: from now on this connection is not
    /// HTTP. `leftover[direction.index()]` holds bytes already received after the HTTP messages.
    Upgraded {
        websocket_extensions: Option<String>,
        leftover: [Vec<u8>; 2],
    },
}

#[derive(Debug)]
pub struct HttpConnection {
    key: ConnectionKey,
}

impl HttpConnection {
    /// `mid_stream`: the connection was joined without seeing its SYN; parsing starts at the
    /// next message start.
    pub fn new(key: ConnectionKey, _mid_stream: bool) -> Self {
        Self { key }
    }
    pub fn key(&self) -> ConnectionKey {
        self.key
    }
    pub fn on_data(
        &mut self,
        _direction: Direction,
        _data: &[u8],
        _ts: Timestamp,
        _shared: &mut HttpShared,
        _out: &mut Vec<HttpEvent>,
    ) {
    }
    /// `len` bytes are missing from `direction` (reassembly could not fill a gap).
    pub fn on_gap(
        &mut self,
        _direction: Direction,
        _len: u64,
        _ts: Timestamp,
        _shared: &mut HttpShared,
        _out: &mut Vec<HttpEvent>,
    ) {
    }
    /// `direction` ended (FIN): ends a close-delimited body.
    pub fn on_fin(
        &mut self,
        _direction: Direction,
        _ts: Timestamp,
        _shared: &mut HttpShared,
        _out: &mut Vec<HttpEvent>,
    ) {
    }
    /// The connection is gone (RST, both FINs, idle expiry, eviction, end of capture): flush
    /// what is pending, including requests without a response.
    pub fn on_close(
        &mut self,
        _ts: Timestamp,
        _shared: &mut HttpShared,
        _out: &mut Vec<HttpEvent>,
    ) {
    }
}
