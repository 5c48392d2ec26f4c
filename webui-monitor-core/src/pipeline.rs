//! The sans-IO pipeline: [`Segment`]s in, [`PipelineEvent`]s out.
//!
//! Per connection: TCP reassembly of both directions ([`reassembly`](crate::reassembly)), then
//! HTTP/1.1 ([`HttpConnection`]) until a `101 Switching Protocols`, then WebSocket
//! ([`WebSocketConnection`]), which first receives the bytes HTTP had already read past the
//! upgrade. The reassembler hands both directions over in capture order, which is what lets HTTP
//! match responses to requests and time them.
use serde::Deserialize;

use crate::{
    http::{Exchange, HttpConnection, HttpCounters, HttpEvent, HttpLimits, HttpShared},
    memory::{MemoryAccount, MemoryLimits},
    reassembly::{
        ChunksSkipped, CloseReason, Reassembler, ReassemblyCounters, ReassemblyLimits, SkipRange,
        SkipRequest, StreamHandler,
    },
    segment::{ConnectionKey, Direction, Segment, Timestamp},
    websocket::{
        SocketEvent, WebSocketConnection, WebSocketCounters, WebSocketLimits, WebSocketShared,
    },
};

pub use crate::reassembly::SkipCommand;

/// What the pipeline reports.
#[derive(Debug)]
pub enum PipelineEvent {
    /// A completed HTTP exchange (boxed: it is large and the other variant is small).
    Exchange(Box<Exchange>),
    /// A WebSocket fact of the upgraded connection `connection`.
    Socket {
        connection: ConnectionKey,
        event: SocketEvent,
    },
}

/// Every cap of the stream engine, as one config section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub reassembly: ReassemblyLimits,
    pub http: HttpLimits,
    pub websocket: WebSocketLimits,
    /// The budget of decompressors and WebSocket messages, over all connections.
    pub memory: MemoryLimits,
}

/// The protocol spoken on a connection.
#[derive(Debug)]
enum Protocol {
    // Both engines are hundreds of bytes inline; boxed, a table entry stays one pointer wide
    // and turning HTTP into a WebSocket moves no large value.
    Http(Box<HttpConnection>),
    WebSocket(Box<WebSocketConnection>),
}

/// Per-connection state kept by the reassembler.
#[derive(Debug)]
struct ConnState {
    protocol: Protocol,
    /// The reassembler established or confirmed the connection (see `reassembly`): only then
    /// are its exchanges reported.
    confirmed: bool,
    /// A skip was started on the connection (the capture holds a range to forget at close).
    skipping: bool,
}

/// Sans-IO state machine from segments to exchanges and socket events.
#[derive(Debug)]
pub struct Pipeline {
    reassembler: Reassembler<ConnState>,
    http: HttpShared,
    websocket: WebSocketShared,
    http_events: Vec<HttpEvent>,
    socket_events: Vec<SocketEvent>,
    /// Exchanges of connections never established or confirmed, not reported.
    unconfirmed_exchanges: u64,
    /// Commands for the capture, oldest first.
    skips: std::collections::VecDeque<SkipCommand>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new(PipelineConfig::default())
    }
}

/// Borrows what the handler needs for one call into the reassembler.
struct Engines<'p> {
    http: &'p mut HttpShared,
    websocket: &'p mut WebSocketShared,
    http_events: &'p mut Vec<HttpEvent>,
    socket_events: &'p mut Vec<SocketEvent>,
    unconfirmed_exchanges: &'p mut u64,
    skips: &'p mut std::collections::VecDeque<SkipCommand>,
    out: &'p mut Vec<PipelineEvent>,
}

impl Engines<'_> {
    /// Maps the HTTP engine's events; an upgrade switches the connection to WebSocket.
    fn drain_http(&mut self, state: &mut ConnState, key: ConnectionKey, ts: Timestamp) {
        if self.http_events.is_empty() {
            return self.drain_socket(key);
        }
        // `http_events` is taken so that the upgrade below can borrow `self` mutably.
        let mut events = std::mem::take(self.http_events);
        for event in events.drain(..) {
            match event {
                // A forger can open any number of connections and send requests on them; only
                // a connection that proved itself (an answer is traffic of the server's
                // direction) has its exchanges reported.
                HttpEvent::Exchange(exchange) if state.confirmed => {
                    self.out.push(PipelineEvent::Exchange(exchange))
                }
                HttpEvent::Exchange(_) => *self.unconfirmed_exchanges += 1,
                HttpEvent::Upgraded {
                    websocket_extensions,
                    leftover,
                } => {
                    let mut ws = WebSocketConnection::new(
                        key,
                        websocket_extensions.as_deref(),
                        self.websocket,
                    );
                    for dir in Direction::ALL {
                        let bytes = &leftover[dir.index()];
                        if !bytes.is_empty() {
                            ws.on_data(dir, bytes, ts, self.websocket, self.socket_events);
                        }
                    }
                    state.protocol = Protocol::WebSocket(Box::new(ws));
                }
            }
        }
        *self.http_events = events;
        self.drain_socket(key);
    }

    fn drain_socket(&mut self, key: ConnectionKey) {
        // Most calls find none (every HTTP segment ends here).
        if self.socket_events.is_empty() {
            return;
        }
        self.out.extend(
            self.socket_events
                .drain(..)
                .map(|event| PipelineEvent::Socket {
                    connection: key,
                    event,
                }),
        );
    }
}

impl StreamHandler for Engines<'_> {
    type State = ConnState;

    fn open(&mut self, key: ConnectionKey, mid_stream: bool, _ts: Timestamp) -> ConnState {
        ConnState {
            protocol: Protocol::Http(Box::new(HttpConnection::new(key, mid_stream))),
            confirmed: false,
            skipping: false,
        }
    }

    fn confirmed(&mut self, state: &mut ConnState, _key: ConnectionKey, _ts: Timestamp) {
        state.confirmed = true;
    }

    fn data(
        &mut self,
        state: &mut ConnState,
        key: ConnectionKey,
        direction: Direction,
        data: &[u8],
        ts: Timestamp,
    ) {
        match &mut state.protocol {
            Protocol::Http(http) => {
                http.on_data(direction, data, ts, self.http, self.http_events);
                self.drain_http(state, key, ts);
            }
            Protocol::WebSocket(ws) => {
                ws.on_data(direction, data, ts, self.websocket, self.socket_events);
                self.drain_socket(key);
            }
        }
    }

    fn take_skip(&mut self, state: &mut ConnState, direction: Direction) -> SkipRequest {
        match &mut state.protocol {
            Protocol::Http(http) => http.take_skip(direction, self.http),
            Protocol::WebSocket(_) => SkipRequest::default(),
        }
    }

    fn skip_started(&mut self, state: &mut ConnState, key: ConnectionKey, range: SkipRange) {
        state.skipping = true;
        self.skips.push_back(SkipCommand::Skip {
            connection: key,
            range,
        });
    }

    fn skipped(
        &mut self,
        state: &mut ConnState,
        key: ConnectionKey,
        direction: Direction,
        len: u64,
        ts: Timestamp,
    ) {
        if let Protocol::Http(http) = &mut state.protocol {
            http.on_skipped(direction, len, ts, self.http, self.http_events);
            self.drain_http(state, key, ts);
        }
    }

    fn chunks_skipped(
        &mut self,
        state: &mut ConnState,
        key: ConnectionKey,
        direction: Direction,
        skipped: ChunksSkipped,
        ts: Timestamp,
    ) {
        if let Protocol::Http(http) = &mut state.protocol {
            http.on_chunks_skipped(direction, skipped, ts, self.http, self.http_events);
            self.drain_http(state, key, ts);
        }
    }

    fn gap(
        &mut self,
        state: &mut ConnState,
        key: ConnectionKey,
        direction: Direction,
        len: u64,
        ts: Timestamp,
    ) {
        match &mut state.protocol {
            Protocol::Http(http) => {
                http.on_gap(direction, len, ts, self.http, self.http_events);
                self.drain_http(state, key, ts);
            }
            Protocol::WebSocket(ws) => {
                ws.on_gap(direction, len, ts, self.websocket, self.socket_events);
                self.drain_socket(key);
            }
        }
    }

    fn fin(
        &mut self,
        state: &mut ConnState,
        key: ConnectionKey,
        direction: Direction,
        ts: Timestamp,
    ) {
        // WebSocket has no half-close of interest: its close frames and the final close matter.
        if let Protocol::Http(http) = &mut state.protocol {
            http.on_fin(direction, ts, self.http, self.http_events);
            self.drain_http(state, key, ts);
        }
    }

    fn close(
        &mut self,
        mut state: ConnState,
        key: ConnectionKey,
        _reason: CloseReason,
        ts: Timestamp,
    ) {
        if state.skipping {
            self.skips
                .push_back(SkipCommand::Forget { connection: key });
        }
        match &mut state.protocol {
            Protocol::Http(http) => {
                http.on_close(ts, self.http, self.http_events);
                self.drain_http(&mut state, key, ts);
                // An upgrade seen only while flushing still ends with the socket's close.
                if let Protocol::WebSocket(ws) = &mut state.protocol {
                    ws.on_close(ts, self.websocket, self.socket_events);
                    self.drain_socket(key);
                }
            }
            Protocol::WebSocket(ws) => {
                ws.on_close(ts, self.websocket, self.socket_events);
                self.drain_socket(key);
            }
        }
    }
}

impl Pipeline {
    /// A pipeline with no connection; every cap comes from `config`.
    pub fn new(config: PipelineConfig) -> Self {
        // Assigned after `default()`: the engines may keep private fields in their shared state.
        let memory = MemoryAccount::new(&config.memory);
        let mut http = HttpShared::new(config.http);
        http.memory = memory.clone();
        let mut websocket = WebSocketShared::new(config.websocket);
        websocket.memory = memory;
        Self {
            reassembler: Reassembler::new(config.reassembly),
            http,
            websocket,
            http_events: Vec::new(),
            socket_events: Vec::new(),
            unconfirmed_exchanges: 0,
            skips: std::collections::VecDeque::new(),
        }
    }

    /// New caps for every connection, open ones included (see [`Reassembler::set_limits`]
    /// for the two that keep their start value).
    pub fn set_limits(&mut self, config: PipelineConfig) {
        self.http.set_limits(config.http);
        self.http.memory.set_limits(&config.memory);
        self.websocket.limits = config.websocket;
        self.reassembler.set_limits(config.reassembly);
    }

    /// The memory budget of decompressors and WebSocket messages (shared by both engines).
    pub fn memory(&self) -> &MemoryAccount {
        &self.http.memory
    }

    /// Read request bodies for fields only where `reads(method, path)` says their fields are
    /// used (the semantics layer's routes); others are counted, not decoded or scanned.
    pub fn read_request_bodies_of(&mut self, reads: fn(&str, &str) -> bool) {
        self.http.reads_request_body.set(reads);
    }

    /// Skip the rest of each body nothing reads once at least `min_bytes` of it remain and
    /// its length is known (`None`: skip nothing, the default). Only worth it when the
    /// capture applies the [`SkipCommand`]s [`Pipeline::poll_skip`] hands out; the events
    /// are the same either way.
    pub fn skip_unread_bodies(&mut self, min_bytes: Option<u64>) {
        self.http.skip_unread_bodies_from = min_bytes;
    }

    /// The next command for the capture, oldest first. Call it after each
    /// [`Pipeline::on_segment`], [`Pipeline::on_tick`] and [`Pipeline::finish`] until it
    /// returns `None`; a capture that applies none of them changes nothing but its cost.
    pub fn poll_skip(&mut self) -> Option<SkipCommand> {
        self.skips.pop_front()
    }

    fn engines<'p>(
        &'p mut self,
        out: &'p mut Vec<PipelineEvent>,
    ) -> (&'p mut Reassembler<ConnState>, Engines<'p>) {
        (
            &mut self.reassembler,
            Engines {
                http: &mut self.http,
                websocket: &mut self.websocket,
                http_events: &mut self.http_events,
                socket_events: &mut self.socket_events,
                unconfirmed_exchanges: &mut self.unconfirmed_exchanges,
                skips: &mut self.skips,
                out,
            },
        )
    }

    /// Feeds one segment; events it completes are appended to `out`.
    pub fn on_segment(&mut self, segment: &Segment<'_>, out: &mut Vec<PipelineEvent>) {
        let (reassembler, mut engines) = self.engines(out);
        reassembler.on_segment(segment, &mut engines);
    }

    /// Expire idle connections as of `now` (traffic time), skip timed-out holes.
    pub fn on_tick(&mut self, now: Timestamp, out: &mut Vec<PipelineEvent>) {
        let (reassembler, mut engines) = self.engines(out);
        reassembler.on_tick(now, &mut engines);
    }

    /// End of input: close every connection, flushing what is pending.
    pub fn finish(&mut self, now: Timestamp, out: &mut Vec<PipelineEvent>) {
        let (reassembler, mut engines) = self.engines(out);
        reassembler.finish(now, &mut engines);
    }

    /// Cumulative reassembly totals.
    pub fn reassembly_counters(&self) -> &ReassemblyCounters {
        self.reassembler.counters()
    }

    /// Cumulative HTTP engine totals (all connections).
    pub fn http_counters(&self) -> &HttpCounters {
        &self.http.counters
    }

    /// Cumulative WebSocket decoder totals (all connections).
    pub fn websocket_counters(&self) -> &WebSocketCounters {
        &self.websocket.counters
    }

    /// Open TCP connections.
    pub fn active_connections(&self) -> usize {
        self.reassembler.active_connections()
    }

    /// HTTP exchanges of connections that were never established or confirmed (see
    /// `reassembly`), not reported.
    pub fn unconfirmed_exchanges(&self) -> u64 {
        self.unconfirmed_exchanges
    }

    /// Connections open and not yet established or confirmed (see `reassembly`).
    pub fn unconfirmed_connections(&self) -> usize {
        self.reassembler.unconfirmed_connections()
    }

    /// Bytes held back by reassembly.
    pub fn buffered_bytes(&self) -> usize {
        self.reassembler.buffered_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use proptest::prelude::*;

    use super::*;
    use crate::segment::TcpFlags;

    /// A conversation in causal order: keep-alive, a chunked response, an upgrade, WebSocket
    /// frames.
    const MESSAGES: [(Direction, &[u8]); 10] = [
        (Direction::Request, b"GET /api/config HTTP/1.1\r\nHost: x\r\n\r\n"),
        (Direction::Response, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
        (Direction::Request, b"GET /static/a.png HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            Direction::Response,
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 40\r\n\r\n\
0123456789012345678901234567890123456789",
        ),
        (
            Direction::Request,
            b"POST /api/chat/completions HTTP/1.1\r\nContent-Length: 17\r\n\
Content-Type: application/json\r\n\r\n{\"stream\": false}",
        ),
        (
            Direction::Response,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        ),
        (
            Direction::Request,
            b"GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\n\r\n",
        ),
        (
            Direction::Response,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ),
        (Direction::Request, b"\x81\x82\x00\x00\x00\x0040"),
        (Direction::Response, b"\x81\x0240"),
    ];

    fn key() -> ConnectionKey {
        ConnectionKey {
            client: SocketAddr::from((Ipv4Addr::LOCALHOST, 50000)),
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        }
    }

    #[derive(Clone)]
    struct Seg {
        dir: Direction,
        seq: u32,
        flags: u8,
        payload: Vec<u8>,
    }

    /// Handshake, each message cut at `cuts`, its segments moved up to `jitter` places among
    /// themselves and `dups` of them sent twice (causality across messages is kept: a
    /// response never precedes its request), then FINs.
    fn conversation(cuts: &[usize], jitter: &[usize], dups: &[usize]) -> Vec<Seg> {
        let isn = [100u32, u32::MAX - 50];
        let mut next = [isn[0].wrapping_add(1), isn[1].wrapping_add(1)];
        let mut segs = vec![
            Seg {
                dir: Direction::Request,
                seq: isn[0],
                flags: TcpFlags::SYN,
                payload: vec![],
            },
            Seg {
                dir: Direction::Response,
                seq: isn[1],
                flags: TcpFlags::SYN | TcpFlags::ACK,
                payload: vec![],
            },
        ];
        for (dir, data) in MESSAGES {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            points.extend([0, data.len()]);
            points.sort_unstable();
            points.dedup();
            let mut pieces: Vec<Seg> = points
                .windows(2)
                .map(|w| Seg {
                    dir,
                    seq: next[dir.index()].wrapping_add(w[0] as u32),
                    flags: TcpFlags::ACK,
                    payload: data[w[0]..w[1]].to_vec(),
                })
                .collect();
            for d in dups {
                let copy = pieces[d % pieces.len()].clone();
                pieces.push(copy);
            }
            let mut order: Vec<(usize, usize)> = (0..pieces.len())
                .map(|i| (i + jitter.get(i).copied().unwrap_or(0), i))
                .collect();
            order.sort_unstable();
            segs.extend(order.into_iter().map(|(_, i)| pieces[i].clone()));
            next[dir.index()] = next[dir.index()].wrapping_add(data.len() as u32);
        }
        for dir in Direction::ALL {
            segs.push(Seg {
                dir,
                seq: next[dir.index()],
                flags: TcpFlags::FIN | TcpFlags::ACK,
                payload: vec![],
            });
        }
        segs
    }

    /// Runs segments through a pipeline; all at one timestamp so that any segmentation must
    /// yield identical events, timestamps included.
    fn run(segs: &[Seg]) -> (Pipeline, Vec<String>) {
        run_skipping(segs, None).0
    }

    /// [`run`], skipping unread bodies from `skip_from` bytes with the capture's rule applied
    /// to the segments; also returns the payload bytes the capture left out.
    fn run_skipping(segs: &[Seg], skip_from: Option<u64>) -> ((Pipeline, Vec<String>), u64) {
        run_skipping_with(Pipeline::default(), segs, skip_from, &mut Vec::new())
    }

    /// [`run_skipping`] through `p`, keeping the commands the pipeline gave the capture.
    fn run_skipping_with(
        mut p: Pipeline,
        segs: &[Seg],
        skip_from: Option<u64>,
        commands: &mut Vec<SkipCommand>,
    ) -> ((Pipeline, Vec<String>), u64) {
        p.skip_unread_bodies(skip_from);
        let mut filter = crate::capture_model::SkipFilter::default();
        let mut out = Vec::new();
        for s in segs {
            let seg = Segment {
                key: key(),
                direction: s.dir,
                seq: s.seq,
                flags: TcpFlags(s.flags),
                payload: &s.payload,
                timestamp: Timestamp::from_secs(1),
                after_capture_loss: false,
                capture_skip: None,
            };
            if let Some(seg) = filter.filter(&seg) {
                p.on_segment(&seg, &mut out);
            }
            while let Some(command) = p.poll_skip() {
                commands.push(command);
                filter.apply(command);
            }
        }
        p.finish(Timestamp::from_secs(2), &mut out);
        while let Some(command) = p.poll_skip() {
            filter.apply(command);
        }
        assert!(filter.is_empty(), "every range is forgotten at close");
        let events = out.iter().map(|e| format!("{e:?}")).collect();
        ((p, events), filter.skipped_bytes)
    }

    #[test]
    fn an_unread_body_is_skipped_with_identical_events() {
        let segs = conversation(&[], &[], &[]);
        let (_, reference) = run(&segs);
        // The image's body arrives with its head: nothing is left to skip.
        let ((p, events), skipped) = run_skipping(&segs, Some(1));
        assert_eq!(events, reference);
        assert_eq!((skipped, p.http_counters().bodies_skipped), (0, 0));
        // Cut after the head: the 40 bytes of the body go unseen.
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 40\r\n\r\n".len();
        let ((p, events), skipped) =
            run_skipping(&conversation(&[head, head + 7], &[], &[]), Some(1));
        assert_eq!(events, reference);
        assert_eq!(skipped, 40);
        assert_eq!(p.reassembly_counters().skipped_bytes, 40);
        assert_eq!(p.http_counters().bodies_skipped, 1);
        // Above the minimum: copied.
        let ((p, _), skipped) = run_skipping(&conversation(&[head], &[], &[]), Some(41));
        assert_eq!((skipped, p.reassembly_counters().skipped_bytes), (0, 0));
    }

    #[test]
    fn the_capture_follows_an_unread_chunked_body() {
        let (_, reference) = run(&conversation(&[], &[], &[]));
        // Cut after the chunked response's head: the pipeline asks the capture to follow the
        // body from its first size line; the capture leaves out both data chunks, with their
        // lines and CRLFs, and copies from the last chunk on.
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        let ((p, events), skipped) = run_skipping(&conversation(&[head], &[], &[]), Some(1));
        assert_eq!(events, reference);
        assert_eq!(skipped, b"4\r\n{\"a\"\r\n3\r\n:1}\r\n".len() as u64);
        assert_eq!(p.reassembly_counters().skipped_bytes, skipped);
        assert_eq!(p.reassembly_counters().gaps, 0);
    }

    #[test]
    fn the_capture_follows_chunks_past_the_window() {
        // The window (8 bytes here) bounds where a segment may lie, not how far the capture
        // follows a body: its mark 17 bytes on is taken.
        let (_, reference) = run(&conversation(&[], &[], &[]));
        let mut config = PipelineConfig::default();
        config.reassembly.max_window_bytes = 8;
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        let ((p, events), skipped) = run_skipping_with(
            Pipeline::new(config),
            &conversation(&[head], &[], &[]),
            Some(1),
            &mut Vec::new(),
        );
        assert_eq!(events, reference);
        assert_eq!(skipped, b"4\r\n{\"a\"\r\n3\r\n:1}\r\n".len() as u64);
        assert_eq!(p.reassembly_counters().skipped_bytes, skipped);
        assert_eq!(p.reassembly_counters().gaps, 0);
    }

    #[test]
    fn a_chunked_range_the_capture_stops_following_becomes_plain() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        let mut commands = Vec::new();
        run_skipping_with(
            Pipeline::default(),
            &conversation(&[head], &[], &[]),
            Some(1),
            &mut commands,
        );
        let ranges: Vec<SkipRange> = commands
            .iter()
            .filter_map(|c| match c {
                SkipCommand::Skip { range, .. } if range.direction == Direction::Response => {
                    Some(*range)
                }
                _ => None,
            })
            .collect();
        // The body's empty chunked range at its first size line, which the capture follows
        // past both data chunks; it copies from the last chunk's line, and the range becomes
        // plain and empty there, so nothing re-sent into the body has it follow lines again.
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert!(ranges[0].chunked && ranges[0].from == ranges[0].to);
        assert!(!ranges[1].chunked && ranges[1].from == ranges[1].to);
        assert_eq!(
            ranges[1].from.wrapping_sub(ranges[0].to),
            b"4\r\n{\"a\"\r\n3\r\n:1}\r\n".len() as u32
        );
    }

    #[test]
    fn a_chunked_range_whose_next_bytes_are_buffered_is_plain() {
        // The chunked response in three pieces: [head + "4\r\n{\""], ["a\"\r\n3\r\n:1}"],
        // ["\r\n0\r\n\r\n"]. The second arrives first and waits; the first makes the
        // pipeline skip the rest of the first chunk, and the waiting piece holds the size line
        // of the second chunk at the range's end. A copy of the second piece
        // sent again before the third must not have the capture follow that line: the stream
        // already holds the chunk, and expects its CRLF from the third piece.
        let (_, reference) = run(&conversation(&[], &[], &[]));
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        let cuts = [head + 5, head + 15];
        // Arrival order of the pieces (the copy last of four): second, first, copy, third.
        let jitter = [2, 0, 2, 0];
        let ((p, events), skipped) = run_skipping(&conversation(&cuts, &jitter, &[1]), Some(1));
        assert_eq!(events, reference);
        assert_eq!(p.reassembly_counters().gaps, 0);
        // The range is plain (its end was there before it was asked for): of the copy sent
        // again, the capture leaves out the bytes before the range's end, `a"` and its CRLF
        // (the image's body arrives with the end of its head).
        assert_eq!(skipped, 4);
    }

    #[test]
    fn a_range_whose_end_arrived_first_is_plain_and_keeps_what_is_to_come_out() {
        // The chunked response in three pieces: [head + "4\r\n{\"a"], ["\"\r"],
        // ["\n3\r\n:1}\r\n0\r\n\r\n"], arriving third, first, second. The first makes the
        // pipeline skip the rest of the first chunk (`"` and its CRLF); the third already
        // waits at the range's end with the next size line, so the range is plain and the
        // second piece, all of it inside, stays out of the ring (not copied as a duplicate).
        let (_, reference) = run(&conversation(&[], &[], &[]));
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        let mut commands = Vec::new();
        let ((p, events), skipped) = run_skipping_with(
            Pipeline::default(),
            &conversation(&[head + 6, head + 8], &[3, 3, 0], &[]),
            Some(1),
            &mut commands,
        );
        assert_eq!(events, reference);
        assert_eq!(p.reassembly_counters().gaps, 0);
        assert_eq!(p.reassembly_counters().duplicate_bytes, 0);
        assert_eq!(skipped, 2);
        let chunked = commands
            .iter()
            .filter(|c| matches!(c, SkipCommand::Skip { range, .. } if range.chunked))
            .count();
        assert_eq!(chunked, 0, "{commands:?}");
    }

    #[test]
    fn a_chunked_range_a_gap_passes_is_plain() {
        // The chunked response in five pieces: A [head + "4\r\n{\""], B ["a\"\r\n"],
        // C ["3\r\n:1}"], D1 ["\r"], D2 ["\n0\r\n\r\n"]. After A the capture follows the body
        // from the end of the first chunk (B's end); C is lost, and D1, buffered, makes the
        // pipeline (no piece may wait) give C's bytes up as a gap. C then arrives late, before
        // D2: it must not have the capture follow its size line, which would leave out D2's
        // first byte, a second gap.
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        let mut segs = conversation(&[head + 5, head + 9, head + 15, head + 16], &[], &[]);
        let c = segs
            .iter()
            .position(|s| s.payload == b"3\r\n:1}")
            .expect("piece C");
        let late = segs.remove(c);
        assert_eq!(segs[c].payload, b"\r", "D1 follows C");
        segs.insert(c + 1, late);
        let mut config = PipelineConfig::default();
        config.reassembly.max_buffered_pieces_per_connection = 0;
        let mut commands = Vec::new();
        let ((p, _), _) = run_skipping_with(Pipeline::new(config), &segs, Some(1), &mut commands);
        assert_eq!(p.reassembly_counters().gaps, 1);
        assert_eq!(p.reassembly_counters().gap_bytes, 6);
        let last = commands.iter().rev().find_map(|c| match c {
            SkipCommand::Skip { range, .. } if range.direction == Direction::Response => {
                Some(*range)
            }
            _ => None,
        });
        assert!(
            last.is_some_and(|r| !r.chunked && r.from == r.to),
            "{commands:?}"
        );
    }

    #[test]
    fn conversation_closes_cleanly() {
        let (p, _) = run(&conversation(&[], &[], &[]));
        let c = p.reassembly_counters();
        assert_eq!(c.connections_opened, 1);
        assert_eq!(c.connections_closed_fin, 1);
        assert_eq!(c.gaps, 0);
        assert_eq!(p.active_connections(), 0);
        assert_eq!(p.buffered_bytes(), 0);
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let c: PipelineConfig =
            serde_json::from_str(r#"{"reassembly":{"max_connections":7}}"#).expect("config");
        assert_eq!(c.reassembly.max_connections, 7);
        assert_eq!(
            c.reassembly.idle_timeout_ms,
            ReassemblyLimits::default().idle_timeout_ms
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any split, any reordering within a window, duplicated segments: identical events
        /// (exchanges and socket events, once the HTTP and WebSocket engines are in).
        #[test]
        fn any_segmentation_yields_identical_events(
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            jitter in proptest::collection::vec(0usize..5, 0..24),
            dups in proptest::collection::vec(any::<usize>(), 0..3),
        ) {
            let (_, reference) = run(&conversation(&[], &[], &[]));
            let (p, events) = run(&conversation(&cuts, &jitter, &dups));
            prop_assert_eq!(events, reference);
            prop_assert_eq!(p.reassembly_counters().gaps, 0);
            prop_assert_eq!(p.active_connections(), 0);
        }

        /// The same with unread bodies skipped (the capture leaving out what the pipeline asks
        /// it to): identical events still.
        #[test]
        fn skipping_yields_identical_events(
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            jitter in proptest::collection::vec(0usize..5, 0..24),
            dups in proptest::collection::vec(any::<usize>(), 0..3),
        ) {
            let (_, reference) = run(&conversation(&[], &[], &[]));
            let ((p, events), _) = run_skipping(&conversation(&cuts, &jitter, &dups), Some(1));
            prop_assert_eq!(events, reference);
            prop_assert_eq!(p.reassembly_counters().gaps, 0);
            prop_assert_eq!(p.active_connections(), 0);
            prop_assert_eq!(p.buffered_bytes(), 0);
        }
    }
}
