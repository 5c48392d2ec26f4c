//! Open WebUI semantics: who sent each request (JWT, cookie, API key), how (web UI or script),
//! to which route and model, with how many tokens — from [`crate::pipeline::PipelineEvent`]s to
//! [`Fact`]s, which a [`FactSink`] applies (`metrics::PrometheusSink` turns them into the
//! families below).
//!
//! Modules, in the order a request meets them: `credential` picks the credential Open WebUI
//! acts on, `jwt` verifies it, `apikey` resolves API keys through a [`Directory`] snapshot of
//! Open WebUI's database (read by the shell), `route` names the endpoint, `identity` and
//! `labels` name who and what, and `attribution` ties it all together (including the web UI's
//! WebSocket answers) in the [`Attributor`], whose conclusions are the [`fact`]s.
//!
//! # What the labels mean
//!
//! * `user`: the verified JWT's `id` claim, or the API key's owner from Open WebUI's database.
//!   Otherwise `anonymous` (no credential), `invalid` (a token that failed verification, a
//!   verified token without an `id`, or — without the secret — a token Open WebUI answered 401
//!   to; never the id the token claims), `unknown_api_key` (an `sk-` key not in the database),
//!   `unresolved_api_key` (an `sk-` key while no database is configured), `other` (beyond
//!   `max_users`). Without the secret a well-formed token's *claimed* id is the user
//!   (`openwebui_auth_total{result="unverified"}` says how many requests rest on a claim).
//!   Attribution follows the credential a request carries whether or not the endpoint checks it.
//! * `auth`: the kind of credential Open WebUI acts on: `jwt` (the `Authorization` header,
//!   including `Bearer undefined` and other non-key values, which Open WebUI decodes as JWTs),
//!   `cookie` (the `token` cookie, used when no Bearer value is present), `api_key` (`sk-…`
//!   wherever it appears), `none`.
//! * `client`: a chat completion is `webui` iff its JSON body has a non-null `session_id` (the
//!   socket.io session its answer travels on; Open WebUI 0.12.4's UI omits `chat_id` on a new
//!   chat's first message, so `chat_id` is no signal), else `api`. Other requests are `webui`
//!   iff they carry `Sec-Fetch-Site` or `Sec-Fetch-Mode`, which browsers add and page scripts
//!   cannot remove (or, for a WebSocket upgrade, which has no `Sec-Fetch-*`, an `Origin`). **Both are forgeable** by any script that copies them: the label means
//!   "behaves like the web UI". The identity (`user`, `auth`) rests on the signature check, not
//!   on headers. `openwebui_client_signals_total{client,signal}` counts the browser evidence of
//!   each request so a script imitating the UI stands out by its missing signals.
//! * `status_class`: `2xx` … `5xx`, `none` (no response), `other`; a web-UI completion (whose
//!   HTTP 200 only means "task accepted") is counted when its answer reports `done` on the
//!   socket, as its HTTP class, or as `incomplete` if the socket closes or the answer expires
//!   first. When its socket is not decoded, it is counted at once with its HTTP class.
//! * `model`: the request body's `model`, at most `max_models` values, then `other`; `unknown`
//!   for a WebSocket answer never joined to its request.
//! * `route`: a template of Open WebUI's own route table, generated from its release (see `route`).
//! * `source` of tokens: `http` (JSON `usage` or the last SSE event carrying usage, 2xx only) or
//!   `websocket` (one usage per answer message, from socket.io `chat:completion` events,
//!   credited to the user of the socket's `user-join` token and the joined request's model).
//!
//! API keys appear only as a 12-hex-digit SHA-256 fingerprint (`openwebui_api_key_info`);
//! account details (`openwebui_user_info`) only with `export_user_info`. Every map is capped
//! (`SemanticsConfig`) and what a cap cuts is counted in
//! `webui_monitor_openwebui_limit_hits_total{limit}`; idle users' series expire after
//! `user_ttl_secs` of traffic time.
pub(crate) mod apikey;
pub(crate) mod attribution;
#[cfg(test)]
mod attribution_tests;
mod b64;
pub(crate) mod credential;
pub mod fact;
pub(crate) mod fast_map;
pub(crate) mod identity;
pub(crate) mod jwt;
pub(crate) mod labels;
pub(crate) mod route;
#[rustfmt::skip]
pub mod routes_generated;
#[cfg(test)]
pub(crate) mod test_exchanges;

pub use apikey::{Directory, Fingerprint, KeyLookup, UserRecord};
pub use attribution::{Attributor, SemanticsConfig, SemanticsCounters};
pub use fact::{Fact, FactSink};
pub use identity::{OwnedUser, Special, UserRef};
pub use jwt::{JwtLimits, JwtSecret};
pub use labels::{Auth, AuthResult, Client, StatusClass};
pub use route::{ApiKind, GeneratedRoute, api_kind, route};
