//! The requests of one connection waiting for their responses, in order (pipelining).
//!
//! HTTP/1.1 answers requests in the order they were sent, so the N-th response belongs to the
//! N-th request. Every request takes a place in the queue — also one that could not be read
//! (lost in a gap) — or every later answer would be paired with the wrong request. Exchanges
//! leave the queue in request order, when both halves have ended or when they are given up.
use std::collections::VecDeque;

use crate::{
    http::{
        exchange::{
            Anomaly, Exchange, MessageStats, RequestBodyFields, RequestHeaders, ResponseBodyFields,
            ResponseHeaders,
        },
        head::BodyFraming,
        limits::HttpCounters,
    },
    segment::{ConnectionKey, Timestamp},
};

/// How far one queued exchange has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its request is still being read, no response yet.
    Open,
    /// Its request has ended; waiting for (the end of) the response.
    Sent,
    /// Its response ended while the request was still being read (an early answer).
    AnsweredEarly,
    /// Both have ended.
    Done,
}

/// What a queue place stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// A request that was read: reported when it leaves the queue.
    Request,
    /// A request lost in a gap: it takes the next response, and neither is reported.
    Lost,
    /// A request whose head was refused (malformed, or over a cap): it takes the next response,
    /// and neither is reported.
    Refused,
}

/// One queued exchange.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) ex: Box<Exchange>,
    state: State,
    slot: Slot,
    /// The request asked for a protocol upgrade.
    pub(super) wants_upgrade: bool,
}

impl Pending {
    fn request_done(&self) -> bool {
        matches!(self.state, State::Sent | State::Done)
    }

    fn response_done(&self) -> bool {
        matches!(self.state, State::AnsweredEarly | State::Done)
    }

    pub(super) fn finish_request(&mut self) {
        self.state = match self.state {
            State::Open | State::Sent => State::Sent,
            State::AnsweredEarly | State::Done => State::Done,
        };
    }

    pub(super) fn finish_response(&mut self) {
        self.state = match self.state {
            State::Open | State::AnsweredEarly => State::AnsweredEarly,
            State::Sent | State::Done => State::Done,
        };
    }
}

/// Why pending requests are given up ([`Pairing::give_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GiveUp {
    /// The oldest, while the queue holds `max` or more.
    OverCapacity { max: usize },
    /// All of them: the connection closed, or stopped being HTTP.
    All,
}

/// The pairing queue of one connection.
#[derive(Debug)]
pub(super) struct Pairing {
    key: ConnectionKey,
    pending: VecDeque<Pending>,
    next_sequence: u32,
    requests_seen: u64,
}

impl Pairing {
    pub(super) fn new(key: ConnectionKey) -> Self {
        Self {
            key,
            pending: VecDeque::new(),
            next_sequence: 0,
            requests_seen: 0,
        }
    }

    /// Whether any request was read on this connection.
    pub(super) fn requests_seen(&self) -> bool {
        self.requests_seen > 0
    }

    /// Queues a request whose head was read. `body`: a body follows the head.
    pub(super) fn push_request(&mut self, request: Request, body: bool) {
        let Request {
            method,
            path,
            has_query,
            stats,
            headers,
            anomalies,
            wants_upgrade,
        } = request;
        let ex = self.exchange(method, path, has_query, stats, headers, anomalies);
        self.requests_seen += 1;
        self.pending.push_back(Pending {
            ex,
            state: if body { State::Open } else { State::Sent },
            slot: Slot::Request,
            wants_upgrade,
        });
    }

    /// Queues a placeholder for a request lost in a gap.
    pub(super) fn push_lost(&mut self) {
        self.push_unread(Slot::Lost, false);
    }

    /// Queues a placeholder for a request whose head was refused. `body`: a body follows.
    pub(super) fn push_refused(&mut self, body: bool) {
        self.requests_seen += 1;
        self.push_unread(Slot::Refused, body);
    }

    fn push_unread(&mut self, slot: Slot, body: bool) {
        let ex = self.exchange(
            String::new(),
            String::new(),
            false,
            MessageStats::default(),
            RequestHeaders::default(),
            Vec::new(),
        );
        self.pending.push_back(Pending {
            ex,
            state: if body { State::Open } else { State::Sent },
            slot,
            wants_upgrade: false,
        });
    }

    /// The one place an [`Exchange`] is built: the next in sequence on this connection.
    fn exchange(
        &mut self,
        method: String,
        path: String,
        has_query: bool,
        request: MessageStats,
        request_headers: RequestHeaders,
        anomalies: Vec<Anomaly>,
    ) -> Box<Exchange> {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        Box::new(Exchange {
            connection: self.key,
            sequence,
            method,
            path,
            has_query,
            status: None,
            request,
            response: None,
            request_headers,
            response_headers: ResponseHeaders::default(),
            request_fields: RequestBodyFields::default(),
            response_fields: ResponseBodyFields::default(),
            upgraded: false,
            anomalies,
        })
    }

    /// The exchange whose request is being read (always the newest).
    pub(super) fn request_target(&mut self) -> Option<&mut Pending> {
        self.pending.back_mut().filter(|p| !p.request_done())
    }

    /// The exchange whose response is being read: the oldest without one.
    pub(super) fn response_target(&mut self) -> Option<&mut Pending> {
        self.pending.iter_mut().find(|p| !p.response_done())
    }

    /// Whether the newest request asked for an upgrade.
    pub(super) fn last_wants_upgrade(&self) -> bool {
        self.pending.back().is_some_and(|p| p.wants_upgrade)
    }

    /// Hands out, in order, the exchanges at the front whose request and response have ended.
    pub(super) fn emit_ready(&mut self, out: &mut impl Extend<Box<Exchange>>) {
        while self.pending.front().is_some_and(|p| p.state == State::Done) {
            if let Some(p) = self.pending.pop_front()
                && p.slot == Slot::Request
            {
                out.extend([p.ex]);
            }
        }
    }

    /// Gives up pending requests: each leaves the queue as it is, marked
    /// [`Anomaly::MissingResponse`] (and counted) if its response had not ended.
    pub(super) fn give_up(
        &mut self,
        which: GiveUp,
        counters: &mut HttpCounters,
        out: &mut impl Extend<Box<Exchange>>,
    ) {
        loop {
            let more = match which {
                GiveUp::OverCapacity { max } => self.pending.len() >= max.max(1),
                GiveUp::All => !self.pending.is_empty(),
            };
            if !more {
                break;
            }
            let Some(mut p) = self.pending.pop_front() else {
                break;
            };
            if p.slot != Slot::Request {
                continue;
            }
            if !p.response_done() {
                p.ex.anomalies.push(Anomaly::MissingResponse);
                counters.missing_responses += 1;
            }
            out.extend([p.ex]);
        }
    }

    /// A gap swallowed the response being waited for: its request is answered by nothing.
    pub(super) fn response_lost(&mut self, counters: &mut HttpCounters) {
        if let Some(t) = self.response_target()
            && t.ex.response.is_none()
        {
            t.finish_response();
            t.ex.anomalies.push(Anomaly::MissingResponse);
            counters.missing_responses += 1;
        }
    }
}

/// A request head as the pairing queue takes it.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) has_query: bool,
    pub(super) stats: MessageStats,
    pub(super) headers: RequestHeaders,
    pub(super) anomalies: Vec<Anomaly>,
    pub(super) wants_upgrade: bool,
}

/// Stats of a message whose header block just ended; a message without a body is complete.
pub(super) fn head_stats(
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

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

    use super::*;

    fn pairing() -> Pairing {
        let addr = |port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        Pairing::new(ConnectionKey {
            client: addr(40000),
            server: addr(8080),
        })
    }

    fn request(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            has_query: false,
            stats: MessageStats::default(),
            headers: RequestHeaders::default(),
            anomalies: Vec::new(),
            wants_upgrade: false,
        }
    }

    /// The queue as `path:state` from oldest to newest (`?` for a lost request).
    fn picture(p: &Pairing) -> Vec<String> {
        p.pending
            .iter()
            .map(|x| match x.slot {
                Slot::Request => format!("{}:{:?}", x.ex.path, x.state),
                Slot::Lost => format!("?:{:?}", x.state),
                Slot::Refused => format!("!:{:?}", x.state),
            })
            .collect()
    }

    fn paths(out: &[Box<Exchange>]) -> Vec<(&str, u32, Vec<Anomaly>)> {
        out.iter()
            .map(|x| (x.path.as_str(), x.sequence, x.anomalies.clone()))
            .collect()
    }

    #[test]
    fn responses_answer_the_oldest_request() {
        let mut p = pairing();
        p.push_request(request("/a"), false);
        p.push_lost();
        p.push_request(request("/c"), true);
        assert_eq!(picture(&p), ["/a:Sent", "?:Sent", "/c:Open"]);
        for _ in 0..2 {
            p.response_target().unwrap().finish_response();
        }
        assert_eq!(picture(&p), ["/a:Done", "?:Done", "/c:Open"]);
        let mut out = Vec::new();
        p.emit_ready(&mut out);
        assert_eq!(paths(&out), [("/a", 0, vec![])]);
        assert_eq!(picture(&p), ["/c:Open"]);
    }

    #[test]
    fn an_early_answer_waits_for_its_request_to_end() {
        let mut p = pairing();
        p.push_request(request("/upload"), true);
        p.response_target().unwrap().finish_response();
        assert_eq!(picture(&p), ["/upload:AnsweredEarly"]);
        p.request_target().unwrap().finish_request();
        assert_eq!(picture(&p), ["/upload:Done"]);
    }

    #[test]
    fn giving_up_marks_only_unanswered_requests() {
        let mut p = pairing();
        p.push_request(request("/a"), true);
        p.response_target().unwrap().finish_response();
        p.push_lost();
        p.push_request(request("/c"), false);
        let mut counters = HttpCounters::default();
        let mut out = Vec::new();
        p.give_up(GiveUp::OverCapacity { max: 2 }, &mut counters, &mut out);
        assert_eq!(paths(&out), [("/a", 0, vec![])]);
        assert_eq!(picture(&p), ["/c:Sent"]);
        p.give_up(GiveUp::All, &mut counters, &mut out);
        assert_eq!(
            paths(&out),
            [("/a", 0, vec![]), ("/c", 2, vec![Anomaly::MissingResponse])]
        );
        assert_eq!(counters.missing_responses, 1);
    }
}
