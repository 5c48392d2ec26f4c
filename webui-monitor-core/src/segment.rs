//! The unit of work of the sans-IO core: one TCP segment of a monitored connection, as the kernel
//! capture (`capture`) or a capture file (`pcap`) hands it over.
//!
//! Everything downstream (reassembly, HTTP, WebSocket, Open WebUI semantics) is driven by
//! `Segment`s and their timestamps alone: no clock, no socket, no file.
use std::{fmt, net::SocketAddr};

/// Nanoseconds since the Unix epoch, taken from the traffic itself (packet timestamps in a capture
/// file; kernel timestamps converted to wall-clock time for live capture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From nanoseconds since the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }
    /// From whole seconds since the epoch (for tests and fixtures: overflows past year 2554).
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs * 1_000_000_000)
    }
    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Whole seconds since the epoch (what JWT `exp`/`iat` claims are compared with).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    /// Seconds since the epoch, for Prometheus gauges and JSON output.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Seconds from `earlier` to `self`, 0 if `earlier` is later.
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1e9
    }
}

/// Which way bytes flow on a connection. The server side is the monitored port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Client → server (the proxy's requests to Open WebUI).
    Request,
    /// Server → client (Open WebUI's responses).
    Response,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Request, Direction::Response];

    /// The `direction` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
    /// Index into per-direction arrays (`[request, response]`).
    pub const fn index(self) -> usize {
        match self {
            Direction::Request => 0,
            Direction::Response => 1,
        }
    }
    /// The other way.
    pub const fn opposite(self) -> Direction {
        match self {
            Direction::Request => Direction::Response,
            Direction::Response => Direction::Request,
        }
    }
}

/// A TCP connection, canonically oriented: `server` is the endpoint on a monitored port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionKey {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

impl fmt::Display for ConnectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.client, self.server)
    }
}

/// The TCP flags the pipeline acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub const fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub const fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub const fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub const fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One TCP segment (or, from the kernel, one chunk of a segment: `seq` is then the sequence
/// number of the chunk's first byte and only the last chunk carries FIN).
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub key: ConnectionKey,
    pub direction: Direction,
    pub seq: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
    pub timestamp: Timestamp,
    /// The capture dropped bytes of this direction just before this segment (the kernel's ring
    /// was full): a hole before it will never fill. Capture files never set it.
    pub after_capture_loss: bool,
    /// The capture's mark of a chunked skip: this segment starts where the capture's chunked
    /// skip span ended (see [`CaptureSkip`]). Capture files never set it.
    pub capture_skip: Option<CaptureSkip>,
}

/// The counters of a chunked skip span the capture applied before a segment (the kernel's
/// `CHUNK_AFTER_SKIP` record): the bytes before the segment, back to where the pipeline's
/// chunked skip started, were skipped on purpose, and past the skip's own end the capture
/// followed `chunks` chunks holding `data` bytes of chunk data (both counted from the skip's
/// start, wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureSkip {
    pub chunks: u16,
    pub data: u32,
}
