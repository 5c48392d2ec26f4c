//! What attribution concludes, as [`Fact`]s handed to a [`FactSink`].
//!
//! The [`Attributor`](super::Attributor) decides *who* did *what*: which user (an id, never a
//! label value), with which credential, from which client, to which route and model, with how
//! many tokens. It keeps no metric and no per-user state. A sink decides what a fact is worth:
//! `metrics::PrometheusSink` turns facts into the `openwebui_*` families (spend per user
//! included, priced from [`Fact::Usage`]); `metrics::GenAiSink` into the OpenTelemetry GenAI
//! histograms; an audit trail of scripted completions is a further sink over the same facts.
//!
//! # Order
//!
//! Facts arrive in the order attribution concludes them, synchronously, during the
//! `Attributor` call that concluded them. For one HTTP exchange: [`Fact::Request`] first (every
//! exchange has exactly one), then [`Fact::ApiKeySeen`] if an API key was used, then — for a
//! chat completion — [`Fact::UserSeen`] with [`Fact::Completion`] (unless deferred, below),
//! [`Fact::Tokens`] (input, then output, then any [`Fact::TokenDetail`]) or
//! [`Fact::CompletionWithoutUsage`], then [`Fact::Usage`] when there were tokens,
//! [`Fact::FirstToken`], and last [`Fact::ModelCall`] (also for an embedding, after its
//! [`Fact::Tokens`] and [`Fact::Usage`]). A web-UI completion's facts may instead come during a later call: its
//! [`Fact::Completion`] when its answer reports `done` on the socket (or settles as
//! [`StatusClass::Incomplete`]), its socket-side [`Fact::Tokens`] when usage and request are
//! joined, in whichever order they arrive. [`Fact::Tick`] ends every sweep of idle state; a
//! sweep runs on `on_tick` and `finish`, and at the start of any call whose traffic time is
//! `sweep_interval_secs` past the last sweep (so its facts may precede a [`Fact::Request`]);
//! a sweep also retires models unused for the user TTL, each with a [`Fact::ModelRetired`]
//! before its [`Fact::Tick`].
//!
//! # Writing a sink
//!
//! A sink is called once per fact, on the attributor's thread, and should cost what a metric
//! update costs: no allocation for a series it has seen, no I/O (a sink that writes, such as an
//! audit trail, queues and lets the shell write). Spend per user prices [`Fact::Usage`] (each
//! part × the model's price for it); GenAI histograms observe [`Fact::Usage`] and
//! [`Fact::ModelCall`] durations; an audit trail of scripted use keeps the
//! [`Fact::Request`] of an exchange (auth, client, route, user agent, connection, proxy
//! headers) and writes it with the [`Fact::ModelCall`] that ends the same exchange.
//!
//! # Identity and labels
//!
//! A fact's user is a [`UserRef`]: the id attribution resolved, or a [`Special`](super::identity::Special) value. Folding
//! ids into `other` beyond a cap, and forgetting users idle longer than a TTL, is done by the
//! sink that needs it: both exist to bound label cardinality (and the handles cached per
//! label), which is a property of the Prometheus exposition, not of attribution. Attribution
//! itself holds users only inside sockets and pending answers, each map capped on its own
//! (`max_sockets`, `max_pending_answers`), so it needs no user table to bound its memory; a
//! sink that keeps per-user state bounds its own. Models, by contrast, are interned by
//! attribution ([`Model::id`]) and arrive already bounded (`max_models`, then `other`): a
//! pending answer holds its model, and every sink sees the same model names.
use std::sync::Arc;

use super::{
    apikey::{Directory, Fingerprint},
    identity::UserRef,
    labels::{Auth, AuthResult, Client, StatusClass},
    route::ApiKind,
};
use crate::{
    segment::{ConnectionKey, Timestamp},
    usage::Usage,
};

/// Receives attribution's facts. Implemented for closures, so `&mut |f: Fact<'_>| …` is a sink.
pub trait FactSink {
    fn fact(&mut self, fact: Fact<'_>);
}

impl<F: FnMut(Fact<'_>)> FactSink for F {
    fn fact(&mut self, fact: Fact<'_>) {
        self(fact)
    }
}

/// One conclusion of attribution. Borrowed strings live only for the call to
/// [`FactSink::fact`]; a sink that keeps one copies it.
#[derive(Debug, Clone, Copy)]
pub enum Fact<'a> {
    /// A new snapshot of Open WebUI's users and API keys (`None`: no database configured).
    Directory(Option<&'a Arc<Directory>>),
    /// One HTTP exchange, attributed.
    Request {
        user: UserRef<'a>,
        auth: Auth,
        /// What verifying or resolving the credential concluded.
        result: AuthResult,
        client: Client,
        /// Browser evidence the request carried (forgeable; see [`Signal`]).
        signals: Signals,
        /// Normalised method (`other` for unknown ones).
        method: &'static str,
        /// Route template (`other` for unknown paths).
        route: &'static str,
        /// The API the route speaks: a [`Fact::ModelCall`] ends the exchange's facts iff it is
        /// [`ApiKind::metered`].
        api: ApiKind,
        status: Option<u16>,
        /// The request's first byte to the response's last, in seconds (no response: `None`).
        duration: Option<f64>,
        /// Header and body bytes on the wire, request and response.
        request_bytes: u64,
        response_bytes: u64,
        /// The TCP connection (its client address is the peer's, before any proxy header).
        connection: ConnectionKey,
        user_agent: Option<&'a str>,
        /// `X-Forwarded-For` (repeated fields joined by `,`; its last entries when long) and
        /// `X-Real-IP`, as sent: only a sink that trusts the connection's peer believes them.
        forwarded_for: Option<&'a str>,
        real_ip: Option<&'a str>,
        /// The exchange's traffic time (its last byte).
        at: Timestamp,
    },
    /// An API key was used; its owner is `user` (by the database, or a [`Special`] value).
    ///
    /// [`Special`]: super::identity::Special
    ApiKeySeen {
        fingerprint: Fingerprint,
        user: UserRef<'a>,
    },
    /// `user` was active at traffic time `at` (a completion counted, an answer credited).
    UserSeen { user: UserRef<'a>, at: Timestamp },
    /// One model call that generates (chat completion, Anthropic Messages, Responses, Ollama's
    /// native chat), counted once: at its HTTP answer, or for a web-UI completion whose answer
    /// travels on a decoded socket, when that answer is done (or settles).
    Completion {
        user: UserRef<'a>,
        model: Model<'a>,
        /// The API the request spoke (`chat`, `messages`, `responses`, `ollama`).
        api: ApiKind,
        auth: Auth,
        client: Client,
        stream: bool,
        status: StatusClass,
    },
    /// Tokens of one answer (or embedding call) in one direction. Every answer with usage
    /// yields an input and an output fact (either may count 0); an embedding only input.
    Tokens {
        user: UserRef<'a>,
        model: Model<'a>,
        direction: TokenDirection,
        source: TokenSource,
        count: u64,
    },
    /// The part of one answer's tokens of a [`TokenDetail`] kind: cached input (part of the
    /// input [`Fact::Tokens`]) or reasoning (part of the output one), never to be added to
    /// them. Follows the answer's [`Fact::Tokens`]; emitted only when the count is not 0.
    TokenDetail {
        user: UserRef<'a>,
        model: Model<'a>,
        kind: TokenDetail,
        source: TokenSource,
        count: u64,
    },
    /// One answer's whole usage, after its [`Fact::Tokens`] and [`Fact::TokenDetail`]s: for
    /// sinks that price or observe an answer as a unit. `api` is the request's API (web-UI
    /// answers on the socket: [`ApiKind::ChatCompletion`]); an embedding's usage has input only.
    Usage {
        user: UserRef<'a>,
        model: Model<'a>,
        api: ApiKind,
        source: TokenSource,
        usage: Usage,
    },
    /// One HTTP exchange to a model-calling route (a [`Fact::Completion`]'s route or an
    /// embedding), whatever its status: the exchange's last fact, so it follows the
    /// [`Fact::Request`] of the same exchange in the same call.
    ModelCall {
        user: UserRef<'a>,
        model: Model<'a>,
        api: ApiKind,
        status: Option<u16>,
        /// Request's first byte to response's last, when the answer travelled on this
        /// exchange (`None` without a response, or when a web-UI answer goes to its socket).
        duration: Option<f64>,
        /// The usage this exchange's answer reported (a web-UI answer's comes on its socket).
        usage: Option<Usage>,
    },
    /// A successful answer that arrived whole but carried no token counts.
    CompletionWithoutUsage {
        user: UserRef<'a>,
        model: Model<'a>,
        source: TokenSource,
    },
    /// Time to first token: from the completion request's last byte to its first streamed
    /// event (HTTP) or delta (socket), once per completion.
    FirstToken { model: Model<'a>, seconds: f64 },
    /// A model unused for the TTL left the model table: its index may name another model
    /// from the next fact on, so a sink drops what it keeps under it (and its series).
    ModelRetired { model: Model<'a> },
    /// A cap of attribution cut something.
    LimitHit(Limit),
    /// Traffic time reached `now`: a sink drops state idle longer than its own TTLs.
    Tick { now: Timestamp },
}

/// A model name from attribution's bounded table, with its index there (stable until a
/// [`Fact::ModelRetired`] of it, so sinks can cache per model without hashing names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model<'a> {
    pub id: u32,
    pub name: &'a str,
}

/// Direction of counted tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenDirection {
    /// Prompt (input) tokens.
    Input,
    /// Completion (output) tokens.
    Output,
}

impl TokenDirection {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

/// A part of the input or output tokens, counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenDetail {
    /// Input tokens read from a prompt cache (part of the input).
    CachedInput,
    /// Output tokens spent reasoning (part of the output).
    Reasoning,
}

impl TokenDetail {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CachedInput => "cached_input",
            Self::Reasoning => "reasoning",
        }
    }
}

/// Where counted tokens were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// The HTTP answer: JSON `usage`, the last SSE event carrying usage, Ollama's counts.
    Http,
    /// The web UI's socket: one usage per answer message.
    Websocket,
}

impl TokenSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Websocket => "websocket",
        }
    }
}

/// A cap of attribution (`SemanticsConfig`); sinks have their own (`max_users`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A model beyond `max_models` (or too long) was named `other`.
    MaxModels,
    /// A web-UI answer was not remembered for joining.
    MaxPendingAnswers,
    /// An upgraded connection was not tracked.
    MaxSockets,
    /// A request Open WebUI did not accept named a model not yet known: labelled `other`.
    UntrustedModel,
}

impl Limit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MaxModels => "max_models",
            Self::MaxPendingAnswers => "max_pending_answers",
            Self::MaxSockets => "max_sockets",
            Self::UntrustedModel => "untrusted_model",
        }
    }
}

/// Browser evidence on one request. None of it is proof: each header can be copied by a
/// script; a mismatch between the client kind and its evidence is what stands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `Sec-Fetch-*`: set by browsers, not by page scripts (trivially by curl).
    SecFetch,
    /// `Origin`: browsers send it on CORS and POST requests.
    Origin,
    /// A `Mozilla/…` user agent.
    BrowserUserAgent,
    /// The web UI sends its JWT as both cookie and `Authorization`.
    CookieWithAuthorization,
}

impl Signal {
    pub const ALL: [Signal; 4] = [
        Self::SecFetch,
        Self::Origin,
        Self::BrowserUserAgent,
        Self::CookieWithAuthorization,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SecFetch => "sec_fetch",
            Self::Origin => "origin",
            Self::BrowserUserAgent => "browser_user_agent",
            Self::CookieWithAuthorization => "cookie_with_authorization",
        }
    }
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// A set of [`Signal`]s.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals(u8);

impl Signals {
    pub fn with(self, signal: Signal, present: bool) -> Self {
        Self(self.0 | (u8::from(present) << signal.index()))
    }
    pub fn contains(self, signal: Signal) -> bool {
        self.0 & (1 << signal.index()) != 0
    }
    pub fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}
