//! One HTTP/1.1 connection: both directions' byte streams in, [`HttpEvent`]s out.
//!
//! Three pieces, each unaware of the others: a [`Framer`] per direction finds where messages
//! start and end; the [`Pairing`] queue matches responses to requests in order (pipelining);
//! the [`body`] decoders read what the semantics need from bodies, which are never buffered.
//! This module holds the policies that join them:
//!
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
//!
//! The file is about 700 lines: the policies above act on the same per-connection
//! state, and keeping them together shows every way a message can end.
use crate::{
    http::{
        Exchange, body,
        decode::{BodyDecoder, DecodeBudget},
        exchange::{Anomaly, MessageStats},
        framer::{BodyEnd, Frame, Framer, Gap},
        head::{self, BodyFraming, HeadError, RequestHead, ResponseHead},
        limits::HttpShared,
        pairing::{GiveUp, Pairing, Request, head_stats},
    },
    reassembly::{ChunksSkipped, SkipRequest},
    segment::{ConnectionKey, Direction, Timestamp},
};

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

/// Exchanges leave the pairing queue straight into the event list.
impl Extend<Box<Exchange>> for Vec<HttpEvent> {
    fn extend<I: IntoIterator<Item = Box<Exchange>>>(&mut self, iter: I) {
        Extend::extend(self, iter.into_iter().map(HttpEvent::Exchange));
    }
}

const REQ: usize = Direction::Request.index();
const RESP: usize = Direction::Response.index();

/// The HTTP/1.1 engine of one TCP connection: both directions' bytes in capture order, complete
/// [`Exchange`]s out. Requests and responses are matched in order (pipelining included);
/// bytes after a `101` are handed over in [`HttpEvent::Upgraded`].
///
/// # Call order
///
/// 1. [`HttpConnection::new`] when the connection is first seen.
/// 2. For each in-order piece of a direction's stream, [`HttpConnection::on_data`]; for bytes
///    reassembly could not recover, [`HttpConnection::on_gap`]; when a direction ends (FIN),
///    [`HttpConnection::on_fin`]. The two directions interleave in capture order.
/// 3. [`HttpConnection::on_close`] once, when the connection is gone: what is still pending is
///    flushed. It is the last call; later input is ignored, as is input after an
///    [`HttpEvent::Upgraded`] (then [`HttpConnection::is_finished`] is true and the caller
///    hands the rest of the connection to the WebSocket decoder).
///
/// Every input call appends the events it completes to `out`, in request order, and takes the
/// [`HttpShared`] limits and counters common to all connections.
#[derive(Debug)]
pub struct HttpConnection {
    key: ConnectionKey,
    /// `[request, response]`.
    framers: [Framer; 2],
    pairing: Pairing,
    /// The content decoder of the body being read in each direction.
    decoders: [Option<Box<BodyDecoder>>; 2],
    /// This connection's decode budget (`max_decoded_bytes_per_connection_per_second`).
    budget: DecodeBudget,
    /// HTTP is over (upgrade or close): later bytes are ignored.
    finished: bool,
    /// Per direction: bytes given by [`HttpConnection::take_skip`] are not reported yet.
    skipping: [bool; 2],
}

impl HttpConnection {
    /// `mid_stream`: the connection was joined without seeing its SYN; parsing starts at the
    /// next message start.
    pub fn new(key: ConnectionKey, mid_stream: bool) -> Self {
        Self {
            key,
            framers: Direction::ALL.map(|d| Framer::new(d, mid_stream)),
            pairing: Pairing::new(key),
            decoders: [None, None],
            budget: DecodeBudget::default(),
            finished: false,
            skipping: [false; 2],
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
        let d = direction.index();
        match self.framers[d].on_gap(len, shared) {
            Gap::InBody(end) => {
                if let Some(decoder) = self.decoders[d].as_mut() {
                    decoder.abandon();
                }
                if let Some(stats) = self.stats_mut(direction) {
                    stats.body_wire_bytes += len;
                    stats.body_bytes += len;
                    stats.last_byte = ts;
                }
                if let BodyEnd::Complete { .. } = end {
                    self.end_body(direction, true, false, shared, out);
                }
            }
            Gap::BodyCut => {
                if let Some(decoder) = self.decoders[d].as_mut() {
                    decoder.abandon();
                }
                self.end_body(direction, false, false, shared, out);
            }
            Gap::InHead => {
                // The gap most likely swallowed (the start of) a message. Keep requests and
                // responses paired: a lost request still gets a response, a lost response
                // leaves its request unanswered.
                shared.counters.lost_messages += 1;
                match direction {
                    Direction::Request => self.pairing.push_lost(),
                    Direction::Response => {
                        self.pairing.response_lost(&mut shared.counters);
                        self.pairing.emit_ready(out);
                    }
                }
            }
            Gap::InHold | Gap::Elsewhere => {}
        }
    }

    /// How many of the next bytes of `direction` this connection will not read: the rest of a
    /// body whose length is known, or of the chunk being read in a chunked body with the CRLF
    /// after it (a chunked request: the capture may follow the chunks after it), that nothing
    /// reads (see `BodyDecoder::unread`) and that is at least
    /// [`HttpShared::skip_unread_bodies_from`] bytes long; a chunked request of no bytes at
    /// the start of a size line of such a body; nothing otherwise. Once it returned a length,
    /// the caller must deliver no byte of `direction` before reporting the skipped ones with
    /// [`HttpConnection::on_skipped`]; chunks the capture skipped after them come with
    /// [`HttpConnection::on_chunks_skipped`].
    pub fn take_skip(&mut self, direction: Direction, shared: &mut HttpShared) -> SkipRequest {
        let none = SkipRequest::default();
        let Some(min) = shared.skip_unread_bodies_from else {
            return none;
        };
        let d = direction.index();
        if self.finished
            || self.skipping[d]
            || self.decoders[d].as_ref().is_some_and(|b| !b.unread())
        {
            return none;
        }
        if let Some(rem) = self.framers[d].chunk_position() {
            return match rem {
                // At a size line: the chunk's size is not known yet, so the capture is asked
                // to follow the body from here whatever `min` is (an empty range costs it
                // nothing but reading the lines).
                0 => SkipRequest {
                    len: 0,
                    chunked: true,
                },
                rem if rem >= min.max(1) => {
                    shared.counters.bodies_skipped += 1;
                    self.skipping[d] = true;
                    SkipRequest {
                        len: rem + 2,
                        chunked: true,
                    }
                }
                _ => none,
            };
        }
        match self.framers[d].body_remaining() {
            Some(rem) if rem >= min.max(1) => {
                shared.counters.bodies_skipped += 1;
                self.skipping[d] = true;
                SkipRequest {
                    len: rem,
                    chunked: false,
                }
            }
            _ => none,
        }
    }

    /// The capture followed a chunked body past a skip's end (see
    /// `StreamHandler::chunks_skipped`): its chunks count as read.
    pub fn on_chunks_skipped(
        &mut self,
        direction: Direction,
        skipped: ChunksSkipped,
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let d = direction.index();
        if self.finished {
            return;
        }
        if let Some(decoder) = self.decoders[d].as_mut() {
            decoder.count_unseen(skipped.data);
        }
        if let Some(Frame::Body {
            wire,
            data,
            chunks,
            end,
        }) = self.framers[d].on_chunks_skipped(skipped)
        {
            self.body_read(direction, [wire, data], chunks, end, ts, shared, out);
        }
    }

    /// `len` bytes of `direction` that [`HttpConnection::take_skip`] gave went by unseen (the
    /// stream passed them at `ts`): they count as read.
    pub fn on_skipped(
        &mut self,
        direction: Direction,
        len: u64,
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let d = direction.index();
        self.skipping[d] = false;
        if self.finished {
            return;
        }
        let frame = self.framers[d].on_skipped(len);
        if let Some(decoder) = self.decoders[d].as_mut() {
            // The body's bytes among them: a chunked skip also takes the CRLF after the data.
            decoder.count_unseen(match frame {
                Some(Frame::Body { data, .. }) => data,
                _ => len,
            });
        }
        if let Some(Frame::Body {
            wire,
            data,
            chunks,
            end,
        }) = frame
        {
            self.body_read(direction, [wire, data], chunks, end, ts, shared, out);
        }
    }

    /// `direction` ended (FIN): ends a close-delimited body.
    pub fn on_fin(
        &mut self,
        direction: Direction,
        _ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let d = direction.index();
        if self.finished || !self.framers[d].in_close_delimited_body() {
            return;
        }
        if let Some(BodyEnd::Complete { gap }) = self.framers[d].end_body() {
            self.end_body(direction, true, !gap, shared, out);
        }
        self.framers[d].stop();
    }

    /// The connection is gone (RST, both FINs, idle expiry, eviction, end of capture): flush
    /// what is pending, including requests without a response.
    pub fn on_close(&mut self, _ts: Timestamp, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        if self.finished {
            return;
        }
        for direction in [Direction::Response, Direction::Request] {
            match self.framers[direction.index()].end_body() {
                Some(BodyEnd::Complete { gap }) => {
                    self.end_body(direction, true, !gap, shared, out)
                }
                Some(_) => self.end_body(direction, false, false, shared, out),
                None => {}
            }
        }
        if self.framers[RESP].holds_bytes() {
            shared.counters.orphan_responses += 1;
        }
        self.pairing.give_up(GiveUp::All, &mut shared.counters, out);
        for framer in &mut self.framers {
            framer.stop();
        }
        self.finished = true;
    }

    fn stats_mut(&mut self, direction: Direction) -> Option<&mut MessageStats> {
        match direction {
            Direction::Request => self.pairing.request_target().map(|p| &mut p.ex.request),
            Direction::Response => self
                .pairing
                .response_target()
                .and_then(|p| p.ex.response.as_mut()),
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

    /// The next frame of direction `d` (`REQ` or `RESP`); body bytes go to that direction's
    /// decoder, which spends this connection's and all connections' decode budgets.
    fn next_frame<'a, 'i: 'a>(
        &'a mut self,
        d: usize,
        input: &mut &'i [u8],
        ts: Timestamp,
        shared: &mut HttpShared,
    ) -> Option<Frame<'a>> {
        let decoder = &mut self.decoders[d];
        let connection_budget = &mut self.budget;
        connection_budget.set_rate(shared.limits.max_decoded_bytes_per_connection_per_second);
        // Out of `shared` while the framer borrows it; put back below.
        let mut shared_budget = std::mem::take(&mut shared.budget);
        let frame = self.framers[d].next(input, ts, shared, &mut |data| {
            if let Some(decoder) = decoder.as_mut() {
                decoder.feed(data, ts, &mut [&mut shared_budget, &mut *connection_budget]);
            }
        });
        shared.budget = shared_budget;
        frame
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
            let frame = self.next_frame(REQ, &mut input, ts, shared);
            match frame {
                None | Some(Frame::Held { .. }) => {}
                Some(Frame::Rejected(e)) => shared.counters.head_rejected(e),
                Some(Frame::Oversized { framing }) => {
                    self.refuse_request(HeadError::TooLarge, framing, shared, out);
                }
                Some(Frame::Head {
                    block,
                    first_ts,
                    resynced,
                }) => {
                    let parsed =
                        head::parse_framed_request(block, &shared.limits.head()).map_err(|e| {
                            let framing = match e {
                                HeadError::HeaderLine => head::refused_request_framing(block),
                                _ => None,
                            };
                            (e, framing)
                        });
                    let header_bytes = block.len();
                    self.start_request(parsed, header_bytes, first_ts, resynced, ts, shared, out);
                }
                Some(Frame::Body {
                    wire,
                    data,
                    chunks,
                    end,
                }) => self.body_read(
                    Direction::Request,
                    [wire, data],
                    chunks,
                    end,
                    ts,
                    shared,
                    out,
                ),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_request(
        &mut self,
        parsed: Result<RequestHead, (HeadError, Option<BodyFraming>)>,
        header_bytes: usize,
        first_ts: Timestamp,
        resynced: bool,
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let head = match parsed {
            Ok(h) => h,
            Err((e, framing)) => return self.refuse_request(e, framing, shared, out),
        };
        if head.path_truncated {
            shared.counters.paths_truncated += 1;
        }
        if head.fields_cut > 0 {
            shared.counters.too_many_headers += 1;
        }
        // Too many requests without responses: the oldest are given up.
        let max = shared.limits.max_pending_requests;
        self.pairing
            .give_up(GiveUp::OverCapacity { max }, &mut shared.counters, out);
        let framing = head.body_framing();
        let decoder = (framing != BodyFraming::None)
            .then(|| body::request_decoder(&head.method, &head.path, &head.headers, shared));
        let request = Request {
            stats: head_stats(header_bytes, first_ts, ts, framing),
            wants_upgrade: head.headers.upgrade().is_some(),
            method: head.method,
            path: head.path,
            has_query: head.has_query,
            headers: head.headers,
            anomalies: if resynced {
                vec![Anomaly::MidStreamPickup]
            } else {
                Vec::new()
            },
        };
        self.pairing
            .push_request(request, framing != BodyFraming::None);
        if framing == BodyFraming::None {
            self.framers[REQ].next_message();
            self.after_request();
        } else {
            self.decoders[REQ] = decoder;
            self.framers[REQ].start_body(framing, shared);
        }
    }

    /// A request head was read to its end but refused (`error`). The server may answer it — or
    /// refuse it too, with a `400` — so it takes its place among the requests waiting for an
    /// answer, unreported. Its body is skipped when `framing` says how long it is; a request line
    /// inside it is no request. Otherwise the direction resynchronises.
    fn refuse_request(
        &mut self,
        error: HeadError,
        framing: Option<BodyFraming>,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        shared.counters.head_rejected(error);
        let max = shared.limits.max_pending_requests;
        self.pairing
            .give_up(GiveUp::OverCapacity { max }, &mut shared.counters, out);
        let body = framing.is_some_and(|f| f != BodyFraming::None);
        self.pairing.push_refused(body);
        self.decoders[REQ] = None;
        match framing {
            Some(BodyFraming::None) => self.framers[REQ].next_message(),
            Some(f) => self.framers[REQ].start_body(f, shared),
            None => self.framers[REQ].resync(),
        }
    }

    /// The request has ended: the next request starts, unless it asked for an upgrade.
    fn after_request(&mut self) {
        if self.pairing.last_wants_upgrade() && self.framers[REQ].between_messages() {
            self.framers[REQ].hold();
        }
    }

    /// Response bytes were waiting for a request: parse them now.
    fn release_response(&mut self, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        if self.framers[RESP].is_holding() && self.pairing.response_target().is_some() {
            let (held, ts) = self.framers[RESP].release();
            self.response_data(&held, ts, shared, out);
        }
    }

    /// The upgrade request was answered without a switch: parse the held requests.
    fn release_request(&mut self, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        if self.framers[REQ].is_holding() {
            let (held, ts) = self.framers[REQ].release();
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
            if self.framers[RESP].is_resyncing() && !self.pairing.requests_seen() {
                // Joined mid-stream: answers to requests we never saw.
                shared.counters.resync_skipped_bytes += input.len() as u64;
                return;
            }
            if self.framers[RESP].between_messages() && self.pairing.response_target().is_none() {
                self.framers[RESP].hold();
            }
            let frame = self.next_frame(RESP, &mut input, ts, shared);
            match frame {
                None => {}
                Some(Frame::Held { full }) => {
                    if full {
                        // Nobody asked for this: give up and look for the next response.
                        shared.counters.orphan_responses += 1;
                        self.framers[RESP].resync();
                    }
                }
                Some(Frame::Rejected(e)) => shared.counters.head_rejected(e),
                Some(Frame::Oversized { .. }) => {
                    // Only requests are skipped to their end.
                    shared.counters.head_rejected(HeadError::TooLarge);
                    self.framers[RESP].resync();
                }
                Some(Frame::Head {
                    block, first_ts, ..
                }) => {
                    let parsed = head::parse_response(block, &shared.limits.head());
                    let header_bytes = block.len();
                    if self.start_response(parsed, header_bytes, first_ts, input, ts, shared, out) {
                        return;
                    }
                }
                Some(Frame::Body {
                    wire,
                    data,
                    chunks,
                    end,
                }) => self.body_read(
                    Direction::Response,
                    [wire, data],
                    chunks,
                    end,
                    ts,
                    shared,
                    out,
                ),
            }
        }
    }

    /// A response head was read; `rest` is the input after it. Returns `true` when the
    /// connection stopped being HTTP (upgrade or tunnel).
    #[allow(clippy::too_many_arguments)]
    fn start_response(
        &mut self,
        parsed: Result<ResponseHead, HeadError>,
        header_bytes: usize,
        first_ts: Timestamp,
        rest: &[u8],
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) -> bool {
        let head = match parsed {
            Ok(h) => h,
            Err(e) => {
                shared.counters.head_rejected(e);
                self.framers[RESP].resync();
                return false;
            }
        };
        if head.fields_cut > 0 {
            shared.counters.too_many_headers += 1;
        }
        if (100..200).contains(&head.status) && head.status != 101 {
            shared.counters.interim_responses += 1;
            self.framers[RESP].next_message();
            return false;
        }
        let Some(target) = self.pairing.response_target() else {
            shared.counters.orphan_responses += 1;
            self.framers[RESP].resync();
            return false;
        };
        let framing = head.body_framing(&target.ex.method);
        target.ex.status = Some(head.status);
        target.ex.response = Some(head_stats(header_bytes, first_ts, ts, framing));
        target.ex.response_headers = head.headers;
        // A 2xx to CONNECT turns the connection into an opaque tunnel (RFC 9110 §9.3.6).
        let tunnel =
            target.ex.method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&head.status);
        if head.status == 101 {
            target.ex.upgraded = true;
            target.finish_request();
            target.finish_response();
            shared.counters.upgrades += 1;
            let websocket_extensions = target
                .ex
                .response_headers
                .websocket_extensions()
                .map(str::to_owned);
            let request_leftover = self.framers[REQ].stop();
            self.framers[RESP].stop();
            self.pairing.emit_ready(out);
            // Requests pipelined behind the upgrade can no longer be answered over HTTP.
            self.pairing.give_up(GiveUp::All, &mut shared.counters, out);
            out.push(HttpEvent::Upgraded {
                websocket_extensions,
                leftover: [request_leftover, rest.to_vec()],
            });
            self.finished = true;
            return true;
        }
        if tunnel {
            shared.counters.tunnels += 1;
            if let Some(r) = target.ex.response.as_mut() {
                r.complete = true;
                r.body_decoded_bytes = Some(0);
            }
            self.framers[RESP].next_message();
            self.finish_response(shared, out);
            self.on_close(ts, shared, out);
            return true;
        }
        if framing == BodyFraming::None {
            self.framers[RESP].next_message();
            self.finish_response(shared, out);
        } else {
            let headers = &target.ex.response_headers;
            self.decoders[RESP] = Some(body::response_decoder(headers, shared));
            self.framers[RESP].start_body(framing, shared);
        }
        false
    }

    /// The current response has ended (its stats are final).
    fn finish_response(&mut self, shared: &mut HttpShared, out: &mut Vec<HttpEvent>) {
        let mut release = false;
        if let Some(target) = self.pairing.response_target() {
            target.finish_response();
            release = target.wants_upgrade;
        }
        self.pairing.emit_ready(out);
        if release {
            self.release_request(shared, out);
        }
    }

    // ----- bodies -----

    /// Body bytes of `direction` were read: `[wire, data]` bytes (see [`Frame::Body`]).
    #[allow(clippy::too_many_arguments)]
    fn body_read(
        &mut self,
        direction: Direction,
        [wire, data]: [u64; 2],
        chunks: u32,
        end: BodyEnd,
        ts: Timestamp,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        if let Some(stats) = self.stats_mut(direction) {
            stats.body_wire_bytes += wire;
            stats.body_bytes += data;
            stats.chunks = chunks;
            if wire > 0 {
                stats.last_byte = ts;
            }
        }
        match end {
            BodyEnd::More => {}
            BodyEnd::Complete { gap } => self.end_body(direction, true, !gap, shared, out),
            BodyEnd::Broken => self.end_body(direction, false, false, shared, out),
        }
    }

    /// Ends the body being read in `direction`; `complete`: it ended as framed; `whole`: and
    /// none of it was lost, so its decoding can finish.
    fn end_body(
        &mut self,
        direction: Direction,
        complete: bool,
        whole: bool,
        shared: &mut HttpShared,
        out: &mut Vec<HttpEvent>,
    ) {
        let decoded = self.decoders[direction.index()].take().map(|mut decoder| {
            let decoded = decoder.finish(whole);
            shared.spare_decoders.recycle(decoder);
            decoded
        });
        let mut target = match direction {
            Direction::Request => self.pairing.request_target(),
            Direction::Response => self.pairing.response_target(),
        };
        if let Some(decoded) = decoded {
            let ex = target.as_mut().map(|p| &mut *p.ex);
            body::finish(decoded, direction, complete, ex, shared);
        }
        match direction {
            Direction::Request => {
                if let Some(p) = target {
                    p.finish_request();
                }
                self.after_request();
                self.pairing.emit_ready(out);
            }
            Direction::Response => self.finish_response(shared, out),
        }
    }
}
