//! The audit trail of scripted session-credential use: one [`AuditEvent`] per model call that
//! Open WebUI served to a session JWT or its cookie from a client that does not behave like the
//! web UI — the browser token copied into a script.
//!
//! [`AuditSink`] is a [`FactSink`]. It keeps the [`Fact::Request`] of an exchange whose
//! credential is a session ([`Auth::Jwt`], [`Auth::Cookie`]) and whose client is
//! [`Client::Api`], and turns it into an event when the [`Fact::ModelCall`] that ends the same
//! exchange arrives (the fact order of `openwebui::fact`). Events wait in a bounded queue until
//! the shell drains it ([`AuditSink::drain`]) and writes them; the core does no I/O. A full
//! queue drops the newest event and counts it.
//!
//! # What an event holds, and what it never holds
//!
//! Traffic time, user id, credential kind and its verification result, route template, API
//! kind, model, HTTP status, the answer's token counts, the user agent (cut to a configured
//! length), the client address and where it came from. Never a token, key, cookie, prompt or
//! body byte: the facts carry none, and the event is built from facts only.
//!
//! # The client address
//!
//! The TCP peer is the reverse proxy, so the address of the script's machine is in the proxy's
//! headers — which any client can also send. They are believed only when the peer is one of
//! the configured trusted proxies ([`AuditConfig::trusted_proxies`]):
//!
//! * peer trusted, `X-Forwarded-For` present: its entries are walked from the right (the entry
//!   the trusted peer appended last), skipping trusted proxies; the first untrusted entry is the
//!   client. Entries left of it were written by the client itself and may be spoofed. Every
//!   entry trusted: the leftmost. An entry that is not an address stops the walk: the hop that
//!   wrote it (the last trusted one) is the client.
//! * peer trusted, no `X-Forwarded-For`: `X-Real-IP` if it is an address;
//! * otherwise the peer itself, and the headers are ignored.
//!
//! The Prometheus view of the same events (latest per user) is
//! [`crate::metrics::audit::AuditMetrics`].
use std::{collections::VecDeque, net::IpAddr};

use ipnet::IpNet;
use prometheus::Registry;
use serde::Serialize;

use crate::{
    metrics::audit::{AuditMetrics, AuditView, Observed},
    openwebui::{
        ApiKind, Auth, AuthResult, Client, SemanticsConfig, UserRef,
        fact::{Fact, FactSink},
    },
    segment::Timestamp,
    usage::Usage,
};

/// Settings of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Record events (and the Prometheus view). Off: the sink ignores every fact.
    pub enabled: bool,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed (the reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// Most events waiting for the shell to drain them; further ones are dropped and counted.
    pub max_queue: usize,
    /// Longest user agent kept in an event, in bytes (cut at a character boundary).
    pub max_user_agent_len: usize,
    /// Most users with a series in the Prometheus view; later users are counted, not shown.
    pub max_users: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            max_queue: 10_000,
            max_user_agent_len: 256,
            max_users: 1_000,
        }
    }
}

/// Where an event's client address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    /// The TCP peer (not a trusted proxy, or it sent no usable header).
    Peer,
    /// `X-Forwarded-For`, sent by a trusted peer.
    XForwardedFor,
    /// `X-Real-IP`, sent by a trusted peer.
    XRealIp,
}

/// Token counts of the call's answer (the totals include their parts, as in `usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuditTokens {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub reasoning: u64,
}

impl From<Usage> for AuditTokens {
    fn from(u: Usage) -> Self {
        Self {
            input: u.input,
            output: u.output,
            cached_input: u.cached_input,
            reasoning: u.reasoning,
        }
    }
}

/// One model call served to a session credential from a script. Serialized as one JSON object
/// (the shell writes one per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Traffic time of the exchange's last byte, RFC 3339 in UTC.
    pub time: String,
    /// Open WebUI's user id (or `invalid` for a token that failed verification).
    pub user: String,
    /// `jwt` (Authorization) or `cookie` (the `token` cookie alone).
    pub auth: &'static str,
    /// What verifying the token concluded (`verified`, `unverified`, `expired`, …).
    pub auth_result: &'static str,
    /// Route template, e.g. `/api/v1/messages`.
    pub route: &'static str,
    /// API kind: `chat`, `messages`, `responses`, `ollama`, `embeddings`.
    pub api: &'static str,
    pub model: String,
    /// HTTP status (`None`: no response).
    pub status: Option<u16>,
    /// The answer's usage (`None`: it reported none).
    pub tokens: Option<AuditTokens>,
    pub user_agent: Option<String>,
    /// The script's address by the rules in the module documentation.
    pub client_address: IpAddr,
    pub client_address_source: AddressSource,
    /// Whether `client_address` was read from a proxy header.
    pub client_address_from_header: bool,
    /// The TCP peer (the reverse proxy when there is one).
    pub peer: IpAddr,
}

/// What the sink cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditCounters {
    /// Events recorded (queued or dropped).
    pub events: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
}

/// The kept part of a qualifying [`Fact::Request`], waiting for its [`Fact::ModelCall`].
/// Its strings are reused from one request to the next.
#[derive(Debug, Default)]
struct Pending {
    armed: bool,
    user: String,
    user_cut: bool,
    auth: &'static str,
    auth_result: &'static str,
    route: &'static str,
    user_agent: Option<String>,
    client_address: Option<(IpAddr, AddressSource)>,
    peer: Option<IpAddr>,
    at: Timestamp,
}

/// Turns facts into [`AuditEvent`]s (module documentation).
#[derive(Debug)]
pub struct AuditSink {
    config: AuditConfig,
    max_user_id_len: usize,
    pending: Pending,
    queue: VecDeque<AuditEvent>,
    /// Events since the last drain that fit under `max_queue`: the queue's length when events
    /// are kept, their count when they are not ([`AuditSink::keep_events`]).
    queued: usize,
    /// Build and queue each event; off, only the Prometheus view and the counters are kept.
    keep_events: bool,
    view: AuditView,
    pub counters: AuditCounters,
}

impl AuditSink {
    /// Registers the audit families in `registry`. User ids longer than `max_user_id_len` and
    /// the idle TTL come from the semantics settings, as for every other user series.
    pub fn new(
        config: &AuditConfig,
        semantics: &SemanticsConfig,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let metrics = AuditMetrics::register(registry)?;
        Ok(Self {
            config: config.clone(),
            max_user_id_len: semantics.max_user_id_len,
            pending: Pending::default(),
            queue: VecDeque::new(),
            queued: 0,
            keep_events: true,
            view: AuditView::new(metrics, config.max_users, semantics.user_ttl_secs),
            counters: AuditCounters::default(),
        })
    }

    /// New settings while running; queued events and series are kept.
    pub fn reconfigure(&mut self, config: &AuditConfig, semantics: &SemanticsConfig) {
        self.config = config.clone();
        self.max_user_id_len = semantics.max_user_id_len;
        self.view
            .set_limits(config.max_users, semantics.user_ttl_secs);
        self.queue.truncate(config.max_queue);
        self.queued = self.queued.min(config.max_queue);
    }

    /// Whether events are built and queued for the shell (the default). A shell that writes
    /// them nowhere turns this off: each event is then only counted (queued or dropped, as if
    /// it were queued) and shown in the Prometheus view, without building its strings.
    pub fn keep_events(&mut self, keep: bool) {
        self.keep_events = keep;
        if !keep {
            self.queue.clear();
        }
    }

    /// Takes every queued event, oldest first (none when events are not kept).
    pub fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, AuditEvent> {
        self.queued = 0;
        self.queue.drain(..)
    }

    /// Events waiting to be drained (counted only, when events are not kept).
    pub fn queued(&self) -> usize {
        self.queued
    }

    fn on_request(&mut self, fact: &Fact<'_>) {
        let Fact::Request {
            user,
            auth,
            result,
            client,
            route,
            api,
            connection,
            user_agent,
            forwarded_for,
            real_ip,
            at,
            ..
        } = *fact
        else {
            return;
        };
        let p = &mut self.pending;
        // Only a metered call's exchange ends in the `ModelCall` that makes the event.
        p.armed =
            matches!(auth, Auth::Jwt | Auth::Cookie) && client == Client::Api && api.metered();
        if !p.armed {
            return;
        }
        p.user.clear();
        p.user_cut = push_capped(
            &mut p.user,
            match user {
                UserRef::Id(id) => id,
                UserRef::Special(s) => s.as_str(),
            },
            self.max_user_id_len,
        );
        p.auth = auth.as_str();
        p.auth_result = AuthResult::as_str(result);
        p.route = route;
        p.user_agent = user_agent.map(|ua| {
            let mut s = p.user_agent.take().unwrap_or_default();
            s.clear();
            push_capped(&mut s, ua, self.config.max_user_agent_len);
            s
        });
        let peer = connection.client.ip().to_canonical();
        p.peer = Some(peer);
        p.client_address = Some(client_address(
            peer,
            forwarded_for,
            real_ip,
            &self.config.trusted_proxies,
        ));
        p.at = at;
    }

    fn on_model_call(
        &mut self,
        user: UserRef<'_>,
        model: &str,
        api: ApiKind,
        status: Option<u16>,
        usage: Option<Usage>,
    ) {
        let p = &mut self.pending;
        if !std::mem::take(&mut p.armed) {
            return;
        }
        // The fact order makes this the kept request's exchange; a call of another user would
        // mean it is not, and an event must never carry one user's call under another's name.
        let id = match user {
            UserRef::Id(id) => id,
            UserRef::Special(s) => s.as_str(),
        };
        if !id.starts_with(p.user.as_str()) || (!p.user_cut && id.len() != p.user.len()) {
            return;
        }
        let (Some((address, source)), Some(peer)) = (p.client_address, p.peer) else {
            return;
        };
        let api = api.as_str();
        self.view.observe(Observed {
            user: &p.user,
            user_cut: p.user_cut,
            auth: p.auth,
            api,
            model,
            client_address: address,
            at: p.at,
        });
        self.counters.events += 1;
        if self.queued >= self.config.max_queue {
            self.counters.dropped += 1;
            self.view.queue_dropped();
            return;
        }
        self.queued += 1;
        // The event's strings are built only when it is kept.
        if self.keep_events {
            self.queue.push_back(AuditEvent {
                time: rfc3339(p.at),
                user: p.user.clone(),
                auth: p.auth,
                auth_result: p.auth_result,
                route: p.route,
                api,
                model: model.to_owned(),
                status,
                tokens: usage.map(AuditTokens::from),
                user_agent: p.user_agent.clone(),
                client_address: address,
                client_address_source: source,
                client_address_from_header: source != AddressSource::Peer,
                peer,
            });
        }
    }
}

impl FactSink for AuditSink {
    fn fact(&mut self, fact: Fact<'_>) {
        if !self.config.enabled {
            return;
        }
        match fact {
            Fact::Request { .. } => self.on_request(&fact),
            Fact::ModelCall {
                user,
                model,
                api,
                status,
                usage,
                ..
            } => self.on_model_call(user, model.name, api, status, usage),
            Fact::Tick { now } => self.view.expire(now),
            _ => {}
        }
    }
}

/// The client's address and where it came from, by the rules of the module documentation.
pub fn client_address(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    real_ip: Option<&str>,
    trusted: &[IpNet],
) -> (IpAddr, AddressSource) {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return (peer, AddressSource::Peer);
    }
    if let Some(xff) = forwarded_for.filter(|v| !v.trim().is_empty()) {
        let mut last_trusted = (peer, AddressSource::Peer);
        for entry in xff.rsplit(',') {
            let Some(ip) = parse_address(entry) else {
                return last_trusted;
            };
            if !is_trusted(&ip) {
                return (ip, AddressSource::XForwardedFor);
            }
            last_trusted = (ip, AddressSource::XForwardedFor);
        }
        return last_trusted;
    }
    match real_ip.and_then(parse_address) {
        Some(ip) => (ip, AddressSource::XRealIp),
        None => (peer, AddressSource::Peer),
    }
}

/// One proxy-header entry as an address: `192.0.2.1`, `2001:db8::1`, with a port
/// (`192.0.2.1:5000`, `[2001:db8::1]:5000`), surrounding spaces allowed; IPv4-mapped IPv6
/// addresses as IPv4.
fn parse_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// Appends at most `max` bytes of `text` to `out`, cut at a character boundary; whether it
/// was cut.
fn push_capped(out: &mut String, text: &str, max: usize) -> bool {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
    end < text.len()
}

/// `at` as RFC 3339 in UTC, e.g. `2026-12-07T14:03:45.123Z` (fraction only when not zero).
pub fn rfc3339(at: Timestamp) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(at.as_nanos())) {
        Ok(ts) => ts.to_string(),
        // Beyond jiff's range (year 9999): unreachable from a u64 of nanoseconds (year 2554).
        Err(_) => at.as_secs().to_string(),
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
