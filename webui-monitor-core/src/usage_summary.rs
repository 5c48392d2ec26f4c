//! Per-user usage, aggregated from the registry's own families: what `GET /api/users` serves and
//! `webui-monitor top` shows.
//!
//! The summary is computed from gathered [`MetricFamily`]s rather than from the semantics layer's
//! state, so it can never disagree with `/metrics` and needs no locking or extra bookkeeping in
//! the data path. It is as bounded as the `user` label itself (`max_users`, then `other`).
//!
//! Counters are cumulative since the daemon started; rates are the client's business (it has
//! two snapshots and their [`UsersSummary::generated_at`]).
use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus::{
    Registry,
    proto::{Metric, MetricFamily, MetricType},
};
use serde::{Deserialize, Serialize};

/// `openwebui_user_requests_total{user,auth,client}`.
const USER_REQUESTS: &str = "openwebui_user_requests_total";
/// `openwebui_chat_completions_total{user,model,api,auth,client,stream,status_class}`.
const CHAT_COMPLETIONS: &str = "openwebui_chat_completions_total";
/// `openwebui_llm_tokens_total{user,model,direction,source}`.
const LLM_TOKENS: &str = "openwebui_llm_tokens_total";
/// `openwebui_chat_completions_without_usage_total{user,model,source}`.
const WITHOUT_USAGE: &str = "openwebui_chat_completions_without_usage_total";
/// `openwebui_user_last_seen_timestamp_seconds{user}`.
const USER_LAST_SEEN: &str = "openwebui_user_last_seen_timestamp_seconds";
/// `openwebui_scripted_session_last_timestamp_seconds{user,auth,api,model,client_address}`.
const SCRIPTED_LAST: &str = "openwebui_scripted_session_last_timestamp_seconds";
/// `openwebui_scripted_session_calls_total{user,auth,api}`.
const SCRIPTED_CALLS: &str = "openwebui_scripted_session_calls_total";
/// `webui_monitor_capture_lost_total{reason}`.
const CAPTURE_LOST: &str = "webui_monitor_capture_lost_total";
/// `webui_monitor_reassembly_gaps_total`.
const REASSEMBLY_GAPS: &str = "webui_monitor_reassembly_gaps_total";
/// `webui_monitor_openwebui_limit_hits_total{limit}`.
const LIMIT_HITS: &str = "webui_monitor_openwebui_limit_hits_total";
/// `webui_monitor_openwebui_tracked_users`.
const TRACKED_USERS: &str = "webui_monitor_openwebui_tracked_users";

/// Every tracked user's usage plus the monitor's health, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsersSummary {
    /// Unix time in seconds at which the daemon built this summary (its wall clock).
    pub generated_at: f64,
    /// One entry per `user` label value, sorted by [`UserSummary::user`].
    pub users: Vec<UserSummary>,
    /// Whether the numbers above can be trusted.
    pub monitor: MonitorHealth,
}

/// One user's cumulative usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserSummary {
    /// The `user` label: an Open WebUI user id or a bucket (`anonymous`, `invalid`, `other`, …).
    pub user: String,
    /// HTTP requests.
    pub requests: u64,
    /// HTTP requests by credential kind (`jwt`, `cookie`, `api_key`, `none`).
    pub requests_by_auth: BTreeMap<String, u64>,
    /// HTTP requests by client kind (`webui`, `api`).
    pub requests_by_client: BTreeMap<String, u64>,
    /// Chat completions, whatever their status.
    pub completions: u64,
    /// Chat completions by model.
    pub completions_by_model: BTreeMap<String, u64>,
    /// LLM tokens by source (`http`, `websocket`).
    pub tokens_by_source: BTreeMap<String, Tokens>,
    /// Successful completions whose answer carried no token counts: tokens that
    /// [`UserSummary::tokens`] cannot include.
    pub completions_without_usage: u64,
    /// Unix time of the user's latest traffic, if exported.
    pub last_seen: Option<f64>,
    /// Model calls made with this user's session JWT or cookie from a script (the audit trail).
    pub scripted_session_calls: u64,
    /// The latest of those calls, if the audit trail has one.
    pub scripted_session: Option<ScriptedSession>,
}

/// A user's latest model call with a session credential from a script (the audit trail's
/// `openwebui_scripted_session_last_timestamp_seconds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScriptedSession {
    /// Unix time (traffic time) of the call.
    pub at: f64,
    /// `jwt` or `cookie`.
    pub auth: String,
    /// `chat`, `messages`, `responses`, `ollama`, `embeddings`.
    pub api: String,
    pub model: String,
    /// The script's address (behind a trusted proxy, the one it forwarded).
    pub client_address: String,
}

impl UserSummary {
    /// Tokens of every source.
    pub fn tokens(&self) -> Tokens {
        self.tokens_by_source
            .values()
            .fold(Tokens::default(), |sum, t| Tokens {
                input: sum.input.saturating_add(t.input),
                output: sum.output.saturating_add(t.output),
            })
    }
}

/// Input (prompt) and output (completion) tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
}

impl Tokens {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// The monitor's own losses: when these grow, per-user numbers are undercounts. `None` when the
/// family is not registered in this daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorHealth {
    /// Capture records lost before reaching userspace (every reason).
    pub capture_lost: Option<u64>,
    /// Holes declared in reassembled TCP streams.
    pub reassembly_gaps: Option<u64>,
    /// Events a cap of the semantics layer cut or folded (e.g. users folded into `other`).
    pub limit_hits: Option<u64>,
    /// User label values currently exported.
    pub tracked_users: Option<u64>,
}

/// Aggregates `families` per `user` label; `generated_at` is the caller's clock (Unix seconds).
///
/// Families of other names, samples without a `user` label and label values the layer does not
/// produce are ignored or summed as they come: nothing here fails on unexpected input.
pub fn summarize(families: &[MetricFamily], generated_at: f64) -> UsersSummary {
    let mut users: BTreeMap<String, UserSummary> = BTreeMap::new();
    let mut monitor = MonitorHealth::default();
    for family in families {
        let kind = family.get_field_type();
        match family.name() {
            USER_REQUESTS => {
                for (metric, user) in with_user(family) {
                    let n = count(metric, kind);
                    let u = entry(&mut users, user);
                    u.requests = u.requests.saturating_add(n);
                    add(&mut u.requests_by_auth, label(metric, "auth"), n);
                    add(&mut u.requests_by_client, label(metric, "client"), n);
                }
            }
            CHAT_COMPLETIONS => {
                for (metric, user) in with_user(family) {
                    let n = count(metric, kind);
                    let u = entry(&mut users, user);
                    u.completions = u.completions.saturating_add(n);
                    add(&mut u.completions_by_model, label(metric, "model"), n);
                }
            }
            LLM_TOKENS => {
                for (metric, user) in with_user(family) {
                    let n = count(metric, kind);
                    let u = entry(&mut users, user);
                    let source = label(metric, "source").unwrap_or_default();
                    let t = u.tokens_by_source.entry(source.to_owned()).or_default();
                    match label(metric, "direction") {
                        Some("input") => t.input = t.input.saturating_add(n),
                        Some("output") => t.output = t.output.saturating_add(n),
                        _ => {}
                    }
                }
            }
            WITHOUT_USAGE => {
                for (metric, user) in with_user(family) {
                    let n = count(metric, kind);
                    let u = entry(&mut users, user);
                    u.completions_without_usage = u.completions_without_usage.saturating_add(n);
                }
            }
            USER_LAST_SEEN => {
                for (metric, user) in with_user(family) {
                    let seen = value(metric, kind).filter(|v| v.is_finite());
                    let u = entry(&mut users, user);
                    u.last_seen = match (u.last_seen, seen) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            SCRIPTED_CALLS => {
                for (metric, user) in with_user(family) {
                    let n = count(metric, kind);
                    let u = entry(&mut users, user);
                    u.scripted_session_calls = u.scripted_session_calls.saturating_add(n);
                }
            }
            SCRIPTED_LAST => {
                for (metric, user) in with_user(family) {
                    let Some(at) = value(metric, kind).filter(|v| v.is_finite()) else {
                        continue;
                    };
                    let u = entry(&mut users, user);
                    // One series per user; should two ever be read, the later wins.
                    if u.scripted_session.as_ref().is_some_and(|s| s.at >= at) {
                        continue;
                    }
                    let text = |name| label(metric, name).unwrap_or_default().to_owned();
                    u.scripted_session = Some(ScriptedSession {
                        at,
                        auth: text("auth"),
                        api: text("api"),
                        model: text("model"),
                        client_address: text("client_address"),
                    });
                }
            }
            CAPTURE_LOST => monitor.capture_lost = Some(sum(family)),
            REASSEMBLY_GAPS => monitor.reassembly_gaps = Some(sum(family)),
            LIMIT_HITS => monitor.limit_hits = Some(sum(family)),
            TRACKED_USERS => monitor.tracked_users = Some(sum(family)),
            _ => {}
        }
    }
    UsersSummary {
        generated_at,
        users: users.into_values().collect(),
        monitor,
    }
}

/// The `GET /api/users` body: [`summarize`] of `registry` at `now`, as JSON.
pub fn users_json(registry: &Registry, now: SystemTime) -> String {
    let generated_at = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let summary = summarize(&registry.gather(), generated_at);
    // Serialising plain structs with string keys cannot fail; an empty object keeps the
    // endpoint's contract (JSON) if it ever did.
    serde_json::to_string(&summary).unwrap_or_else(|_| "{}".to_owned())
}

fn entry<'a>(users: &'a mut BTreeMap<String, UserSummary>, user: &str) -> &'a mut UserSummary {
    users.entry(user.to_owned()).or_insert_with(|| UserSummary {
        user: user.to_owned(),
        ..UserSummary::default()
    })
}

/// The samples of `family` that carry a `user` label, with its value.
fn with_user(family: &MetricFamily) -> impl Iterator<Item = (&Metric, &str)> {
    family
        .get_metric()
        .iter()
        .filter_map(|m| label(m, "user").map(|user| (m, user)))
}

fn label<'a>(metric: &'a Metric, name: &str) -> Option<&'a str> {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

fn add(map: &mut BTreeMap<String, u64>, key: Option<&str>, n: u64) {
    let slot = map.entry(key.unwrap_or_default().to_owned()).or_default();
    *slot = slot.saturating_add(n);
}

fn value(metric: &Metric, kind: MetricType) -> Option<f64> {
    match kind {
        MetricType::COUNTER => Some(metric.get_counter().get_value()),
        MetricType::GAUGE => Some(metric.get_gauge().get_value()),
        // The crate's own collectors never produce untyped samples.
        MetricType::UNTYPED | MetricType::SUMMARY | MetricType::HISTOGRAM => None,
    }
}

/// A sample as a count. Counters hold whole numbers in an `f64`; the saturating `as` maps NaN
/// and negatives to 0, which is what a count should read then.
fn count(metric: &Metric, kind: MetricType) -> u64 {
    value(metric, kind).map_or(0, |v| v as u64)
}

fn sum(family: &MetricFamily) -> u64 {
    let kind = family.get_field_type();
    family
        .get_metric()
        .iter()
        .fold(0u64, |acc, m| acc.saturating_add(count(m, kind)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus::{IntCounter, IntCounterVec, Opts};

    use super::*;
    use crate::metrics::OpenWebuiMetrics;

    const ALICE: &str = "6b1f2a9e-0c4d-4f7a-9a55-2f8e3c1d7b10";

    /// A registry with the semantics families and the monitor counters filled as the daemon
    /// would after a few exchanges.
    fn registry() -> Registry {
        let registry = Registry::new();
        let m = OpenWebuiMetrics::register(&registry, "USD").unwrap();
        m.user_requests
            .with_label_values(&[ALICE, "jwt", "webui"])
            .inc_by(7);
        m.user_requests
            .with_label_values(&[ALICE, "cookie", "webui"])
            .inc_by(2);
        m.user_requests
            .with_label_values(&[ALICE, "jwt", "api"])
            .inc_by(3);
        m.user_requests
            .with_label_values(&["anonymous", "none", "api"])
            .inc();
        m.chat_completions
            .with_label_values(&[ALICE, "llama3", "chat", "jwt", "webui", "true", "2xx"])
            .inc_by(2);
        m.chat_completions
            .with_label_values(&[ALICE, "llama3", "chat", "jwt", "api", "false", "2xx"])
            .inc();
        m.chat_completions
            .with_label_values(&[ALICE, "qwen", "chat", "jwt", "api", "false", "4xx"])
            .inc();
        m.llm_tokens
            .with_label_values(&[ALICE, "llama3", "input", "http"])
            .inc_by(10);
        m.llm_tokens
            .with_label_values(&[ALICE, "llama3", "output", "http"])
            .inc_by(25);
        m.llm_tokens
            .with_label_values(&[ALICE, "qwen", "input", "http"])
            .inc_by(5);
        m.llm_tokens
            .with_label_values(&[ALICE, "llama3", "output", "websocket"])
            .inc_by(40);
        m.completions_without_usage
            .with_label_values(&[ALICE, "qwen", "http"])
            .inc_by(2);
        m.completions_without_usage
            .with_label_values(&[ALICE, "llama3", "websocket"])
            .inc();
        m.user_last_seen.with_label_values(&[ALICE]).set(1_700.5);
        m.user_last_seen
            .with_label_values(&["anonymous"])
            .set(1_650.0);
        m.limit_hits.with_label_values(&["max_users"]).inc_by(4);
        m.limit_hits.with_label_values(&["max_models"]).inc();
        m.tracked_users.set(2.0);
        // Unrelated families are ignored.
        m.auth.with_label_values(&["verified"]).inc_by(99);
        m.client_signals
            .with_label_values(&["webui", "origin"])
            .inc_by(99);
        m.user_bytes
            .with_label_values(&[ALICE, "request"])
            .inc_by(99);
        let lost = IntCounterVec::new(Opts::new(CAPTURE_LOST, "lost"), &["reason"]).unwrap();
        lost.with_label_values(&["ring_full"]).inc_by(3);
        lost.with_label_values(&["truncated"]).inc_by(1);
        registry.register(Box::new(lost)).unwrap();
        let gaps = IntCounter::new(REASSEMBLY_GAPS, "gaps").unwrap();
        gaps.inc_by(6);
        registry.register(Box::new(gaps)).unwrap();
        registry
    }

    fn map<const N: usize>(entries: [(&str, u64); N]) -> BTreeMap<String, u64> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn aggregates_per_user() {
        let summary = summarize(&registry().gather(), 1_800.0);
        assert_eq!(
            summary,
            UsersSummary {
                generated_at: 1_800.0,
                users: vec![
                    UserSummary {
                        user: ALICE.to_owned(),
                        requests: 12,
                        requests_by_auth: map([("cookie", 2), ("jwt", 10)]),
                        requests_by_client: map([("api", 3), ("webui", 9)]),
                        completions: 4,
                        completions_by_model: map([("llama3", 3), ("qwen", 1)]),
                        tokens_by_source: [
                            (
                                "http".to_owned(),
                                Tokens {
                                    input: 15,
                                    output: 25
                                }
                            ),
                            (
                                "websocket".to_owned(),
                                Tokens {
                                    input: 0,
                                    output: 40
                                }
                            ),
                        ]
                        .into(),
                        completions_without_usage: 3,
                        last_seen: Some(1_700.5),
                        ..UserSummary::default()
                    },
                    UserSummary {
                        user: "anonymous".to_owned(),
                        requests: 1,
                        requests_by_auth: map([("none", 1)]),
                        requests_by_client: map([("api", 1)]),
                        last_seen: Some(1_650.0),
                        ..UserSummary::default()
                    },
                ],
                monitor: MonitorHealth {
                    capture_lost: Some(4),
                    reassembly_gaps: Some(6),
                    limit_hits: Some(5),
                    tracked_users: Some(2),
                },
            }
        );
        assert_eq!(
            summary.users[0].tokens(),
            Tokens {
                input: 15,
                output: 65
            }
        );
        assert_eq!(summary.users[0].tokens().total(), 80);
    }

    #[test]
    fn scripted_session_use_per_user() {
        let registry = Registry::new();
        let m = crate::metrics::audit::AuditMetrics::register(&registry).unwrap();
        m.last
            .with_label_values(&[ALICE, "jwt", "messages", "mock-gpt", "203.0.113.7"])
            .set(1_796_642_355.5);
        m.calls
            .with_label_values(&[ALICE, "jwt", "messages"])
            .inc_by(2);
        m.calls.with_label_values(&[ALICE, "cookie", "chat"]).inc();
        let summary = summarize(&registry.gather(), 1_796_642_400.0);
        assert_eq!(summary.users.len(), 1);
        let alice = &summary.users[0];
        assert_eq!(alice.user, ALICE);
        assert_eq!(alice.scripted_session_calls, 3);
        assert_eq!(
            alice.scripted_session,
            Some(ScriptedSession {
                at: 1_796_642_355.5,
                auth: "jwt".into(),
                api: "messages".into(),
                model: "mock-gpt".into(),
                client_address: "203.0.113.7".into(),
            })
        );
        // The JSON top reads back.
        let json = serde_json::to_string(&summary).unwrap();
        let back: UsersSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, summary);
    }

    #[test]
    fn empty_registry_has_no_users_and_unknown_health() {
        let registry = Registry::new();
        OpenWebuiMetrics::register(&registry, "USD").unwrap();
        let summary = summarize(&registry.gather(), 5.0);
        assert_eq!(summary.users, vec![]);
        assert_eq!(
            summary.monitor,
            MonitorHealth {
                capture_lost: None,
                reassembly_gaps: None,
                limit_hits: None,
                tracked_users: Some(0),
            }
        );
    }

    #[test]
    fn a_user_seen_only_in_tokens_still_gets_a_row() {
        // A web-UI answer credited through the socket's `user-join` token, with no HTTP request
        // of that user in this process's lifetime.
        let registry = Registry::new();
        let m = OpenWebuiMetrics::register(&registry, "USD").unwrap();
        m.llm_tokens
            .with_label_values(&["bob", "unknown", "output", "websocket"])
            .inc_by(9);
        let summary = summarize(&registry.gather(), 0.0);
        assert_eq!(summary.users.len(), 1);
        assert_eq!(summary.users[0].user, "bob");
        assert_eq!(summary.users[0].requests, 0);
        assert_eq!(summary.users[0].tokens().output, 9);
        assert_eq!(summary.users[0].last_seen, None);
    }

    #[test]
    fn json_round_trips_and_carries_the_callers_time() {
        let now = UNIX_EPOCH + Duration::from_millis(1_800_250);
        let json = users_json(&registry(), now);
        let parsed: UsersSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, summarize(&registry().gather(), 1_800.25));
        assert!(
            json.starts_with(r#"{"generated_at":1800.25,"users":[{"user":"6b1f2a9e"#),
            "{json}"
        );
        assert!(
            json.contains(r#""monitor":{"capture_lost":4,"reassembly_gaps":6,"limit_hits":5,"tracked_users":2}"#),
            "{json}"
        );
    }

    #[test]
    fn missing_fields_default_when_reading_older_or_newer_daemons() {
        let parsed: UsersSummary =
            serde_json::from_str(r#"{"users":[{"user":"u","requests":3,"future":1}]}"#).unwrap();
        assert_eq!(parsed.generated_at, 0.0);
        assert_eq!(parsed.users[0].requests, 3);
        assert_eq!(parsed.users[0].last_seen, None);
        assert_eq!(parsed.monitor, MonitorHealth::default());
    }
}
