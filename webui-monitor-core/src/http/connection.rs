//! One HTTP/1.1 connection: both directions' byte streams in, [`HttpEvent`]s out.
//!
//! Each direction runs its own framing state machine (`Phase`); requests are queued as they
//! are parsed and responses are matched to them in order (pipelining). An exchange is emitted
//! when both its request and its response have ended, always in request order. Bodies are never
//! buffered: bytes flow through the chunked decoder, the content decoder and a field extractor
//! and are dropped. Only header blocks (capped), the tail of one line while resynchronising,
//! and bytes that wait (capped) are held.
//!
//! Policies, in one place:
//! - **Waiting.** After a request carrying `Upgrade`, further request bytes are held until its
//!   final response: a `101` hands them over as WebSocket leftovers, anything else releases
//!   them as HTTP. Response bytes that arrive before their request is parsed are held too.
//! - **Malformed input** (bad start line, header line, `Content-Length`, chunk framing, a cap)
//!   is counted, and the direction resynchronises on the next plausible start line, searched
//!   anywhere in a line since a message may follow the tail of a lost body without a line
//!   break. A connection joined mid-stream starts that way; its response direction ignores
//!   everything until a request has been seen (those bytes answer requests we never saw).
//! - **Gaps.** Inside a body whose remaining length is known (or that runs to the close) a gap
//!   is skipped: sizes stay exact, the body's decoding is abandoned (`Anomaly::BodyGap`).
//!   Elsewhere the message is cut and the direction resynchronises; a gap between or inside
//!   header blocks is taken to have swallowed one message, and requests and responses are
//!   re-paired accordingly (a placeholder request absorbs the orphaned response).

use std::collections::VecDeque;

use crate::{
    http::{
        Exchange,
        chunked::ChunkedDecoder,
        decode::{BodyDecoder, Consumer, DecodeStop, Decoded},
        exchange::{
            Anomaly, MessageStats, RequestBodyFields, RequestHeaders, ResponseBodyFields,
            ResponseHeaders,
        },
        head::{self, BodyFraming, HeadError, HeadLimits},
    },
    json::JsonLimits,
    segment::{ConnectionKey, Direction, Timestamp},
};

/// Caps of the HTTP engine. Every cap has a counter in [`HttpCounters`].
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Longest header block (start line through CRLFCRLF) accepted (default 64 KiB).
    pub max_header_bytes: usize,
    /// Most header fields in one message (default 128).
    pub max_headers: usize,
    /// Longest request path kept; longer paths are cut (default 2048).
    pub max_path_bytes: usize,
    /// Longest header value kept as text in an exchange (default 1024).
    pub max_header_value_bytes: usize,
    /// Longest chunk-extension list and trailer section of a chunked body (default 8 KiB).
    pub max_chunk_meta_bytes: usize,
    /// Most decoded bytes per content-encoded body; decoding stops there (default 64 MiB).
    pub max_decoded_body_bytes: u64,
    /// Decode content-encoded bodies whose content no extractor reads (scripts, styles,
    /// images), only to report their decoded size (default false). No metric uses that size —
    /// only `body_decoded_bytes` of `replay --json` lines, `None` when false — and decompressing
    /// dominates the cost of compressed traffic: the web UI's assets are most of its bytes.
    pub decode_unused_bodies: bool,
    /// Largest zstd window accepted, as log2 bytes (default 23 = 8 MiB, RFC 9659's limit).
    pub max_zstd_window_log: u32,
    /// Most bytes held while waiting: request bytes after an `Upgrade` request until its
    /// response is known, response bytes before their request is seen (default 64 KiB).
    pub max_held_bytes: usize,
    /// Most requests waiting for their responses on one connection (default 64).
    pub max_pending_requests: usize,
    /// Name of the API-key request header (default `x-api-key`). Set from the configuration's
    /// `openwebui.api_key_header`: it is an Open WebUI setting, not an HTTP limit.
    #[serde(skip)]
    pub api_key_header: String,
    /// Caps of the JSON field extraction.
    pub json: JsonLimits,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 128,
            max_path_bytes: 2048,
            max_header_value_bytes: 1024,
            max_chunk_meta_bytes: 8 * 1024,
            max_decoded_body_bytes: 64 * 1024 * 1024,
            max_zstd_window_log: 23,
            decode_unused_bodies: false,
            max_held_bytes: 64 * 1024,
            max_pending_requests: 64,
            api_key_header: "x-api-key".to_owned(),
            json: JsonLimits::default(),
        }
    }
}

/// What every connection's HTTP engine has cut or rejected, summed over connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCounters {
    /// Messages rejected (bad start line, header line, Content-Length or chunked framing, or a
    /// cap below); each is followed by a resynchronisation.
    pub malformed_messages: u64,
    /// Header blocks over `max_header_bytes`.
    pub headers_too_large: u64,
    /// Header blocks over `max_headers`.
    pub too_many_headers: u64,
    /// Chunked bodies that broke framing.
    pub chunked_errors: u64,
    /// Bytes skipped while looking for the next message start.
    pub resync_skipped_bytes: u64,
    /// Gaps skipped inside a body (the body's decoding was abandoned).
    pub body_gaps: u64,
    /// Gaps elsewhere, each followed by a resynchronisation.
    pub stream_gaps: u64,
    /// Bodies whose Content-Encoding was unknown or corrupt.
    pub decode_errors: u64,
    /// Bodies cut at `max_decoded_body_bytes`.
    pub decode_capped: u64,
    /// JSON bodies malformed or with a value cut at a JSON cap.
    pub json_truncated: u64,
    /// Paths cut at `max_path_bytes`.
    pub paths_truncated: u64,
    /// Interim (1xx) responses skipped.
    pub interim_responses: u64,
    /// Responses with no request to match (dropped).
    pub orphan_responses: u64,
    /// Bytes dropped over `max_held_bytes`.
    pub held_bytes_dropped: u64,
    /// Requests emitted without a response (closed, expired, or over `max_pending_requests`).
    pub missing_responses: u64,
    /// Connections upgraded (101).
    pub upgrades: u64,
    /// Connections turned into tunnels by a 2xx to CONNECT (not parsed further).
    pub tunnels: u64,
    /// Messages presumed lost in a gap between or inside header blocks.
    pub lost_messages: u64,
    /// Bytes received after the connection ended for HTTP (upgrade or close).
    pub ignored_bytes: u64,
}

/// Limits and counters shared by all connections (owned by the pipeline).
#[derive(Debug, Default)]
pub struct HttpShared {
    pub limits: HttpLimits,
    pub counters: HttpCounters,
}

/// What an [`HttpConnection`] reports.
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

/// Lengths only: the leftover is raw traffic (the client's first WebSocket frames can carry the
/// Socket.IO `auth` token).
impl std::fmt::Debug for HttpEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exchange(exchange) => f.debug_tuple("Exchange").field(exchange).finish(),
            Self::Upgraded {
                websocket_extensions,
                leftover,
            } => f
                .debug_struct("Upgraded")
                .field("websocket_extensions", websocket_extensions)
                .field("leftover_bytes", &leftover.each_ref().map(Vec::len))
                .finish(),
        }
    }
}

/// Buffer capacity kept between messages; larger buffers are released.
const SHRINK_ABOVE: usize = 16 * 1024;

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
}

#[derive(Debug)]
struct Body {
    framing: Framing,
    decoder: BodyDecoder,
    /// Bytes were lost inside the body.
    gap: bool,
}

#[derive(Debug)]
enum Phase {
    /// Looking for a plausible start line; `buf` holds the tail of the current line.
    Resync,
    /// Collecting a header block in `buf`.
    Head,
    Body(Box<Body>),
    /// Holding bytes in `buf` (request: until an upgrade verdict; response: until a request).
    Hold,
    /// Nothing more is HTTP in this direction.
    Ignore,
}

struct Side {
    phase: Phase,
    /// Header block, partial resync line, or held bytes.
    buf: Vec<u8>,
    /// Bytes of the current header line before its LF.
    line_len: usize,
    /// The start line of the head in `buf` was checked.
    start_checked: bool,
    /// When the first byte in `buf` arrived.
    first_ts: Timestamp,
    /// The message being collected starts at a resynchronisation point.
    resynced: bool,
    /// Held bytes were lost: resynchronise when released.
    hold_gap: bool,
}

/// `buf` as a length only: it holds raw header blocks (Authorization, Cookie) or held bodies.
impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Side")
            .field("phase", &self.phase)
            .field("buf_bytes", &self.buf.len())
            .field("line_len", &self.line_len)
            .field("start_checked", &self.start_checked)
            .field("first_ts", &self.first_ts)
            .field("resynced", &self.resynced)
            .field("hold_gap", &self.hold_gap)
            .finish()
    }
}

impl Side {
    fn new(mid_stream: bool) -> Self {
        Self {
            phase: if mid_stream {
                Phase::Resync
            } else {
                Phase::Head
            },
            buf: Vec::new(),
            line_len: 0,
            start_checked: false,
            first_ts: Timestamp::default(),
            resynced: mid_stream,
            hold_gap: false,
        }
    }

    fn reset_head(&mut self) {
        // A rare huge head or hold must not pin its capacity for the connection's lifetime.
        if self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.line_len = 0;
        self.start_checked = false;
    }

    fn resync(&mut self) {
        self.reset_head();
        self.phase = Phase::Resync;
        self.resynced = true;
    }

    /// After a rejected header block in `buf`.
    fn recover(&mut self, error: HeadError, request: bool) {
        if error == HeadError::StartLine {
            self.resync_in_start_line(request);
        } else {
            self.resync();
        }
    }

    /// The start line in `buf` was rejected: a message may still start inside it (after the
    /// tail of a lost body), else resynchronise after it.
    fn resync_in_start_line(&mut self, request: bool) {
        let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        let found = if request {
            head::find_request_line(line)
        } else {
            head::find_status_line(line)
        };
        match found {
            Some(at) if at > 0 => {
                self.buf.drain(..at);
                self.line_len = 0;
                self.start_checked = true;
                self.resynced = true;
            }
            _ => self.resync(),
        }
    }
}

#[derive(Debug)]
struct Pending {
    ex: Box<Exchange>,
    request_done: bool,
    response_done: bool,
    wants_upgrade: bool,
    /// Placeholder for a request lost in a gap (never emitted).
    lost: bool,
}

/// Outcome of collecting header bytes.
enum HeadStep {
    /// All input consumed, block not complete.
    More,
    /// Block complete after consuming this many input bytes.
    Complete(usize),
    /// Block rejected after consuming this many bytes.
    Error(HeadError, usize),
}

/// The HTTP/1.1 engine of one TCP connection: both directions' bytes in capture order, complete
/// [`Exchange`]s out. Requests and responses are matched in order (pipelining included);
/// bytes after a `101` are handed over in [`HttpEvent::Upgraded`].
#[derive(Debug)]
pub struct HttpConnection {
    key: ConnectionKey,
    req: Side,
    resp: Side,
    pending: VecDeque<Pending>,
    next_sequence: u32,
    requests_seen: u64,
    /// Saved timestamp of held bytes per direction.
    held_ts: [Timestamp; 2],
    /// HTTP is over (upgrade or close): later bytes are ignored.
    finished: bool,
}

impl HttpConnection {
    /// `mid_stream`: the connection was joined without seeing its SYN; parsing starts at the
    /// next message start.
    pub fn new(key: ConnectionKey, mid_stream: bool) -> Self {
        Self {
            key,
            req: Side::new(mid_stream),
            resp: Side::new(mid_stream),
            pending: VecDeque::new(),
            next_sequence: 0,
            requests_seen: 0,
            held_ts: [Timestamp::default(); 2],
            finished: false,
        }
    }

    /// The connection this engine parses.
    pub fn key(&self) -> ConnectionKey {
        self.key
    }

    /// Whether HTTP parsing has ended on this connection (after an upgrade or a close).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// In-order bytes of `direction` (timestamps never decrease); events it completes are
    /// appended to `out`.
    pub fn on_data(
        &mut self,
        direction: Direction,
        data: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        if self.finished {
            shared.counters.ignored_bytes += data.len() as u64;
            return;
        }
        match direction {
            Direction::Request => self.request_data(data, ts, shared, out),
            Direction::Response => self.response_data(data, ts, shared, out),
        }
    }

    /// `len` bytes are missing from `direction` (reassembly could not fill a gap).
    pub fn on_gap(
        &mut self,
        direction: Direction,
        len: u64,
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        if self.finished || len == 0 {
            return;
        }
        let side = self.side(direction);
        // A gap inside a body whose remaining length is known (or runs to the close) is
        // skipped: framing survives, only the body's content is lost.
        let skippable = match &mut side.phase {
            Phase::Body(body) => match &mut body.framing {
                Framing::Length(rem) if *rem >= len => {
                    *rem -= len;
                    true
                }
                Framing::Chunked(c) if c.data_remaining().is_some_and(|r| r >= len) => {
                    c.skip_data(len);
                    true
                }
                Framing::Close => true,
                _ => false,
            },
            Phase::Hold => {
                shared.counters.stream_gaps += 1;
                match direction {
                    Direction::Request => {
                        // Resynchronise once the upgrade verdict releases the hold.
                        side.hold_gap = true;
                        side.buf.clear();
                    }
                    Direction::Response => side.resync(),
                }
                return;
            }
            _ => false,
        };
        if skippable {
            shared.counters.body_gaps += 1;
            let mut done = false;
            if let Phase::Body(body) = &mut side.phase {
                body.gap = true;
                body.decoder.abandon();
                done = matches!(body.framing, Framing::Length(0));
            }
            if let Some(stats) = self.stats_mut(direction) {
                stats.body_wire_bytes += len;
                stats.body_bytes += len;
                stats.last_byte = ts;
            }
            if done {
                self.end_body(direction, true, shared, out);
            }
            return;
        }
        shared.counters.stream_gaps += 1;
        let side = self.side(direction);
        let between_or_in_head = matches!(side.phase, Phase::Head);
        if let Phase::Body(body) = &mut side.phase {
            body.decoder.abandon();
            self.end_body(direction, false, shared, out);
        }
        if matches!(self.side(direction).phase, Phase::Ignore) {
            return;
        }
        if between_or_in_head {
            // The gap most likely swallowed (the start of) a message. Keep requests and
            // responses paired: a lost request still gets a response, a lost response leaves
            // its request unanswered.
            shared.counters.lost_messages += 1;
            match direction {
                Direction::Request => self.push_lost_request(),
                Direction::Response => {
                    if let Some(t) = self.response_target()
                        && t.ex.response.is_none()
                    {
                        t.response_done = true;
                        t.ex.anomalies.push(Anomaly::MissingResponse);
                        shared.counters.missing_responses += 1;
                    }
                    self.emit_ready(out);
                }
            }
        }
        self.side(direction).resync();
    }

    /// A placeholder for a request lost in a gap: it takes the next response, and neither is
    /// reported.
    fn push_lost_request(&mut self) {
        let ex = Exchange {
            connection: self.key,
            sequence: self.next_sequence,
            method: String::new(),
            path: String::new(),
            has_query: false,
            status: None,
            request: MessageStats::default(),
            response: None,
            request_headers: RequestHeaders::default(),
            response_headers: ResponseHeaders::default(),
            request_fields: RequestBodyFields::default(),
            response_fields: ResponseBodyFields::default(),
            upgraded: false,
            anomalies: Vec::new(),
        };
        self.pending.push_back(Pending {
            ex: Box::new(ex),
            request_done: true,
            response_done: false,
            wants_upgrade: false,
            lost: true,
        });
    }

    /// `direction` ended (FIN): ends a close-delimited body.
    pub fn on_fin(
        &mut self,
        direction: Direction,
        _ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        if self.finished {
            return;
        }
        let side = self.side(direction);
        if let Phase::Body(body) = &side.phase
            && matches!(body.framing, Framing::Close)
        {
            self.end_body(direction, true, shared, out);
            self.side(direction).phase = Phase::Ignore;
        }
    }

    /// The connection is gone (RST, both FINs, idle expiry, eviction, end of capture): flush
    /// what is pending, including requests without a response.
    pub fn on_close(&mut self, _ts: Timestamp, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        if self.finished {
            return;
        }
        for direction in [Direction::Response, Direction::Request] {
            if let Phase::Body(body) = &self.side(direction).phase {
                let complete = matches!(body.framing, Framing::Close);
                self.end_body(direction, complete, shared, out);
            }
        }
        if matches!(self.resp.phase, Phase::Hold) && !self.resp.buf.is_empty() {
            shared.counters.orphan_responses += 1;
        }
        while let Some(mut p) = self.pending.pop_front() {
            if p.lost {
                continue;
            }
            if !p.response_done {
                p.ex.anomalies.push(Anomaly::MissingResponse);
                shared.counters.missing_responses += 1;
            }
            out.push(HttpEvent::Exchange(p.ex));
        }
        self.req.phase = Phase::Ignore;
        self.resp.phase = Phase::Ignore;
        self.req.buf = Vec::new();
        self.resp.buf = Vec::new();
        self.finished = true;
    }

    fn side(&mut self, direction: Direction) -> &mut Side {
        match direction {
            Direction::Request => &mut self.req,
            Direction::Response => &mut self.resp,
        }
    }

    /// The exchange whose request is being read (always the newest).
    fn request_target(&mut self) -> Option<&mut Pending> {
        self.pending.back_mut().filter(|p| !p.request_done)
    }

    /// The exchange whose response is being read: the oldest without one.
    fn response_target(&mut self) -> Option<&mut Pending> {
        self.pending.iter_mut().find(|p| !p.response_done)
    }

    fn stats_mut(&mut self, direction: Direction) -> Option<&mut MessageStats> {
        match direction {
            Direction::Request => self.request_target().map(|p| &mut p.ex.request),
            Direction::Response => self.response_target().and_then(|p| p.ex.response.as_mut()),
        }
    }

    fn emit_ready(&mut self, out: &mut Vec<HttpEvent>) {
        while self
            .pending
            .front()
            .is_some_and(|p| p.request_done && p.response_done)
        {
            if let Some(p) = self.pending.pop_front()
                && !p.lost
            {
                out.push(HttpEvent::Exchange(p.ex));
            }
        }
    }

    fn head_limits(limits: &HttpLimits) -> HeadLimits<'_> {
        HeadLimits {
            max_headers: limits.max_headers,
            max_path_bytes: limits.max_path_bytes,
            max_value_bytes: limits.max_header_value_bytes,
            api_key_header: &limits.api_key_header,
        }
    }

    fn head_error(shared: &mut HttpShared, e: HeadError) {
        shared.counters.malformed_messages += 1;
        match e {
            HeadError::TooLarge => shared.counters.headers_too_large += 1,
            HeadError::TooManyHeaders => shared.counters.too_many_headers += 1,
            _ => {}
        }
    }

    // ----- request direction -----

    fn request_data(
        &mut self,
        data: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        self.parse_requests(data, ts, shared, out);
        // Held responses are matched only once all of this input is parsed, so that request
        // bytes following an upgrade request are already held when its 101 is seen.
        self.release_response(shared, out);
    }

    fn parse_requests(
        &mut self,
        data: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let mut input = data;
        while !input.is_empty() {
            match &mut self.req.phase {
                Phase::Ignore => {
                    shared.counters.ignored_bytes += input.len() as u64;
                    return;
                }
                Phase::Hold => {
                    hold(&mut self.req, input, shared);
                    self.held_ts[0] = ts;
                    return;
                }
                Phase::Resync => match resync(&mut self.req, input, ts, shared, true) {
                    Some(used) => input = &input[used..],
                    None => return,
                },
                Phase::Head => match collect_head(&mut self.req, input, ts, shared, true) {
                    HeadStep::More => return,
                    HeadStep::Error(e, used) => {
                        Self::head_error(shared, e);
                        self.req.recover(e, true);
                        input = &input[used..];
                    }
                    HeadStep::Complete(used) => {
                        input = &input[used..];
                        self.start_request(ts, shared, out);
                    }
                },
                Phase::Body(_) => {
                    let used = self.body_data(Direction::Request, input, ts, shared, out);
                    input = &input[used..];
                }
            }
        }
    }

    fn start_request(&mut self, ts: Timestamp, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        let parsed = head::parse_request(&self.req.buf, &Self::head_limits(&shared.limits));
        let head = match parsed {
            Ok(h) => h,
            Err(e) => {
                Self::head_error(shared, e);
                self.req.resync();
                return;
            }
        };
        if head.path_truncated {
            shared.counters.paths_truncated += 1;
        }
        // Too many requests without responses: the oldest is given up.
        while self.pending.len() >= shared.limits.max_pending_requests.max(1) {
            let Some(mut p) = self.pending.pop_front() else {
                break;
            };
            if p.lost {
                continue;
            }
            p.ex.anomalies.push(Anomaly::MissingResponse);
            shared.counters.missing_responses += 1;
            out.push(HttpEvent::Exchange(p.ex));
        }
        let mut anomalies = Vec::new();
        if std::mem::take(&mut self.req.resynced) {
            anomalies.push(Anomaly::MidStreamPickup);
        }
        let framing = head.body_framing();
        let stats = head_stats(self.req.buf.len(), self.req.first_ts, ts, framing);
        let wants_upgrade = head.headers.upgrade.is_some();
        let json = head
            .framing
            .content_type
            .as_deref()
            .is_none_or(mentions_json);
        let coding = head.framing.content_encoding.clone();
        let ex = Exchange {
            connection: self.key,
            sequence: self.next_sequence,
            method: head.method,
            path: head.path,
            has_query: head.has_query,
            status: None,
            request: stats,
            response: None,
            request_headers: head.headers,
            response_headers: ResponseHeaders::default(),
            request_fields: RequestBodyFields::default(),
            response_fields: ResponseBodyFields::default(),
            upgraded: false,
            anomalies,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.requests_seen += 1;
        self.pending.push_back(Pending {
            ex: Box::new(ex),
            request_done: framing == BodyFraming::None,
            response_done: false,
            wants_upgrade,
            lost: false,
        });
        self.req.reset_head();
        match framing {
            BodyFraming::None => self.after_request(),
            f => {
                let consumer = if json {
                    Consumer::request_json(shared.limits.json)
                } else {
                    Consumer::Discard
                };
                self.req.phase = Phase::Body(new_body(f, coding.as_deref(), consumer, shared));
            }
        }
    }

    /// The request has ended: the next request starts, unless it asked for an upgrade.
    fn after_request(&mut self) {
        let upgrade = self.pending.back().is_some_and(|p| p.wants_upgrade);
        self.req.phase = if upgrade { Phase::Hold } else { Phase::Head };
    }

    /// Response bytes were waiting for a request: parse them now.
    fn release_response(&mut self, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        if matches!(self.resp.phase, Phase::Hold) && self.response_target().is_some() {
            let held = std::mem::take(&mut self.resp.buf);
            self.resp.phase = Phase::Head;
            self.resp.reset_head();
            let ts = self.held_ts[1];
            self.response_data(&held, ts, shared, out);
        }
    }

    /// The upgrade request was answered without a switch: parse the held requests.
    fn release_request(&mut self, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        if matches!(self.req.phase, Phase::Hold) {
            let held = std::mem::take(&mut self.req.buf);
            if std::mem::take(&mut self.req.hold_gap) {
                self.req.resync();
            } else {
                self.req.phase = Phase::Head;
                self.req.reset_head();
            }
            let ts = self.held_ts[0];
            self.request_data(&held, ts, shared, out);
        }
    }

    // ----- response direction -----

    fn response_data(
        &mut self,
        data: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let mut input = data;
        while !input.is_empty() && !self.finished {
            match &mut self.resp.phase {
                Phase::Ignore => {
                    shared.counters.ignored_bytes += input.len() as u64;
                    return;
                }
                Phase::Hold => {
                    hold(&mut self.resp, input, shared);
                    self.held_ts[1] = ts;
                    if self.resp.buf.len() >= shared.limits.max_held_bytes {
                        // Nobody asked for this: give up and look for the next response.
                        shared.counters.orphan_responses += 1;
                        self.resp.resync();
                    }
                    return;
                }
                Phase::Resync => {
                    if self.requests_seen == 0 {
                        // Joined mid-stream: answers to requests we never saw.
                        shared.counters.resync_skipped_bytes += input.len() as u64;
                        return;
                    }
                    match resync(&mut self.resp, input, ts, shared, false) {
                        Some(used) => input = &input[used..],
                        None => return,
                    }
                }
                Phase::Head => {
                    if self.resp.buf.is_empty() && self.response_target().is_none() {
                        self.resp.phase = Phase::Hold;
                        continue;
                    }
                    match collect_head(&mut self.resp, input, ts, shared, false) {
                        HeadStep::More => return,
                        HeadStep::Error(e, used) => {
                            Self::head_error(shared, e);
                            self.resp.recover(e, false);
                            input = &input[used..];
                        }
                        HeadStep::Complete(used) => {
                            input = &input[used..];
                            if self.start_response(input, ts, shared, out) {
                                return;
                            }
                        }
                    }
                }
                Phase::Body(_) => {
                    let used = self.body_data(Direction::Response, input, ts, shared, out);
                    input = &input[used..];
                }
            }
        }
    }

    /// A response head is complete in `resp.buf`; `rest` is the input after it. Returns `true`
    /// when the connection stopped being HTTP (upgrade).
    fn start_response(
        &mut self,
        rest: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) -> bool {
        let parsed = head::parse_response(&self.resp.buf, &Self::head_limits(&shared.limits));
        let head = match parsed {
            Ok(h) => h,
            Err(e) => {
                Self::head_error(shared, e);
                self.resp.resync();
                return false;
            }
        };
        let header_bytes = self.resp.buf.len();
        let first_ts = self.resp.first_ts;
        self.resp.reset_head();
        self.resp.resynced = false;
        if (100..200).contains(&head.status) && head.status != 101 {
            shared.counters.interim_responses += 1;
            return false;
        }
        let Some(target) = self.response_target() else {
            shared.counters.orphan_responses += 1;
            self.resp.resync();
            return false;
        };
        let framing = head.body_framing(&target.ex.method);
        target.ex.status = Some(head.status);
        target.ex.response = Some(head_stats(header_bytes, first_ts, ts, framing));
        let coding = head.framing.content_encoding.clone();
        let content_type = head.framing.content_type.as_deref();
        let (sse, ndjson, json) = (
            content_type.is_some_and(is_event_stream),
            content_type.is_some_and(is_ndjson),
            content_type.is_some_and(mentions_json),
        );
        target.ex.response_headers = head.headers;
        // A 2xx to CONNECT turns the connection into an opaque tunnel (RFC 9110 §9.3.6).
        let tunnel =
            target.ex.method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&head.status);
        if head.status == 101 {
            target.ex.upgraded = true;
            target.response_done = true;
            target.request_done = true;
            shared.counters.upgrades += 1;
            let extensions = target.ex.response_headers.websocket_extensions.clone();
            let request_leftover = match self.req.phase {
                Phase::Hold => std::mem::take(&mut self.req.buf),
                _ => Vec::new(),
            };
            self.emit_ready(out);
            // Requests pipelined behind the upgrade can no longer be answered over HTTP.
            while let Some(mut p) = self.pending.pop_front() {
                if p.lost {
                    continue;
                }
                p.ex.anomalies.push(Anomaly::MissingResponse);
                shared.counters.missing_responses += 1;
                out.push(HttpEvent::Exchange(p.ex));
            }
            out.push(HttpEvent::Upgraded {
                websocket_extensions: extensions,
                leftover: [request_leftover, rest.to_vec()],
            });
            self.req.phase = Phase::Ignore;
            self.resp.phase = Phase::Ignore;
            self.req.buf = Vec::new();
            self.resp.buf = Vec::new();
            self.finished = true;
            return true;
        }
        if tunnel {
            shared.counters.tunnels += 1;
            if let Some(r) = self.response_target().and_then(|t| t.ex.response.as_mut()) {
                r.complete = true;
                r.body_decoded_bytes = Some(0);
            }
            self.finish_response(shared, out);
            self.on_close(ts, shared, out);
            return true;
        }
        match framing {
            BodyFraming::None => self.finish_response(shared, out),
            f => {
                let consumer = if sse {
                    Consumer::sse(shared.limits.json)
                } else if ndjson {
                    Consumer::ndjson(shared.limits.json)
                } else if json {
                    Consumer::response_json(shared.limits.json)
                } else {
                    Consumer::Discard
                };
                self.resp.phase = Phase::Body(new_body(f, coding.as_deref(), consumer, shared));
            }
        }
        false
    }

    /// The current response has ended (its stats are final).
    fn finish_response(&mut self, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        let mut release = false;
        if let Some(target) = self.response_target() {
            target.response_done = true;
            release = target.wants_upgrade;
        }
        if !matches!(self.resp.phase, Phase::Ignore) {
            self.resp.phase = Phase::Head;
        }
        self.emit_ready(out);
        if release {
            self.release_request(shared, out);
        }
    }

    // ----- bodies -----

    /// Feeds body bytes of `direction`; returns how many were consumed.
    fn body_data(
        &mut self,
        direction: Direction,
        input: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) -> usize {
        let side = match direction {
            Direction::Request => &mut self.req,
            Direction::Response => &mut self.resp,
        };
        let Phase::Body(body) = &mut side.phase else {
            return 0;
        };
        let mut body_bytes = 0u64;
        let (used, done, error) = match &mut body.framing {
            Framing::Length(rem) => {
                let n = input.len().min(usize::try_from(*rem).unwrap_or(usize::MAX));
                body.decoder.feed(&input[..n], ts);
                body_bytes = n as u64;
                *rem -= n as u64;
                (n, *rem == 0, false)
            }
            Framing::Close => {
                body.decoder.feed(input, ts);
                body_bytes = input.len() as u64;
                (input.len(), false, false)
            }
            Framing::Chunked(c) => {
                let decoder = &mut body.decoder;
                let fed = c.feed(input, |d| {
                    decoder.feed(d, ts);
                    body_bytes += d.len() as u64;
                });
                (fed.consumed, fed.done, fed.error.is_some())
            }
        };
        let chunks = match &body.framing {
            Framing::Chunked(c) => c.chunks,
            _ => 0,
        };
        if let Some(stats) = self.stats_mut(direction) {
            stats.body_wire_bytes += used as u64;
            stats.body_bytes += body_bytes;
            stats.chunks = chunks;
            if used > 0 {
                stats.last_byte = ts;
            }
        }
        if error {
            shared.counters.chunked_errors += 1;
            shared.counters.malformed_messages += 1;
            self.end_body(direction, false, shared, out);
            if !self.finished {
                self.side(direction).resync();
            }
            // The rest of this input, from the offending byte on, goes to resynchronisation.
            return used;
        }
        if done {
            self.end_body(direction, true, shared, out);
        }
        used
    }

    /// Ends the body being read in `direction`; `complete`: it ended as framed.
    fn end_body(
        &mut self,
        direction: Direction,
        complete: bool,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let side = self.side(direction);
        let Phase::Body(body) = std::mem::replace(&mut side.phase, Phase::Head) else {
            return;
        };
        let Body { decoder, gap, .. } = *body;
        let decoded = decoder.finish(complete && !gap);
        count_decoded(&decoded, shared);
        let Decoded {
            bytes,
            stop,
            extracted,
        } = decoded;
        let target = match direction {
            Direction::Request => self.request_target(),
            Direction::Response => self.response_target(),
        };
        if let Some(p) = target {
            let stats = match direction {
                Direction::Request => Some(&mut p.ex.request),
                Direction::Response => p.ex.response.as_mut(),
            };
            if let Some(stats) = stats {
                stats.body_decoded_bytes = bytes;
                stats.complete = complete;
            }
            let anomalies = &mut p.ex.anomalies;
            match stop {
                Some(DecodeStop::Error) => anomalies.push(Anomaly::DecodeError),
                Some(DecodeStop::Capped) => anomalies.push(Anomaly::DecodeCapped),
                Some(DecodeStop::Abandoned) => anomalies.push(Anomaly::BodyGap),
                Some(DecodeStop::Skipped) | None => {}
            }
            if extracted.json_truncated && stop.is_none() {
                anomalies.push(Anomaly::JsonTruncated);
            }
            match direction {
                Direction::Request => {
                    p.ex.request_fields = extracted.request;
                    p.request_done = true;
                }
                Direction::Response => p.ex.response_fields = extracted.response,
            }
        }
        match direction {
            Direction::Request => {
                self.after_request();
                self.emit_ready(out);
            }
            Direction::Response => self.finish_response(shared, out),
        }
    }
}

/// Media types are case-insensitive (RFC 9110 §8.3.1); these compare in place rather than
/// lowercasing a copy for every message.
fn is_event_stream(content_type: &str) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    content_type
        .as_bytes()
        .get(..SSE.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(SSE))
}

/// One JSON value per line: Ollama sends `application/x-ndjson`; the other names are aliases
/// of the same format.
fn is_ndjson(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
    ]
    .iter()
    .any(|t| media_type.eq_ignore_ascii_case(t))
}

/// `json` anywhere in the media type (`application/json`, `application/vnd.api+json`, …).
fn mentions_json(content_type: &str) -> bool {
    content_type
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"json"))
}

/// Stats of a message whose header block just ended; a message without a body is complete.
fn head_stats(
    header_bytes: usize,
    first_byte: Timestamp,
    last_byte: Timestamp,
    framing: BodyFraming,
) -> MessageStats {
    let bodiless = framing == BodyFraming::None;
    MessageStats {
        header_bytes: header_bytes as u64,
        first_byte,
        last_byte,
        complete: bodiless,
        body_decoded_bytes: bodiless.then_some(0),
        chunked: framing == BodyFraming::Chunked,
        ..MessageStats::default()
    }
}

fn new_body(
    framing: BodyFraming,
    coding: Option<&str>,
    consumer: Consumer,
    shared: &HttpShared,
) -> Box<Body> {
    let limits = &shared.limits;
    let mut decoder = BodyDecoder::new(
        coding,
        consumer,
        limits.max_decoded_body_bytes,
        limits.max_zstd_window_log,
    );
    if !limits.decode_unused_bodies && decoder.discards() {
        decoder.skip();
    }
    Box::new(Body {
        framing: match framing {
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => {
                Framing::Chunked(ChunkedDecoder::new(limits.max_chunk_meta_bytes))
            }
            BodyFraming::Close | BodyFraming::None => Framing::Close,
        },
        decoder,
        gap: false,
    })
}

fn count_decoded(decoded: &Decoded, shared: &mut HttpShared) {
    match decoded.stop {
        Some(DecodeStop::Error) => shared.counters.decode_errors += 1,
        Some(DecodeStop::Capped) => shared.counters.decode_capped += 1,
        _ => {}
    }
    if decoded.extracted.json_truncated && decoded.stop.is_none() {
        shared.counters.json_truncated += 1;
    }
}

/// Appends `input` to the held bytes of `side`, up to the cap.
fn hold(side: &mut Side, input: &[u8], shared: &mut HttpShared) {
    let room = shared.limits.max_held_bytes.saturating_sub(side.buf.len());
    let n = room.min(input.len());
    side.buf.extend_from_slice(&input[..n]);
    shared.counters.held_bytes_dropped += (input.len() - n) as u64;
}

/// Collects header bytes into `side.buf` until the blank line.
fn collect_head(
    side: &mut Side,
    input: &[u8],
    ts: Timestamp,
    shared: &HttpShared,
    request: bool,
) -> HeadStep {
    let mut i = 0;
    if side.buf.is_empty() {
        // Empty lines before a message are ignored (RFC 9112 §2.2).
        while i < input.len() && matches!(input[i], b'\r' | b'\n') {
            i += 1;
        }
        if i == input.len() {
            return HeadStep::More;
        }
        side.first_ts = ts;
        side.line_len = 0;
        side.start_checked = false;
    }
    let max = shared.limits.max_header_bytes;
    while i < input.len() {
        let rest = &input[i..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            side.buf.extend_from_slice(rest);
            side.line_len += rest.len();
            if side.buf.len() > max {
                return HeadStep::Error(HeadError::TooLarge, input.len());
            }
            return HeadStep::More;
        };
        side.buf.extend_from_slice(&rest[..=nl]);
        i += nl + 1;
        let line_len = side.line_len + nl;
        side.line_len = 0;
        if side.buf.len() > max {
            return HeadStep::Error(HeadError::TooLarge, i);
        }
        let n = side.buf.len();
        let line = &side.buf[n - 1 - line_len..n - 1];
        if !side.start_checked {
            side.start_checked = true;
            let ok = if request {
                head::plausible_request_line(line)
            } else {
                head::plausible_status_line(line)
            };
            if !ok {
                return HeadStep::Error(HeadError::StartLine, i);
            }
        } else if line.is_empty() || line == b"\r" {
            return HeadStep::Complete(i);
        }
    }
    HeadStep::More
}

/// Scans for the start of a message. A start line may follow the tail of a lost body on the
/// same line, so a candidate is searched anywhere in each line, not only at line starts. Only the
/// last `max_line` bytes of the current line are kept. Returns the input offset where parsing
/// continues in [`Phase::Head`] (the start line is then already in `side.buf`), or `None` if all
/// input was used.
fn resync(
    side: &mut Side,
    input: &[u8],
    ts: Timestamp,
    shared: &mut HttpShared,
    request: bool,
) -> Option<usize> {
    // A start line longer than this is not plausible anyway.
    let max_line = shared.limits.max_header_bytes.min(8 * 1024);
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            let keep = rest.len().min(max_line);
            shared.counters.resync_skipped_bytes += (rest.len() - keep) as u64;
            side.buf.extend_from_slice(&rest[rest.len() - keep..]);
            if side.buf.len() > max_line {
                let drop = side.buf.len() - max_line;
                side.buf.drain(..drop);
                shared.counters.resync_skipped_bytes += drop as u64;
            }
            return None;
        };
        side.buf.extend_from_slice(&rest[..nl]);
        let found = if request {
            head::find_request_line(&side.buf)
        } else {
            head::find_status_line(&side.buf)
        };
        if let Some(at) = found {
            shared.counters.resync_skipped_bytes += at as u64;
            side.buf.drain(..at);
            side.buf.push(b'\n');
            side.phase = Phase::Head;
            side.start_checked = true;
            side.line_len = 0;
            side.first_ts = ts;
            side.resynced = true;
            return Some(i + nl + 1);
        }
        shared.counters.resync_skipped_bytes += side.buf.len() as u64 + 1;
        side.buf.clear();
        i += nl + 1;
    }
    None
}
