//! `openwebui_*` families: what Open WebUI's users do, plus the
//! `webui_monitor_openwebui_*` counters of what the semantics layer cut to stay bounded.
//!
//! Label values come only from bounded sets: routes from a static table, users capped with an
//! `other` bucket and idle expiry, models capped, statuses and methods normalised. Credentials
//! never become labels; API keys appear only as a 12-hex-digit SHA-256 fingerprint.
use prometheus::{
    CounterVec, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry,
};

use super::util::register;

/// Request durations: LLM streams run for minutes, so buckets go up to 300 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Time to first token: from tens of milliseconds (cached) to a minute (cold model).
pub const TTFT_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Every Open WebUI semantics family, registered once in the shared registry.
#[derive(Debug, Clone)]
pub struct OpenWebuiMetrics {
    /// `openwebui_http_requests_total{method,route,status}`.
    pub http_requests: IntCounterVec,
    /// `openwebui_http_request_duration_seconds{method,route}`: request's first byte to
    /// response's last byte.
    pub http_duration: HistogramVec,
    /// `openwebui_user_requests_total{user,auth,client}`.
    pub user_requests: IntCounterVec,
    /// `openwebui_user_bytes_total{user,direction}`: header block + body wire bytes.
    pub user_bytes: IntCounterVec,
    /// `openwebui_user_last_seen_timestamp_seconds{user}` (traffic time).
    pub user_last_seen: GaugeVec,
    /// `openwebui_chat_completions_total{user,model,api,auth,client,stream,status_class}`.
    pub chat_completions: IntCounterVec,
    /// `openwebui_llm_tokens_total{user,model,direction,source}`: totals (cached input and
    /// reasoning included).
    pub llm_tokens: IntCounterVec,
    /// `openwebui_llm_token_details_total{user,model,kind,source}`: the cached-input part of
    /// the input tokens and the reasoning part of the output tokens.
    pub llm_token_details: IntCounterVec,
    /// `openwebui_llm_spend_total{user,model}`: tokens × `[pricing]` prices, in the configured
    /// currency (named in the help).
    pub llm_spend: CounterVec,
    /// `openwebui_llm_unpriced_tokens_total{model}`: tokens of models without a price.
    pub unpriced_tokens: IntCounterVec,
    /// `openwebui_chat_completions_without_usage_total{user,model,source}`: answers that
    /// carried no token counts, so `llm_tokens` misses their tokens.
    pub completions_without_usage: IntCounterVec,
    /// `openwebui_chat_time_to_first_token_seconds{model}`.
    pub ttft: HistogramVec,
    /// `openwebui_auth_total{result}`: one per HTTP request.
    pub auth: IntCounterVec,
    /// `openwebui_api_key_info{key,user}` = 1 for API keys seen in traffic.
    pub api_key_info: IntGaugeVec,
    /// `openwebui_user_info{user,name,email,role}` = 1; filled only on opt-in (personal data).
    pub user_info: IntGaugeVec,
    /// `openwebui_client_signals_total{client,signal}`: browser evidence seen per request.
    pub client_signals: IntCounterVec,
    /// `webui_monitor_openwebui_limit_hits_total{limit}`: what a cap cut (users folded into
    /// `other`, models folded, pending WebSocket answers dropped, …).
    pub limit_hits: IntCounterVec,
    /// `webui_monitor_openwebui_users_evicted_total`: users whose series were dropped when idle.
    pub users_evicted: IntCounter,
    /// `webui_monitor_openwebui_tracked_users`: user label values currently exported.
    pub tracked_users: Gauge,
}

impl OpenWebuiMetrics {
    /// Registers every family; labelled series appear as traffic creates them. `currency`
    /// (ISO 4217) is named in the spend family's help.
    pub fn register(registry: &Registry, currency: &str) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels,
                )?,
            )
        };
        Ok(Self {
            http_requests: counter(
                "openwebui_http_requests_total",
                "HTTP requests to Open WebUI by method, route template and status (`none`: no response).",
                &["method", "route", "status"],
            )?,
            http_duration: histogram(
                "openwebui_http_request_duration_seconds",
                "From the request's first byte to the response's last byte.",
                &["method", "route"],
                DURATION_BUCKETS,
            )?,
            user_requests: counter(
                "openwebui_user_requests_total",
                "HTTP requests by user, credential kind Open WebUI acts on, and client kind.",
                &["user", "auth", "client"],
            )?,
            user_bytes: counter(
                "openwebui_user_bytes_total",
                "HTTP header and body bytes on the wire by user and direction (request|response).",
                &["user", "direction"],
            )?,
            user_last_seen: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "openwebui_user_last_seen_timestamp_seconds",
                        "Traffic time of the user's latest request or response byte.",
                    ),
                    &["user"],
                )?,
            )?,
            chat_completions: counter(
                "openwebui_chat_completions_total",
                "Model calls that generate (chat completions and their Ollama, Anthropic Messages and Responses siblings) by user, model, api (chat|ollama|messages|responses), auth, client kind, stream flag and HTTP status class.",
                &[
                    "user",
                    "model",
                    "api",
                    "auth",
                    "client",
                    "stream",
                    "status_class",
                ],
            )?,
            llm_tokens: counter(
                "openwebui_llm_tokens_total",
                "LLM tokens by user and model; direction input|output, each the total (input includes cached input, output includes reasoning); source http (JSON/SSE usage of chat completions, Anthropic Messages and Responses, Ollama NDJSON counts, embeddings' input) or websocket (web UI answers).",
                &["user", "model", "direction", "source"],
            )?,
            llm_token_details: counter(
                "openwebui_llm_token_details_total",
                "Parts of openwebui_llm_tokens_total, by user, model, kind and source: kind cached_input is the part of direction=input read from a prompt cache, kind reasoning the part of direction=output spent reasoning. Already included in the totals: never add them to openwebui_llm_tokens_total.",
                &["user", "model", "kind", "source"],
            )?,
            llm_spend: register(
                registry,
                CounterVec::new(
                    Opts::new(
                        "openwebui_llm_spend_total",
                        format!(
                            "What users' tokens cost, in {currency} (pricing.currency), by user and model: every answer's input, cached input, cache writes, output and reasoning tokens times the model's [pricing] price for each. Models without a price are in openwebui_llm_unpriced_tokens_total, not here."
                        ),
                    ),
                    &["user", "model"],
                )?,
            )?,
            unpriced_tokens: counter(
                "openwebui_llm_unpriced_tokens_total",
                "Tokens (input and output) of answers whose model has no price in [pricing]: their cost is missing from openwebui_llm_spend_total.",
                &["model"],
            )?,
            completions_without_usage: counter(
                "openwebui_chat_completions_without_usage_total",
                "Successful chat completions whose answer carried no token counts (e.g. streamed without stream_options.include_usage), by user, model and source (http|websocket): their tokens are missing from openwebui_llm_tokens_total.",
                &["user", "model", "source"],
            )?,
            ttft: histogram(
                "openwebui_chat_time_to_first_token_seconds",
                "From the end of the completion request to its first streamed event (SSE event, Ollama NDJSON line) or delta (WebSocket).",
                &["model"],
                TTFT_BUCKETS,
            )?,
            auth: counter(
                "openwebui_auth_total",
                "Authentication outcome of each HTTP request.",
                &["result"],
            )?,
            api_key_info: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "openwebui_api_key_info",
                        "API keys seen in traffic: SHA-256 fingerprint (12 hex digits) and owner.",
                    ),
                    &["key", "user"],
                )?,
            )?,
            user_info: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "openwebui_user_info",
                        "Open WebUI account details of tracked users (only when personal data export is enabled).",
                    ),
                    &["user", "name", "email", "role"],
                )?,
            )?,
            client_signals: counter(
                "openwebui_client_signals_total",
                "Browser evidence per request (forgeable headers): sec_fetch, origin, browser_user_agent, cookie_with_authorization.",
                &["client", "signal"],
            )?,
            limit_hits: counter(
                "webui_monitor_openwebui_limit_hits_total",
                "Events cut or folded by a cap of the Open WebUI semantics layer.",
                &["limit"],
            )?,
            users_evicted: register(
                registry,
                IntCounter::new(
                    "webui_monitor_openwebui_users_evicted_total",
                    "Users whose series were dropped after being idle longer than the user TTL.",
                )?,
            )?,
            tracked_users: register(
                registry,
                Gauge::new(
                    "webui_monitor_openwebui_tracked_users",
                    "User label values currently exported (the cap is --max-users).",
                )?,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_every_family_once() {
        let registry = Registry::new();
        let m = OpenWebuiMetrics::register(&registry, "USD").unwrap();
        m.http_requests
            .with_label_values(&["GET", "/api/config", "200"])
            .inc();
        m.http_duration
            .with_label_values(&["GET", "/api/config"])
            .observe(0.1);
        m.user_requests
            .with_label_values(&["u", "jwt", "api"])
            .inc();
        m.user_bytes.with_label_values(&["u", "request"]).inc();
        m.user_last_seen.with_label_values(&["u"]).set(1.0);
        m.chat_completions
            .with_label_values(&["u", "m", "chat", "jwt", "api", "false", "2xx"])
            .inc();
        m.llm_tokens
            .with_label_values(&["u", "m", "input", "http"])
            .inc();
        m.llm_token_details
            .with_label_values(&["u", "m", "cached_input", "http"])
            .inc();
        m.llm_spend.with_label_values(&["u", "m"]).inc_by(0.5);
        m.unpriced_tokens.with_label_values(&["m"]).inc();
        m.completions_without_usage
            .with_label_values(&["u", "m", "http"])
            .inc();
        m.ttft.with_label_values(&["m"]).observe(0.1);
        m.auth.with_label_values(&["verified"]).inc();
        m.api_key_info
            .with_label_values(&["46e99b8fcc3f", "u"])
            .set(1);
        m.user_info.with_label_values(&["u", "n", "e", "r"]).set(1);
        m.client_signals
            .with_label_values(&["webui", "origin"])
            .inc();
        m.limit_hits.with_label_values(&["max_users"]).inc();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(names.len(), 19, "{names:?}");
        assert!(
            OpenWebuiMetrics::register(&registry, "USD").is_err(),
            "double registration is refused"
        );
        let buckets = DURATION_BUCKETS.last().copied();
        assert_eq!(buckets, Some(300.0));
    }
}
