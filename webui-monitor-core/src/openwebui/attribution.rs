//! The [`Attributor`]: [`PipelineEvent`]s in, `openwebui_*` metrics out.
//!
//! For every HTTP exchange it picks the credential Open WebUI acts on, verifies or resolves it,
//! names the route and the client kind, and counts requests, bytes, auth outcomes, chat
//! completions (model, stream, status class, HTTP tokens or their absence, time to first
//! streamed event) and embedding tokens. For the web UI's socket.io connections it takes the
//! socket's identity from `user-join`, joins each answer to its completion request through the
//! message id, and credits the answer's usage once, to the socket's user and the request's
//! model (`source="websocket"`).
//!
//! Sans-IO: time is the traffic's own (exchange and socket event timestamps); the database
//! snapshot is handed in by the shell ([`Attributor::set_directory`]).
//!
//! **Client kind.** A chat completion is `webui` iff its JSON body has a non-null `session_id`
//! (the socket.io session its answer will travel on), else `api`. Any other request is `webui`
//! iff it carries a `Sec-Fetch-Site` or `Sec-Fetch-Mode` header, which every current browser
//! sends and page scripts cannot remove (a WebSocket upgrade: an `Origin` header). Both are
//! headers and bodies a script can forge: the verdict says "looks like the web UI", not "is a
//! browser". Browser evidence is counted per signal in `openwebui_client_signals_total` so
//! forgeries stand out as mismatches.
use std::sync::Arc;

use prometheus::{Histogram, IntCounter};

mod socket;

use self::socket::{Answer, SocketState};
pub use super::labels::{Auth, AuthResult, Client};
use super::labels::{
    MODEL_UNKNOWN, ModelTable, STATUS_INCOMPLETE, method_label, status_class, status_label,
};
use super::{
    OpenWebuiMetrics,
    apikey::{Directory, Fingerprint, KeyLookup, key_hash},
    credential::{self, CredentialSource, CredentialType},
    fast_map::FastMap,
    jwt::{InlineStr, JwtLimits, JwtSecret, JwtVerifier, MAX_ID_LEN, Verdict},
    route,
    users::{CompletionKey, OwnedUser, Special, TokenKey, UserLimits, UserRef, UserTable},
};
use crate::{
    http::Exchange,
    pipeline::PipelineEvent,
    segment::{ConnectionKey, Timestamp},
};

/// Configuration and caps of the semantics layer. Every cap has a `limit_hits` counter.
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

/// What the semantics layer cut or noticed; mirrored in `webui_monitor_openwebui_limit_hits_total`.
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
    pub api_key_info_dropped: u64,
}

/// Per-request label handles, keyed by (method, route, status).
type HttpSeries = FastMap<(&'static str, &'static str, u16), (IntCounter, Histogram)>;

/// Open WebUI semantics over pipeline events.
#[derive(Debug)]
pub struct Attributor {
    config: SemanticsConfig,
    metrics: OpenWebuiMetrics,
    verifier: JwtVerifier,
    directory: Option<Arc<Directory>>,
    users: UserTable,
    models: ModelTable,
    http: HttpSeries,
    auth_results: FastMap<&'static str, IntCounter>,
    /// `openwebui_client_signals_total` children, `[client][signal]`, created on first use.
    signal_counters: [[Option<IntCounter>; 4]; 2],
    sockets: FastMap<ConnectionKey, SocketState>,
    /// Socket.IO sid → socket (one per tracked socket, so bounded by `max_sockets`).
    sessions: FastMap<Box<str>, ConnectionKey>,
    answers: FastMap<Box<str>, Answer>,
    /// Fingerprint → the user label exported with it.
    api_keys_exported: FastMap<Fingerprint, Box<str>>,
    last_sweep: Timestamp,
    /// Latest traffic time seen (events may arrive slightly out of order across connections).
    clock: Timestamp,
    pub counters: SemanticsCounters,
}

impl Attributor {
    /// `secret`: Open WebUI's JWT secret, if configured (else verdicts are `unverified`).
    pub fn new(
        config: SemanticsConfig,
        metrics: OpenWebuiMetrics,
        secret: Option<&JwtSecret>,
    ) -> Self {
        let users = UserTable::new(UserLimits {
            max_users: config.max_users,
            ttl_secs: config.user_ttl_secs,
            max_id_len: config.max_user_id_len,
        });
        Self {
            verifier: JwtVerifier::new(secret, config.jwt.clone()),
            models: ModelTable::new(config.max_models, config.max_model_len),
            config,
            metrics,
            directory: None,
            users,
            http: FastMap::default(),
            auth_results: FastMap::default(),
            signal_counters: Default::default(),
            sockets: FastMap::default(),
            sessions: FastMap::default(),
            answers: FastMap::default(),
            api_keys_exported: FastMap::default(),
            last_sweep: Timestamp::default(),
            clock: Timestamp::default(),
            counters: SemanticsCounters::default(),
        }
    }

    /// Install a (re)loaded database snapshot; `None` when no database is configured.
    ///
    /// The shell reads it from Open WebUI's database at start, periodically and on SIGHUP; on a
    /// load error it keeps the previous snapshot. With `export_user_info`, the account details
    /// of tracked users are refreshed from the new snapshot.
    pub fn set_directory(&mut self, directory: Option<Arc<Directory>>) {
        self.directory = directory;
        if self.config.export_user_info {
            let dir = self.directory.as_deref();
            self.users
                .refresh_info(&self.metrics, |id| dir.and_then(|d| d.user(id)).cloned());
        }
    }

    /// New settings while running: the JWT secret, the user table's caps, and whether account
    /// details are exported (turned off, every `openwebui_user_info` series goes; turned on,
    /// they come from the current directory snapshot). Tracked users and counters are kept.
    pub fn reconfigure(&mut self, config: SemanticsConfig, secret: Option<&JwtSecret>) {
        self.verifier = JwtVerifier::new(secret, config.jwt.clone());
        self.users.set_limits(UserLimits {
            max_users: config.max_users,
            ttl_secs: config.user_ttl_secs,
            max_id_len: config.max_user_id_len,
        });
        let export_changed = self.config.export_user_info != config.export_user_info;
        self.config = config;
        if export_changed {
            let dir = self
                .directory
                .as_deref()
                .filter(|_| self.config.export_user_info);
            self.users
                .refresh_info(&self.metrics, |id| dir.and_then(|d| d.user(id)).cloned());
        }
    }

    pub fn metrics(&self) -> &OpenWebuiMetrics {
        &self.metrics
    }

    /// Feed one pipeline event.
    pub fn on_event(&mut self, event: &PipelineEvent) {
        match event {
            PipelineEvent::Exchange(ex) => self.on_exchange(ex),
            PipelineEvent::Socket { connection, event } => self.on_socket(*connection, event),
        }
    }

    /// Sizes of the bounded maps: (users, sockets, sessions, answers).
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.users.len(),
            self.sockets.len(),
            self.sessions.len(),
            self.answers.len(),
        )
    }

    fn limit_hit(&self, limit: &str) {
        self.metrics.limit_hits.with_label_values(&[limit]).inc();
    }
}

/// Who a request is from, before it is mapped to a label value.
#[derive(Debug, Clone, Copy)]
enum Who<'d> {
    /// An API key's owner, borrowed from the directory snapshot.
    Directory(&'d str),
    /// A JWT's `id` claim (verified, or unverified without a secret).
    Claimed(InlineStr<MAX_ID_LEN>),
    Special(Special),
}

impl<'d> Who<'d> {
    fn as_ref(&self) -> UserRef<'_> {
        match self {
            Who::Directory(id) => UserRef::Id(id),
            Who::Claimed(id) => UserRef::Id(id.as_str()),
            Who::Special(s) => UserRef::Special(*s),
        }
    }
}

/// The identity of one request.
#[derive(Debug, Clone, Copy)]
struct Identity<'d> {
    who: Who<'d>,
    auth: Auth,
    result: AuthResult,
    api_key: Option<Fingerprint>,
}

/// Resolve a token (request credential or `user-join`) to a user, as Open WebUI would.
fn resolve_token<'d>(
    verifier: &mut JwtVerifier,
    token: &[u8],
    now: Timestamp,
    rejected: bool,
) -> (Who<'d>, AuthResult) {
    let checked = verifier.check(token, now);
    match (checked.verdict, checked.claims.and_then(|c| c.id)) {
        (Verdict::Verified, Some(id)) => (Who::Claimed(id), AuthResult::Verified),
        // Verified but without a usable id: Open WebUI answers 401 ("invalid token").
        (Verdict::Verified, None) => (Who::Special(Special::Invalid), AuthResult::Verified),
        (Verdict::Unverified, _) if rejected => {
            (Who::Special(Special::Invalid), AuthResult::Rejected)
        }
        (Verdict::Unverified, Some(id)) => (Who::Claimed(id), AuthResult::Unverified),
        (Verdict::Unverified, None) => (Who::Special(Special::Invalid), AuthResult::Unverified),
        (v, _) => (Who::Special(Special::Invalid), AuthResult::from(v)),
    }
}

fn identify<'d>(
    verifier: &mut JwtVerifier,
    ex: &Exchange,
    dir: Option<&'d Directory>,
) -> (credential::AuthCarrier, Identity<'d>) {
    let creds = credential::extract(&ex.request_headers);
    let rejected = ex.status == Some(401);
    let identity = match creds.effective {
        None => Identity {
            who: Who::Special(Special::Anonymous),
            auth: Auth::None,
            result: AuthResult::Anonymous,
            api_key: None,
        },
        Some(c) if c.kind == CredentialType::ApiKey => {
            let hash = key_hash(c.expose());
            let (who, result) = match dir.map(|d| d.lookup_hash(&hash)) {
                Some(KeyLookup::Known(uid)) => (Who::Directory(uid), AuthResult::Verified),
                Some(KeyLookup::Unknown) => (
                    Who::Special(Special::UnknownApiKey),
                    AuthResult::UnknownApiKey,
                ),
                None if rejected => (Who::Special(Special::Invalid), AuthResult::Rejected),
                None => (
                    Who::Special(Special::UnresolvedApiKey),
                    AuthResult::Unverified,
                ),
            };
            Identity {
                who,
                auth: Auth::ApiKey,
                result,
                api_key: Some(Fingerprint::from_hash(&hash)),
            }
        }
        Some(c) => {
            let auth = if c.source == CredentialSource::Cookie {
                Auth::Cookie
            } else {
                Auth::Jwt
            };
            let (who, result) =
                resolve_token(verifier, c.expose(), ex.request.first_byte, rejected);
            Identity {
                who,
                auth,
                result,
                api_key: None,
            }
        }
    };
    (creds.carrier, identity)
}

impl Attributor {
    /// Attribute one HTTP exchange.
    pub fn on_exchange(&mut self, ex: &Exchange) {
        self.counters.exchanges += 1;
        let now = ex
            .response
            .as_ref()
            .map_or(ex.request.last_byte, |r| r.last_byte)
            .max(ex.request.first_byte);
        self.maybe_sweep(now);

        let dir = self.directory.clone();
        let (carrier, id) = identify(&mut self.verifier, ex, dir.as_deref());
        let route = route::route(&ex.path);
        let method = method_label(&ex.method);
        let completion = route::is_chat_completion(method, route);
        let h = &ex.request_headers;
        // Browsers send `Sec-Fetch-*` on every request but the WebSocket upgrade (Chromium
        // 156 in browser.pcap), which always carries `Origin` instead.
        let browser = h.sec_fetch_site.is_some()
            || h.sec_fetch_mode.is_some()
            || (h.upgrade.is_some() && h.origin.is_some());
        let client = if completion {
            if matches!(ex.request_fields.session_id, Some(Some(_))) {
                Client::Webui
            } else {
                Client::Api
            }
        } else if browser {
            Client::Webui
        } else {
            Client::Api
        };

        // Route series.
        // Key by the label the status gets, so odd statuses cannot multiply map entries.
        let status = match ex.status {
            Some(s @ 100..=599) => s,
            Some(_) => 1,
            None => 0,
        };
        let m = &self.metrics;
        let (requests, duration) = self.http.entry((method, route, status)).or_insert_with(|| {
            let mut buf = [0u8; 3];
            let s = status_label(ex.status, &mut buf);
            (
                m.http_requests.with_label_values(&[method, route, s]),
                m.http_duration.with_label_values(&[method, route]),
            )
        });
        requests.inc();
        if let Some(resp) = &ex.response {
            duration.observe(resp.last_byte.seconds_since(ex.request.first_byte));
        }
        let result = id.result.as_str();
        self.auth_results
            .entry(result)
            .or_insert_with(|| m.auth.with_label_values(&[result]))
            .inc();
        self.signals(ex, client, carrier);

        // User series.
        let export_info = self.config.export_user_info;
        let folded_before = self.users.folded;
        let user = id.who.as_ref();
        let entry = self.users.entry(user, &self.metrics, |uid| {
            export_info
                .then(|| dir.as_deref().and_then(|d| d.user(uid)).cloned())
                .flatten()
        });
        entry.requests(&self.metrics, id.auth, client).inc();
        let resp = ex.response.as_ref();
        entry.add_bytes(
            ex.request.header_bytes + ex.request.body_wire_bytes,
            resp.map_or(0, |r| r.header_bytes + r.body_wire_bytes),
        );
        entry.seen(now);
        if self.users.folded != folded_before {
            self.limit_hit("max_users");
        }
        if let Some(fp) = id.api_key {
            self.export_api_key(fp, user);
        }

        if completion {
            self.on_completion(ex, route, user, id.auth, client);
        } else if route::is_embedding(method, route) {
            self.on_embedding(ex, user);
        }
        if ex.upgraded {
            self.on_upgrade(ex.connection, user.into(), now);
        }
        self.metrics.tracked_users.set(self.users.len() as f64);
    }

    /// Count browser evidence. What each signal means, and why none is proof: `sec_fetch`
    /// (`Sec-Fetch-*`, set by browsers, not by page scripts, trivially by curl), `origin`
    /// (browsers send it on CORS and POST requests), `browser_user_agent` (`Mozilla/…`),
    /// `cookie_with_authorization` (the web UI sends its JWT as both).
    fn signals(&mut self, ex: &Exchange, client: Client, carrier: credential::AuthCarrier) {
        const SIGNALS: [&str; 4] = [
            "sec_fetch",
            "origin",
            "browser_user_agent",
            "cookie_with_authorization",
        ];
        let h = &ex.request_headers;
        let present = [
            h.sec_fetch_site.is_some() || h.sec_fetch_mode.is_some() || h.sec_fetch_dest.is_some(),
            h.origin.is_some(),
            h.user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("Mozilla/")),
            carrier.cookie_with_authorization(),
        ];
        let m = &self.metrics;
        for (i, _) in present.iter().enumerate().filter(|(_, p)| **p) {
            self.signal_counters[client as usize][i]
                .get_or_insert_with(|| {
                    m.client_signals
                        .with_label_values(&[client.as_str(), SIGNALS[i]])
                })
                .inc();
        }
    }

    fn export_api_key(&mut self, fp: Fingerprint, user: UserRef<'_>) {
        let label = self.users.label_of(user);
        match self.api_keys_exported.get(&fp) {
            Some(exported) if **exported == *label => return,
            // The key's owner label changed (database loaded, user folded or evicted).
            Some(exported) => {
                let _ = self
                    .metrics
                    .api_key_info
                    .remove_label_values(&[fp.as_str(), exported]);
            }
            None if self.api_keys_exported.len() >= self.config.max_api_key_info => {
                self.counters.api_key_info_dropped += 1;
                self.limit_hit("max_api_key_info");
                return;
            }
            None => {}
        }
        self.metrics
            .api_key_info
            .with_label_values(&[fp.as_str(), label])
            .set(1);
        self.api_keys_exported.insert(fp, label.into());
    }

    fn on_completion(
        &mut self,
        ex: &Exchange,
        route: &str,
        user: UserRef<'_>,
        auth: Auth,
        client: Client,
    ) {
        let folded = self.models.folded;
        let model = self.models.id(ex.request_fields.model.as_deref());
        if self.models.folded != folded {
            self.limit_hit("max_models");
        }
        let stream = ex
            .request_fields
            .stream
            .unwrap_or_else(|| route::streams_by_default(route));
        let class = status_class(ex.status);
        let key = CompletionKey {
            model,
            auth: auth.index(),
            client: client as u8,
            stream,
            status_class: class,
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
            && session
                .and_then(|s| self.sessions.get(s))
                .and_then(|c| self.sockets.get(c))
                .is_some_and(|sock| !sock.undecodable);
        if !deferred {
            self.count_completion(user, key);
        }
        let model_name = self.models.name(model);
        let entry = self.users.entry(user, &self.metrics, |_| None);
        match (ok, ex.response_fields.usage) {
            (true, Some(usage)) => entry.add_usage(&self.metrics, model, 0, usage, model_name),
            (true, None) if answered_whole(ex) => {
                entry
                    .without_usage(&self.metrics, model, 0, model_name)
                    .inc();
            }
            _ => {}
        }
        if let Some(first) = ex.response_fields.stream().and_then(|s| s.first_event) {
            self.metrics
                .ttft
                .with_label_values(&[model_name])
                .observe(first.seconds_since(ex.request.last_byte));
        }
        if let (Client::Webui, true, Some(message_id)) = (client, ok, message_id) {
            let pending = deferred.then(|| (OwnedUser::from(user), key));
            self.join_request(message_id, model, ex.request.last_byte, session, pending);
        }
    }

    /// An embedding request: its input tokens, under the model it names (embeddings produce
    /// no output tokens, so no output series is created for them).
    fn on_embedding(&mut self, ex: &Exchange, user: UserRef<'_>) {
        let (Some(200..=299), Some(usage)) = (ex.status, ex.response_fields.usage) else {
            return;
        };
        let folded = self.models.folded;
        let model = self.models.id(ex.request_fields.model.as_deref());
        if self.models.folded != folded {
            self.limit_hit("max_models");
        }
        let model_name = self.models.name(model);
        let input = TokenKey {
            model,
            direction: 0,
            source: 0,
        };
        self.users
            .entry(user, &self.metrics, |_| None)
            .tokens(&self.metrics, input, model_name)
            .inc_by(usage.prompt_tokens);
    }

    /// Count one chat completion under `key`'s labels.
    fn count_completion(&mut self, user: UserRef<'_>, key: CompletionKey) {
        let model_name = self.models.name(key.model);
        let entry = self.users.entry(user, &self.metrics, |_| None);
        entry.seen(self.clock);
        entry.completion(&self.metrics, key, model_name).inc();
    }

    /// Count a deferred web-UI completion, as done (its HTTP class) or `incomplete`.
    fn settle_completion(&mut self, pending: Option<(OwnedUser, CompletionKey)>, done: bool) {
        if let Some((user, mut key)) = pending {
            if !done {
                key.status_class = STATUS_INCOMPLETE;
            }
            self.count_completion(user.as_ref(), key);
        }
    }

    /// Advance traffic time (the shell calls this periodically): idle users lose their series,
    /// stale answers are settled.
    pub fn on_tick(&mut self, now: Timestamp) {
        self.sweep(now, false);
    }

    /// End of input: settle every pending answer (usage without a request gets model `unknown`).
    pub fn finish(&mut self, now: Timestamp) {
        self.sweep(now, true);
    }

    fn maybe_sweep(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now);
        if now.seconds_since(self.last_sweep) >= self.config.sweep_interval_secs as f64 {
            self.sweep(now, false);
        }
    }

    fn sweep(&mut self, now: Timestamp, all: bool) {
        self.clock = self.clock.max(now);
        self.last_sweep = now;
        let ttl = self.config.pending_ttl_secs.saturating_mul(1_000_000_000);
        let stale: Vec<Box<str>> = self
            .answers
            .iter()
            .filter(|(_, a)| all || a.touched.as_nanos().saturating_add(ttl) <= now.as_nanos())
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            let Some(a) = self.answers.remove(&k) else {
                continue;
            };
            if let Some((usage, user)) = a.usage {
                self.counters.unjoined_answers += 1;
                self.credit_ws(&user, MODEL_UNKNOWN, usage);
            }
            if let Some(user) = a.done_without_usage {
                self.count_ws_without_usage(&user, MODEL_UNKNOWN);
            }
            self.settle_completion(a.completion, a.done);
        }
        let socket_ttl = self.config.user_ttl_secs.saturating_mul(1_000_000_000);
        let sessions = &mut self.sessions;
        self.sockets.retain(|connection, s| {
            let keep = s.last_event.as_nanos().saturating_add(socket_ttl) > now.as_nanos();
            if let (false, Some(sid)) = (keep, &s.sid)
                && sessions.get(sid) == Some(connection)
            {
                sessions.remove(sid);
            }
            keep
        });
        let dropped = self.users.expire(now, &self.metrics, &self.models);
        self.metrics.users_evicted.inc_by(dropped as u64);
        self.metrics.tracked_users.set(self.users.len() as f64);
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
