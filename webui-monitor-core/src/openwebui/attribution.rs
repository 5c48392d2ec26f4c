//! The [`Attributor`]: [`PipelineEvent`]s in, [`Fact`]s out.
//!
//! For every HTTP exchange it picks the credential Open WebUI acts on, verifies or resolves it,
//! names the route and the client kind, and concludes the request, its auth outcome, chat
//! completions (model, stream, status class, HTTP tokens or their absence, time to first
//! streamed event) and embedding tokens. For the web UI's socket.io connections it takes the
//! socket's identity from `user-join`, joins each answer to its completion request through the
//! message id (`joiner`), and credits the answer's usage once, to the socket's user and the
//! request's model (`source="websocket"`).
//!
//! Sans-IO, like the rest of the core: time is the traffic's own (exchange and socket event
//! timestamps); the database snapshot is handed in by the shell. Every method takes the
//! [`FactSink`] its conclusions go to, and emits them before it returns (see [`fact`](super::fact)
//! for their order). The calls:
//!
//! 1. [`Attributor::new`], then [`Attributor::set_directory`] with the first snapshot (again
//!    whenever the shell has read a new one);
//! 2. [`Attributor::on_event`] for each pipeline event, in pipeline order, interleaved with
//!    [`Attributor::on_tick`] as traffic time passes (idle answers and sockets expire only then
//!    and on the sweeps that events trigger every `sweep_interval_secs`);
//! 3. [`Attributor::finish`] once, after the last event: every pending answer settles.
//!
//! **Client kind.** A chat completion is `webui` iff its JSON body has a non-null `session_id`
//! (the socket.io session its answer will travel on), else `api`. Any other request is `webui`
//! iff it carries a `Sec-Fetch-Site` or `Sec-Fetch-Mode` header, which every current browser
//! sends and page scripts cannot remove (a WebSocket upgrade: an `Origin` header). Both are
//! headers and bodies a script can forge: the verdict says "looks like the web UI", not "is a
//! browser". Browser evidence is concluded per signal ([`Signals`]) so forgeries stand out as
//! mismatches.
use std::sync::Arc;

mod emit;
mod identify;
mod joiner;
mod socket;

use self::{
    emit::{Emit, split},
    identify::{Who, identify, resolve_token},
    joiner::{Deferred, Joiner},
    socket::{Full, Gone, Sockets},
};
use super::{
    apikey::Directory,
    fact::{Fact, FactSink, Limit, Model, Signal, Signals, TokenDirection, TokenSource},
    identity::{OwnedUser, Special, UserRef},
    jwt::{JwtLimits, JwtSecret, JwtVerifier},
    labels::{Auth, AuthResult, Client, MODEL_OTHER, ModelTable, StatusClass, method_label},
    route::{self, ApiKind},
};
use crate::{
    http::Exchange,
    pipeline::PipelineEvent,
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
    websocket::SocketEvent,
};

/// Configuration and caps of the semantics layer. Every cap has a `limit_hits` counter. The
/// user caps (`max_users`, `user_ttl_secs`, `max_user_id_len`), `max_api_key_info` and
/// `export_user_info` are the metrics sink's; the rest are attribution's.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SemanticsConfig {
    /// Most user ids exported as `user` label values (default 1,000); the rest are `other`.
    pub max_users: usize,
    /// Traffic-time seconds a user may stay idle before their series are dropped (default 3,600).
    pub user_ttl_secs: u64,
    /// Longest user id kept as a label (default 128 bytes).
    pub max_user_id_len: usize,
    /// Most distinct model label values (default 200); the rest are `other`.
    pub max_models: usize,
    /// Longest model name kept as a label (default 128 bytes).
    pub max_model_len: usize,
    /// Most WebSocket answers awaiting their request or their second usage event (default 10,000).
    pub max_pending_answers: usize,
    /// Traffic-time seconds an answer is remembered for joining and de-duplication (default 600).
    pub pending_ttl_secs: u64,
    /// Most upgraded connections tracked (default 10,000).
    pub max_sockets: usize,
    /// Most API-key fingerprints exported in `openwebui_api_key_info` (default 1,000).
    pub max_api_key_info: usize,
    /// Export `openwebui_user_info{user,name,email,role}` (personal data; default off).
    pub export_user_info: bool,
    /// How often (traffic-time seconds) idle users and stale answers are swept (default 10).
    pub sweep_interval_secs: u64,
    pub jwt: JwtLimits,
}

impl Default for SemanticsConfig {
    fn default() -> Self {
        Self {
            max_users: 1_000,
            user_ttl_secs: 3_600,
            max_user_id_len: 128,
            max_models: 200,
            max_model_len: 128,
            max_pending_answers: 10_000,
            pending_ttl_secs: 600,
            max_sockets: 10_000,
            max_api_key_info: 1_000,
            export_user_info: false,
            sweep_interval_secs: 10,
            jwt: JwtLimits::default(),
        }
    }
}

/// What attribution cut or noticed (the cuts also arrive as [`Fact::LimitHit`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SemanticsCounters {
    pub exchanges: u64,
    pub socket_events: u64,
    /// Second (and later) usage events of an already credited answer.
    pub duplicate_usage: u64,
    /// Answers credited with model `unknown` (no request joined before expiry).
    pub unjoined_answers: u64,
    /// Answers whose request's `session_id` differs from the socket's sid.
    pub session_mismatches: u64,
    pub pending_answers_dropped: u64,
    pub sockets_dropped: u64,
    /// `user-join` events whose token names no user (forged, expired, malformed): ignored,
    /// as Open WebUI ignores them.
    pub ignored_user_joins: u64,
    /// Model names of requests Open WebUI did not accept (not 2xx, or a failed credential)
    /// that were labelled `other` instead of entering the model table.
    pub untrusted_models: u64,
}

/// Who made a model call, and whether Open WebUI accepted it (2xx, credential not failed).
#[derive(Debug, Clone, Copy)]
struct Caller {
    auth: Auth,
    client: Client,
    accepted: bool,
}

/// The labels of one chat completion, with its model interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CompletionLabels {
    model: u32,
    api: ApiKind,
    auth: Auth,
    client: Client,
    stream: bool,
    status: StatusClass,
}

/// Open WebUI semantics over pipeline events.
#[derive(Debug)]
pub struct Attributor {
    config: SemanticsConfig,
    verifier: JwtVerifier,
    directory: Option<Arc<Directory>>,
    models: ModelTable,
    sockets: Sockets,
    joiner: Joiner,
    last_route: route::LastRoute,
    last_sweep: Timestamp,
    /// Latest traffic time seen (events may arrive slightly out of order across connections).
    clock: Timestamp,
    pub counters: SemanticsCounters,
}

impl Attributor {
    /// `secret`: Open WebUI's JWT secret, if configured (else verdicts are `unverified`).
    pub fn new(config: SemanticsConfig, secret: Option<&JwtSecret>) -> Self {
        Self {
            verifier: JwtVerifier::new(secret, config.jwt.clone()),
            models: ModelTable::new(config.max_models, config.max_model_len),
            sockets: Sockets::new(config.max_sockets),
            joiner: Joiner::new(config.max_pending_answers),
            last_route: route::LastRoute::default(),
            config,
            directory: None,
            last_sweep: Timestamp::default(),
            clock: Timestamp::default(),
            counters: SemanticsCounters::default(),
        }
    }

    pub fn config(&self) -> &SemanticsConfig {
        &self.config
    }

    /// Install a (re)loaded database snapshot; `None` when no database is configured.
    ///
    /// The shell reads it from Open WebUI's database at start, periodically and on SIGHUP; on a
    /// load error it keeps the previous snapshot. Emits [`Fact::Directory`].
    pub fn set_directory(
        &mut self,
        directory: Option<Arc<Directory>>,
        sink: &mut (impl FactSink + ?Sized),
    ) {
        self.directory = directory;
        sink.fact(Fact::Directory(self.directory.as_ref()));
    }

    /// New settings while running: the JWT secret and attribution's caps and timeouts, from
    /// the next event on (`max_models` stays as at start: the model table is sized then). The
    /// sink's settings are the sink's ([`PrometheusSink::reconfigure`]); pending answers,
    /// sockets and counters are kept.
    ///
    /// [`PrometheusSink::reconfigure`]: crate::metrics::PrometheusSink::reconfigure
    pub fn reconfigure(&mut self, config: SemanticsConfig, secret: Option<&JwtSecret>) {
        self.verifier = JwtVerifier::new(secret, config.jwt.clone());
        self.joiner.set_max(config.max_pending_answers);
        self.sockets.set_max(config.max_sockets);
        self.config = config;
    }

    /// Feed one pipeline event.
    pub fn on_event(&mut self, event: &PipelineEvent, sink: &mut (impl FactSink + ?Sized)) {
        match event {
            PipelineEvent::Exchange(ex) => self.on_exchange(ex, sink),
            PipelineEvent::Socket { connection, event } => self.on_socket(*connection, event, sink),
        }
    }

    /// Models in the model table.
    #[cfg(test)]
    pub(crate) fn model_count(&self) -> usize {
        self.models.len()
    }

    /// Sizes of the bounded maps: (sockets, sessions, answers).
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        let (sockets, sessions) = self.sockets.sizes();
        (sockets, sessions, self.joiner.len())
    }

    /// Attribute one HTTP exchange.
    pub fn on_exchange(&mut self, ex: &Exchange, sink: &mut (impl FactSink + ?Sized)) {
        self.counters.exchanges += 1;
        let now = ex
            .response
            .as_ref()
            .map_or(ex.request.last_byte, |r| r.last_byte)
            .max(ex.request.first_byte);
        self.maybe_sweep(now, sink);

        // The snapshot outlives the exchange's facts even if the sink installs a new one.
        let dir = self.directory.clone();
        let (carrier, id) = identify(&mut self.verifier, ex, dir.as_deref());
        let method = method_label(&ex.method);
        let (route, api) = self.last_route.of(method, &ex.path);
        let completion = api.generates();
        let h = &ex.request_headers;
        // Browsers send `Sec-Fetch-*` on every request but the WebSocket upgrade (Chromium
        // 156 in browser.pcap), which always carries `Origin` instead.
        let browser = h.sec_fetch_site().is_some()
            || h.sec_fetch_mode().is_some()
            || (h.upgrade().is_some() && h.origin().is_some());
        let client = match completion {
            true if matches!(ex.request_fields.session_id, Some(Some(_))) => Client::Webui,
            false if browser => Client::Webui,
            _ => Client::Api,
        };
        let signals = Signals::default()
            .with(
                Signal::SecFetch,
                h.sec_fetch_site().is_some()
                    || h.sec_fetch_mode().is_some()
                    || h.sec_fetch_dest().is_some(),
            )
            .with(Signal::Origin, h.origin().is_some())
            .with(
                Signal::BrowserUserAgent,
                h.user_agent().is_some_and(|ua| ua.starts_with("Mozilla/")),
            )
            .with(
                Signal::CookieWithAuthorization,
                carrier.cookie_with_authorization(),
            );
        let resp = ex.response.as_ref();
        let user = id.who.as_ref();
        sink.fact(Fact::Request {
            user,
            auth: id.auth,
            result: id.result,
            client,
            signals,
            method,
            route,
            api,
            status: ex.status,
            duration: exchange_duration(ex),
            request_bytes: ex.request.header_bytes + ex.request.body_wire_bytes,
            response_bytes: resp.map_or(0, |r| r.header_bytes + r.body_wire_bytes),
            connection: ex.connection,
            user_agent: h.user_agent(),
            forwarded_for: h.forwarded_for(),
            real_ip: h.real_ip(),
            at: now,
        });
        // A key enters `openwebui_api_key_info` only once its owner is known (the database has
        // it) or Open WebUI accepted it: junk `sk-` keys cannot fill the exported slots.
        let accepted = matches!(ex.status, Some(200..=299)) && !id.result.failed();
        if let Some(fingerprint) = id.api_key
            && (id.result == AuthResult::Verified || accepted)
        {
            sink.fact(Fact::ApiKeySeen { fingerprint, user });
        }

        if completion {
            let caller = Caller {
                auth: id.auth,
                client,
                accepted,
            };
            self.on_completion(ex, route, api, user, caller, sink);
        } else if api == ApiKind::Embeddings {
            self.on_embedding(ex, user, accepted, sink);
        }
        if ex.upgraded {
            self.open_socket(ex.connection, user.into(), now, sink);
        }
    }

    /// The id of `model`. A name not in the table yet enters it only from a request Open
    /// WebUI `accepted` (2xx, credential not failed), which proves the model exists; any other
    /// new name is `other`, so requests Open WebUI refused cannot fill the table.
    fn intern_model(
        &mut self,
        model: Option<&str>,
        accepted: bool,
        sink: &mut (impl FactSink + ?Sized),
    ) -> u32 {
        if !accepted {
            return match self.models.known(model, self.clock) {
                Some(id) => id,
                None => {
                    self.counters.untrusted_models += 1;
                    sink.fact(Fact::LimitHit(Limit::UntrustedModel));
                    MODEL_OTHER
                }
            };
        }
        let folded = self.models.folded;
        let model = self.models.id(model, self.clock);
        if self.models.folded != folded {
            sink.fact(Fact::LimitHit(Limit::MaxModels));
        }
        model
    }

    fn on_completion(
        &mut self,
        ex: &Exchange,
        route: &str,
        api: ApiKind,
        user: UserRef<'_>,
        Caller {
            auth,
            client,
            accepted,
        }: Caller,
        sink: &mut (impl FactSink + ?Sized),
    ) {
        let model = self.intern_model(ex.request_fields.model.as_deref(), accepted, sink);
        let labels = CompletionLabels {
            model,
            api,
            auth,
            client,
            stream: ex
                .request_fields
                .stream
                .unwrap_or_else(|| route::streams_by_default(route)),
            status: StatusClass::of(ex.status),
        };
        let ok = matches!(ex.status, Some(200..=299));
        let message_id = ex.request_fields.id.as_deref();
        let session = match &ex.request_fields.session_id {
            Some(Some(s)) => Some(s.as_str()),
            _ => None,
        };
        // A web-UI task whose answer will travel on a socket we decode: count it when the
        // answer is done (or settles as incomplete), so its status is the answer's.
        let deferred = client == Client::Webui
            && ok
            && message_id.is_some()
            && session.is_some_and(|s| self.sockets.decodes(s));
        let (joiner, _, mut emit) = split!(self, sink);
        if !deferred {
            emit.completion(user, labels);
        }
        match (ok, ex.response_fields.usage) {
            (true, Some(usage)) => emit.tokens(user, model, api, TokenSource::Http, usage),
            (true, None) if answered_whole(ex) => {
                let model = emit.model(model);
                emit.sink.fact(Fact::CompletionWithoutUsage {
                    user,
                    model,
                    source: TokenSource::Http,
                });
            }
            _ => {}
        }
        if let Some(first) = ex.response_fields.stream().and_then(|s| s.first_event) {
            let model = emit.model(model);
            let seconds = first.seconds_since(ex.request.last_byte);
            emit.sink.fact(Fact::FirstToken { model, seconds });
        }
        if let (Client::Webui, true, Some(message_id)) = (client, ok, message_id) {
            let deferred = deferred.then(|| Deferred {
                user: user.into(),
                labels,
            });
            let end = ex.request.last_byte;
            joiner.request(message_id, model, end, session, deferred, &mut |s| {
                emit.step(s)
            });
        }
        // A web-UI answer with a session goes to its socket: this exchange only acknowledges.
        let on_socket = client == Client::Webui && session.is_some();
        let model = emit.model(model);
        emit.sink.fact(Fact::ModelCall {
            user,
            model,
            api,
            status: ex.status,
            duration: exchange_duration(ex).filter(|_| !on_socket),
            usage: ex.response_fields.usage.filter(|_| ok),
        });
    }

    /// An embedding request: its input tokens, under the model it names (embeddings produce
    /// no output tokens, so no output fact is emitted for them).
    fn on_embedding(
        &mut self,
        ex: &Exchange,
        user: UserRef<'_>,
        accepted: bool,
        sink: &mut (impl FactSink + ?Sized),
    ) {
        let id = self.intern_model(ex.request_fields.model.as_deref(), accepted, sink);
        let model = Model {
            id,
            name: self.models.name(id),
        };
        let usage = match (ex.status, ex.response_fields.usage) {
            (Some(200..=299), Some(usage)) => Some(Usage::io(usage.input, 0)),
            _ => None,
        };
        let api = ApiKind::Embeddings;
        if let Some(usage) = usage {
            let source = TokenSource::Http;
            sink.fact(Fact::Tokens {
                user,
                model,
                direction: TokenDirection::Input,
                source,
                count: usage.input,
            });
            sink.fact(Fact::Usage {
                user,
                model,
                api,
                source,
                usage,
            });
        }
        sink.fact(Fact::ModelCall {
            user,
            model,
            api,
            status: ex.status,
            duration: exchange_duration(ex),
            usage,
        });
    }

    /// A socket opens on `connection` (an upgrade, or the first event of a socket whose upgrade
    /// was not seen). A reused connection key ends the old socket.
    fn open_socket(
        &mut self,
        connection: ConnectionKey,
        user: OwnedUser,
        now: Timestamp,
        sink: &mut (impl FactSink + ?Sized),
    ) {
        let (joiner, sockets, mut emit) = split!(self, sink);
        match sockets.open(connection, user, now) {
            Ok(None) => {}
            Ok(Some(gone)) => settle(joiner, gone, &mut emit),
            Err(Full) => {
                emit.counters.sockets_dropped += 1;
                emit.limit_hit(Limit::MaxSockets);
            }
        }
    }

    /// Feed one WebSocket event of an upgraded connection.
    pub fn on_socket(
        &mut self,
        connection: ConnectionKey,
        event: &SocketEvent,
        sink: &mut (impl FactSink + ?Sized),
    ) {
        self.counters.socket_events += 1;
        let ts = match event {
            SocketEvent::Connected { ts, .. }
            | SocketEvent::UserJoin { ts, .. }
            | SocketEvent::FirstDelta { ts, .. }
            | SocketEvent::Usage { ts, .. }
            | SocketEvent::Done { ts, .. }
            | SocketEvent::Undecodable { ts }
            | SocketEvent::Closed { ts } => *ts,
        };
        self.maybe_sweep(ts, sink);
        if !self.sockets.contains(connection) {
            // Upgrade not seen (capture started later): the socket has no identity until
            // its `user-join`.
            self.open_socket(connection, OwnedUser::Special(Special::Anonymous), ts, sink);
        }
        let (joiner, sockets, mut emit) = split!(self, sink);
        let out = &mut |s| emit.step(s);
        let Some(socket) = sockets.get_mut(connection) else {
            return;
        };
        socket.last_event = ts;
        match event {
            SocketEvent::Connected { sid, .. } => sockets.connected(connection, sid),
            SocketEvent::UserJoin { token, ts } => {
                // Open WebUI's `user-join` handler ignores a token that does not decode to a
                // user: the socket keeps whoever it was, and so do its answers.
                match resolve_token(&mut self.verifier, token.expose(), *ts, false) {
                    (who @ Who::Claimed(_), _) => socket.user = who.as_ref().into(),
                    _ => emit.counters.ignored_user_joins += 1,
                }
            }
            SocketEvent::Undecodable { .. } => {
                socket.undecodable = true;
                // Nothing more will come: its pending completions keep their HTTP status.
                if let Some(sid) = &socket.sid {
                    joiner.settle_session(sid, true, out);
                }
            }
            SocketEvent::Closed { .. } => {
                if let Some(gone) = sockets.close(connection) {
                    settle(joiner, gone, &mut emit);
                }
            }
            SocketEvent::FirstDelta { message_id, ts, .. } => {
                joiner.first_delta(message_id, *ts, out)
            }
            SocketEvent::Usage {
                message_id,
                usage,
                ts,
                done,
                ..
            } => joiner.usage(
                message_id,
                *usage,
                &socket.user,
                socket.sid.as_deref(),
                *done,
                *ts,
                out,
            ),
            SocketEvent::Done { message_id, ts, .. } => {
                joiner.done(message_id, &socket.user, *ts, out)
            }
        }
    }

    /// Advance traffic time (the shell calls this periodically): stale answers settle, idle
    /// sockets are forgotten, and sinks get [`Fact::Tick`].
    pub fn on_tick(&mut self, now: Timestamp, sink: &mut (impl FactSink + ?Sized)) {
        self.sweep(now, false, sink);
    }

    /// End of input: settle every pending answer (usage without a request gets model `unknown`).
    pub fn finish(&mut self, now: Timestamp, sink: &mut (impl FactSink + ?Sized)) {
        self.sweep(now, true, sink);
    }

    fn maybe_sweep(&mut self, now: Timestamp, sink: &mut (impl FactSink + ?Sized)) {
        self.clock = self.clock.max(now);
        if now.seconds_since(self.last_sweep) >= self.config.sweep_interval_secs as f64 {
            self.sweep(now, false, sink);
        }
    }

    fn sweep(&mut self, now: Timestamp, all: bool, sink: &mut (impl FactSink + ?Sized)) {
        self.clock = self.clock.max(now);
        self.last_sweep = now;
        let answer_ttl = self.config.pending_ttl_secs.saturating_mul(1_000_000_000);
        let socket_ttl = self.config.user_ttl_secs.saturating_mul(1_000_000_000);
        let (joiner, sockets, mut emit) = split!(self, sink);
        joiner.expire(now, answer_ttl, all, &mut |s| emit.step(s));
        sockets.expire(now, socket_ttl);
        // Answers waiting for their join hold model indexes: a model stays at least as long.
        let model_ttl = self.config.user_ttl_secs.max(self.config.pending_ttl_secs);
        self.models.retire_idle(now, model_ttl, |id, name| {
            sink.fact(Fact::ModelRetired {
                model: Model { id, name },
            })
        });
        sink.fact(Fact::Tick { now });
    }
}

/// A socket is gone: settle its answers' deferred completions (as done if it stopped decoding,
/// since nothing more would have come; else as incomplete).
/// The request's first byte to the response's last, in seconds (no response: `None`).
fn exchange_duration(ex: &Exchange) -> Option<f64> {
    let r = ex.response.as_ref()?;
    Some(r.last_byte.seconds_since(ex.request.first_byte))
}

fn settle<S: FactSink + ?Sized>(joiner: &mut Joiner, gone: Gone, emit: &mut Emit<'_, S>) {
    if let Some(sid) = &gone.sid {
        joiner.settle_session(sid, gone.undecodable, &mut |s| emit.step(s));
    }
}

/// An answer whose missing token counts are the backend's doing: it arrived whole, as framed
/// and parsed (JSON, or an event stream) with nothing cut by the monitor, and is an answer —
/// not the web UI's task receipt (its counts come on the socket) nor an Ollama model load. A
/// stream the client broke off, a capped body or an undecodable one says nothing about usage.
fn answered_whole(ex: &Exchange) -> bool {
    let fields = &ex.response_fields;
    ex.response.as_ref().is_some_and(|r| r.complete)
        && ex.anomalies.is_empty()
        && (fields.json || fields.stream().is_some())
        && !fields.has_task_ids
        && !fields.model_load
}
