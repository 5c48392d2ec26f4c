//! [`PrometheusSink`]: attribution's [`Fact`]s applied to the `openwebui_*` families.
//!
//! Label values are bounded here: user ids through the [`UserTable`](super::user_series) (a
//! cap with an `other` bucket, idle expiry on [`Fact::Tick`]), API-key fingerprints by
//! `max_api_key_info`. Models arrive bounded from attribution. Every label handle is created
//! once and cached (per route and status, per auth result, per user and model), so a fact about
//! a known series costs lookups and an atomic add, never an allocation.
//!
//! Spend is priced here, from each answer's [`Fact::Usage`] and the [`Prices`] table: its
//! series are per user, so they share the user table's cap, `other` bucket and expiry with
//! the user's token series (a separate sink would keep a second, disagreeing user table).
use std::sync::Arc;

use prometheus::{Histogram, IntCounter};

use super::{
    openwebui::OpenWebuiMetrics,
    user_series::{CompletionKey, TokenKey, UserLimits, UserTable},
};
use crate::{
    openwebui::{
        Directory, Fingerprint, SemanticsConfig, UserRecord,
        fact::{Fact, FactSink, Model, Signal},
        fast_map::FastMap,
        identity::UserRef,
        labels::{AuthResult, Client, status_label},
    },
    pricing::{ModelPrice, Prices},
    segment::Timestamp,
    usage::Usage,
};

/// Per-request label handles, keyed by (method, route, status).
type HttpSeries = FastMap<(Label, Label, u16), (IntCounter, Histogram)>;

/// A label value from the label tables, hashed and compared by address: the key of a cached
/// handle costs no string hashing. Two addresses of the same text are two keys whose handles
/// are the same child (`with_label_values` finds it by text), so nothing is counted apart, and
/// the keys stay as few as the tables' entries.
#[derive(Debug, Clone, Copy)]
struct Label(&'static str);

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Label {}

impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state);
    }
}

/// What the sink cut; each cut is also in `webui_monitor_openwebui_limit_hits_total`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCounters {
    /// API keys not exported in `openwebui_api_key_info` (`max_api_key_info`).
    pub api_key_info_dropped: u64,
}

/// A model's price, or its `openwebui_llm_unpriced_tokens_total` child.
#[derive(Debug, Clone)]
enum Priced {
    Price(ModelPrice),
    Unpriced(IntCounter),
}

/// Applies [`Fact`]s to the `openwebui_*` families.
#[derive(Debug)]
pub struct PrometheusSink {
    metrics: OpenWebuiMetrics,
    users: UserTable,
    /// Export `openwebui_user_info` (personal data) from `directory`.
    export_user_info: bool,
    /// The latest database snapshot (kept so turning `export_user_info` on can fill it in).
    directory: Option<Arc<Directory>>,
    max_api_key_info: usize,
    http: HttpSeries,
    auth_results: FastMap<AuthResult, IntCounter>,
    /// `openwebui_client_signals_total` children, `[client][signal]`, created on first use.
    signal_counters: [[Option<IntCounter>; 4]; 2],
    /// Fingerprint → the user label exported with it.
    /// Fingerprint → the user label exported with it and the traffic time the key was last
    /// used (keys idle for the user TTL leave `openwebui_api_key_info`).
    api_keys_exported: FastMap<Fingerprint, (Box<str>, Timestamp)>,
    /// Traffic time of the latest request (an API key's use is that request's).
    clock: Timestamp,
    key_ttl_secs: u64,
    prices: Arc<Prices>,
    /// Each model's price by model id, looked up once.
    model_prices: Vec<Option<Priced>>,
    /// Each model's `openwebui_time_to_first_token_seconds` child by model id.
    ttft: Vec<Option<Histogram>>,
    /// The value `openwebui_tracked_users` was last set to.
    tracked: usize,
    pub counters: SinkCounters,
}

impl PrometheusSink {
    /// The sink's caps (`max_users`, `user_ttl_secs`, `max_user_id_len`, `max_api_key_info`)
    /// and `export_user_info` come from `config`; spend is priced from `prices`.
    pub fn new(metrics: OpenWebuiMetrics, config: &SemanticsConfig, prices: Arc<Prices>) -> Self {
        Self {
            metrics,
            users: UserTable::new(UserLimits {
                max_users: config.max_users,
                ttl_secs: config.user_ttl_secs,
                max_id_len: config.max_user_id_len,
            }),
            export_user_info: config.export_user_info,
            directory: None,
            max_api_key_info: config.max_api_key_info,
            http: FastMap::default(),
            auth_results: FastMap::default(),
            signal_counters: Default::default(),
            api_keys_exported: FastMap::default(),
            clock: Timestamp::default(),
            key_ttl_secs: config.user_ttl_secs,
            prices,
            model_prices: Vec::new(),
            // The first models' handles without growing the vector on the request path.
            ttft: Vec::with_capacity(16),
            tracked: 0,
            counters: SinkCounters::default(),
        }
    }

    /// New settings while running (the daemon's SIGHUP): the user table's caps,
    /// `max_api_key_info`, and whether account details are exported (turned off, every
    /// `openwebui_user_info` series goes; turned on, they come from the current snapshot).
    /// Tracked users and exported series are kept.
    pub fn reconfigure(&mut self, config: &SemanticsConfig, prices: Arc<Prices>) {
        self.prices = prices;
        self.model_prices.clear();
        self.users.set_limits(UserLimits {
            max_users: config.max_users,
            ttl_secs: config.user_ttl_secs,
            max_id_len: config.max_user_id_len,
        });
        self.max_api_key_info = config.max_api_key_info;
        self.key_ttl_secs = config.user_ttl_secs;
        if self.export_user_info != config.export_user_info {
            self.export_user_info = config.export_user_info;
            self.refresh_info();
        }
    }

    /// Re-read the account details of every tracked user (none unless exported).
    fn refresh_info(&mut self) {
        let dir = self.directory.as_deref().filter(|_| self.export_user_info);
        self.users
            .refresh_info(&self.metrics, |id| dir.and_then(|d| d.user(id)).cloned());
    }

    pub fn metrics(&self) -> &OpenWebuiMetrics {
        &self.metrics
    }

    /// User ids with their own label value now.
    pub fn tracked_users(&self) -> usize {
        self.users.len()
    }

    fn limit_hit(&self, limit: &str) {
        self.metrics.limit_hits.with_label_values(&[limit]).inc();
    }

    fn apply(&mut self, fact: Fact<'_>) {
        match fact {
            Fact::Directory(directory) => {
                self.directory = directory.cloned();
                if self.export_user_info {
                    self.refresh_info();
                }
            }
            Fact::Request {
                user,
                auth,
                result,
                client,
                signals,
                method,
                route,
                status,
                duration,
                request_bytes,
                response_bytes,
                at,
                ..
            } => {
                // Key by the label the status gets, so odd statuses cannot multiply entries.
                let key_status = match status {
                    Some(s @ 100..=599) => s,
                    Some(_) => 1,
                    None => 0,
                };
                let m = &self.metrics;
                let (requests, histogram) = self
                    .http
                    .entry((Label(method), Label(route), key_status))
                    .or_insert_with(|| {
                        let mut buf = [0u8; 3];
                        let s = status_label(status, &mut buf);
                        (
                            m.http_requests.with_label_values(&[method, route, s]),
                            m.http_duration.with_label_values(&[method, route]),
                        )
                    });
                requests.inc();
                if let Some(seconds) = duration {
                    histogram.observe(seconds);
                }
                self.auth_results
                    .entry(result)
                    .or_insert_with(|| m.auth.with_label_values(&[result.as_str()]))
                    .inc();
                for signal in signals.iter() {
                    self.signal_counters[client.index()][signal.index()]
                        .get_or_insert_with(|| signal_counter(m, client, signal))
                        .inc();
                }
                let folded = self.users.folded;
                let dir = self.directory.as_deref().filter(|_| self.export_user_info);
                let entry = self
                    .users
                    .entry(user, m, |uid| dir.and_then(|d| d.user(uid)).cloned());
                entry.requests(m, auth, client).inc();
                entry.add_bytes(request_bytes, response_bytes);
                entry.seen(at);
                self.clock = self.clock.max(at);
                if self.users.folded != folded {
                    self.limit_hit("max_users");
                }
            }
            Fact::ApiKeySeen { fingerprint, user } => self.export_api_key(fingerprint, user),
            Fact::UserSeen { user, at } => self.users.entry(user, &self.metrics, no_info).seen(at),
            Fact::Completion {
                user,
                model,
                api,
                auth,
                client,
                stream,
                status,
            } => {
                let key = CompletionKey {
                    model: model.id,
                    api,
                    auth,
                    client,
                    stream,
                    status,
                };
                let m = &self.metrics;
                let entry = self.users.entry(user, m, no_info);
                entry.completion(m, key, model.name).inc();
            }
            Fact::Tokens {
                user,
                model,
                direction,
                source,
                count,
            } => {
                let key = TokenKey {
                    model: model.id,
                    direction,
                    source,
                };
                let m = &self.metrics;
                let entry = self.users.entry(user, m, no_info);
                entry.tokens(m, key, model.name).inc_by(count);
            }
            Fact::TokenDetail {
                user,
                model,
                kind,
                source,
                count,
            } => {
                let m = &self.metrics;
                let entry = self.users.entry(user, m, no_info);
                entry.detail(m, model, kind, source).inc_by(count);
            }
            Fact::CompletionWithoutUsage {
                user,
                model,
                source,
            } => {
                let m = &self.metrics;
                let entry = self.users.entry(user, m, no_info);
                entry.without_usage(m, model, source).inc();
            }
            Fact::FirstToken { model, seconds } => {
                let i = model.id as usize;
                if self.ttft.len() <= i {
                    self.ttft.resize(i + 1, None);
                }
                let ttft = &self.metrics.ttft;
                self.ttft[i]
                    .get_or_insert_with(|| ttft.with_label_values(&[model.name]))
                    .observe(seconds);
            }
            Fact::ModelRetired { model } => {
                let m = &self.metrics;
                self.users.retire_model(m, model.id);
                let _ = m.ttft.remove_label_values(&[model.name]);
                if let Some(ttft) = self.ttft.get_mut(model.id as usize) {
                    *ttft = None;
                }
                let _ = m.unpriced_tokens.remove_label_values(&[model.name]);
                if let Some(price) = self.model_prices.get_mut(model.id as usize) {
                    *price = None;
                }
            }
            Fact::LimitHit(limit) => self.limit_hit(limit.as_str()),
            Fact::Usage {
                user, model, usage, ..
            } => self.spend(user, model, &usage),
            // Its parts are already counted: `Request`, `Completion`, `Tokens`.
            Fact::ModelCall { .. } => {}
            Fact::Tick { now } => {
                let dropped = self.users.expire(now, &self.metrics);
                self.metrics.users_evicted.inc_by(dropped as u64);
                self.expire_api_keys(now);
            }
        }
        let tracked = self.users.len();
        if tracked != self.tracked {
            self.tracked = tracked;
            self.metrics.tracked_users.set(tracked as f64);
        }
    }

    /// Adds what `usage` cost to the user's spend, or its tokens to the unpriced count.
    fn spend(&mut self, user: UserRef<'_>, model: Model<'_>, usage: &Usage) {
        let i = model.id as usize;
        if self.model_prices.len() <= i {
            self.model_prices.resize(i + 1, None);
        }
        let prices = &self.prices;
        let m = &self.metrics;
        let priced = self.model_prices[i].get_or_insert_with(|| match prices.get(model.name) {
            Some(price) => Priced::Price(*price),
            None => Priced::Unpriced(m.unpriced_tokens.with_label_values(&[model.name])),
        });
        match priced {
            Priced::Price(price) => {
                let cost = price.cost(usage);
                let entry = self.users.entry(user, m, no_info);
                entry.spend(m, model).inc_by(cost);
            }
            Priced::Unpriced(tokens) => tokens.inc_by(usage.input.saturating_add(usage.output)),
        }
    }

    /// Keys unused for the user TTL leave `openwebui_api_key_info`, as their owners' series do.
    fn expire_api_keys(&mut self, now: Timestamp) {
        let ttl = self.key_ttl_secs.saturating_mul(1_000_000_000);
        let info = &self.metrics.api_key_info;
        self.api_keys_exported.retain(|fp, (label, used)| {
            let keep = used.as_nanos().saturating_add(ttl) > now.as_nanos();
            if !keep {
                let _ = info.remove_label_values(&[fp.as_str(), label]);
            }
            keep
        });
    }

    fn export_api_key(&mut self, fp: Fingerprint, user: UserRef<'_>) {
        let label = self.users.label_of(user);
        let now = self.clock;
        let full = self.api_keys_exported.len() >= self.max_api_key_info;
        match self.api_keys_exported.get_mut(&fp) {
            Some((exported, used)) if **exported == *label => {
                *used = (*used).max(now);
                return;
            }
            // The key's owner label changed (database loaded, user folded or evicted).
            Some((exported, _)) => {
                let _ = self
                    .metrics
                    .api_key_info
                    .remove_label_values(&[fp.as_str(), exported]);
            }
            None if full => {
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
        self.api_keys_exported.insert(fp, (label.into(), now));
    }
}

impl FactSink for PrometheusSink {
    fn fact(&mut self, fact: Fact<'_>) {
        self.apply(fact);
    }
}

/// Account details are exported only for users first seen in a request.
fn no_info(_: &str) -> Option<UserRecord> {
    None
}

fn signal_counter(m: &OpenWebuiMetrics, client: Client, signal: Signal) -> IntCounter {
    m.client_signals
        .with_label_values(&[client.as_str(), signal.as_str()])
}

#[cfg(test)]
#[path = "openwebui_sink_tests.rs"]
mod tests;
