//! The bounded set of `user` label values and the metric handles cached per user, so a request
//! of an already-seen user costs hash lookups, never an allocation.
//!
//! At most `max_users` user ids are label values at a time; later ones share the `other`
//! bucket (counted). Users idle longer than the TTL (traffic time) lose their series and free
//! their slot. The special values (`anonymous`, `invalid`, …) are always available and do not
//! count against the cap.
use super::fast_map::FastMap;

use prometheus::{Gauge, IntCounter};

use super::{
    apikey::UserRecord,
    labels::{
        AUTH_LABELS, Auth, CLIENT_LABELS, Client, ModelTable, STATUS_CLASS_LABELS,
        TOKEN_DIRECTION_LABELS, TOKEN_SOURCE_LABELS,
    },
};
use crate::metrics::openwebui::OpenWebuiMetrics;
use crate::segment::Timestamp;
use crate::usage::Usage;

/// User label values that are not user ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// No credential at all.
    Anonymous,
    /// A token that failed verification (or that Open WebUI rejected): never its claimed id.
    Invalid,
    /// An `sk-` key not in Open WebUI's database.
    UnknownApiKey,
    /// An `sk-` key while no database is configured.
    UnresolvedApiKey,
    /// Users beyond `max_users`.
    Other,
}

impl Special {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Invalid => "invalid",
            Self::UnknownApiKey => "unknown_api_key",
            Self::UnresolvedApiKey => "unresolved_api_key",
            Self::Other => "other",
        }
    }
    const fn index(self) -> usize {
        self as usize
    }
}

/// Who a request or answer is attributed to, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef<'a> {
    Id(&'a str),
    Special(Special),
}

/// Who a WebSocket answer is attributed to, owned (kept across events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedUser {
    Id(Box<str>),
    Special(Special),
}

impl OwnedUser {
    pub fn as_ref(&self) -> UserRef<'_> {
        match self {
            Self::Id(id) => UserRef::Id(id),
            Self::Special(s) => UserRef::Special(*s),
        }
    }
}

impl From<UserRef<'_>> for OwnedUser {
    fn from(u: UserRef<'_>) -> Self {
        match u {
            UserRef::Id(id) => Self::Id(id.into()),
            UserRef::Special(s) => Self::Special(s),
        }
    }
}

/// Key of a cached `openwebui_chat_completions_total` child, label indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompletionKey {
    pub model: u32,
    pub auth: u8,
    pub client: u8,
    pub stream: bool,
    pub status_class: u8,
}

/// Key of a cached `openwebui_llm_tokens_total` child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub model: u32,
    /// 0 input, 1 output.
    pub direction: u8,
    /// 0 http, 1 websocket.
    pub source: u8,
}

/// Metric handles of one user label value, created on first use.
pub struct UserEntry {
    label: Box<str>,
    /// `[auth][client]`.
    requests: [[Option<IntCounter>; 2]; 4],
    bytes: [IntCounter; 2],
    last_seen_gauge: Gauge,
    last_seen: Timestamp,
    completions: Vec<(CompletionKey, IntCounter)>,
    tokens: Vec<(TokenKey, IntCounter)>,
    /// `openwebui_chat_completions_without_usage_total` children by (model, source).
    without_usage: Vec<((u32, u8), IntCounter)>,
    /// Label values of `openwebui_user_info` when exported.
    info: Option<[Box<str>; 3]>,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Account details (`info`) are personal data: never in Debug output.
        f.debug_struct("UserEntry")
            .field("label", &self.label)
            .field("last_seen", &self.last_seen)
            .field("completion_series", &self.completions.len())
            .field("token_series", &self.tokens.len())
            .finish()
    }
}

impl UserEntry {
    fn new(label: &str, m: &OpenWebuiMetrics) -> Self {
        Self {
            label: label.into(),
            requests: Default::default(),
            bytes: [
                m.user_bytes.with_label_values(&[label, "request"]),
                m.user_bytes.with_label_values(&[label, "response"]),
            ],
            last_seen_gauge: m.user_last_seen.with_label_values(&[label]),
            last_seen: Timestamp::default(),
            completions: Vec::new(),
            tokens: Vec::new(),
            without_usage: Vec::new(),
            info: None,
        }
    }

    pub fn requests(&mut self, m: &OpenWebuiMetrics, auth: Auth, client: Client) -> &IntCounter {
        let label = &self.label;
        self.requests[usize::from(auth.index())][client as usize].get_or_insert_with(|| {
            m.user_requests
                .with_label_values(&[label, auth.as_str(), client.as_str()])
        })
    }

    pub fn add_bytes(&self, request: u64, response: u64) {
        self.bytes[0].inc_by(request);
        self.bytes[1].inc_by(response);
    }

    pub fn seen(&mut self, ts: Timestamp) {
        if ts > self.last_seen {
            self.last_seen = ts;
            self.last_seen_gauge.set(ts.as_secs_f64());
        }
    }

    /// The completions child for `key` (created on first use).
    pub fn completion(
        &mut self,
        m: &OpenWebuiMetrics,
        key: CompletionKey,
        model: &str,
    ) -> &IntCounter {
        if let Some(i) = self.completions.iter().position(|(k, _)| *k == key) {
            return &self.completions[i].1;
        }
        let c = m
            .chat_completions
            .with_label_values(&completion_labels(&self.label, model, &key));
        self.completions.push((key, c));
        &self.completions.last().expect("just pushed").1
    }

    pub fn tokens(&mut self, m: &OpenWebuiMetrics, key: TokenKey, model: &str) -> &IntCounter {
        if let Some(i) = self.tokens.iter().position(|(k, _)| *k == key) {
            return &self.tokens[i].1;
        }
        let c = m
            .llm_tokens
            .with_label_values(&token_labels(&self.label, model, &key));
        self.tokens.push((key, c));
        &self.tokens.last().expect("just pushed").1
    }

    /// Adds an answer's token counts under `model` (index, name) and `source` (0 http,
    /// 1 websocket).
    pub fn add_usage(
        &mut self,
        m: &OpenWebuiMetrics,
        model: u32,
        source: u8,
        usage: Usage,
        model_name: &str,
    ) {
        for (direction, n) in [(0, usage.prompt_tokens), (1, usage.completion_tokens)] {
            let key = TokenKey {
                model,
                direction,
                source,
            };
            self.tokens(m, key, model_name).inc_by(n);
        }
    }

    /// The `openwebui_chat_completions_without_usage_total` child of `model` (index, name)
    /// and `source` (0 http, 1 websocket).
    pub fn without_usage(
        &mut self,
        m: &OpenWebuiMetrics,
        model: u32,
        source: u8,
        model_name: &str,
    ) -> &IntCounter {
        let key = (model, source & 1);
        if let Some(i) = self.without_usage.iter().position(|(k, _)| *k == key) {
            return &self.without_usage[i].1;
        }
        let c = m.completions_without_usage.with_label_values(&[
            &self.label,
            model_name,
            TOKEN_SOURCE_LABELS[usize::from(key.1)],
        ]);
        self.without_usage.push((key, c));
        &self.without_usage.last().expect("just pushed").1
    }

    /// Drop every series of this user; `models` names the model indexes of the keys.
    fn remove_series(&self, m: &OpenWebuiMetrics, models: &ModelTable) {
        let l: &str = &self.label;
        for (a, row) in self.requests.iter().enumerate() {
            for (c, child) in row.iter().enumerate() {
                if child.is_some() {
                    let _ =
                        m.user_requests
                            .remove_label_values(&[l, AUTH_LABELS[a], CLIENT_LABELS[c]]);
                }
            }
        }
        let _ = m.user_bytes.remove_label_values(&[l, "request"]);
        let _ = m.user_bytes.remove_label_values(&[l, "response"]);
        let _ = m.user_last_seen.remove_label_values(&[l]);
        for (k, _) in &self.completions {
            let _ = m.chat_completions.remove_label_values(&completion_labels(
                l,
                models.name(k.model),
                k,
            ));
        }
        for (k, _) in &self.tokens {
            let _ = m
                .llm_tokens
                .remove_label_values(&token_labels(l, models.name(k.model), k));
        }
        for ((model, source), _) in &self.without_usage {
            let _ = m.completions_without_usage.remove_label_values(&[
                l,
                models.name(*model),
                TOKEN_SOURCE_LABELS[usize::from(*source)],
            ]);
        }
        if let Some([name, email, role]) = &self.info {
            let _ = m.user_info.remove_label_values(&[l, name, email, role]);
        }
    }
}

fn completion_labels<'a>(user: &'a str, model: &'a str, k: &CompletionKey) -> [&'a str; 6] {
    [
        user,
        model,
        AUTH_LABELS[usize::from(k.auth)],
        CLIENT_LABELS[usize::from(k.client)],
        if k.stream { "true" } else { "false" },
        STATUS_CLASS_LABELS[usize::from(k.status_class)],
    ]
}

fn token_labels<'a>(user: &'a str, model: &'a str, k: &TokenKey) -> [&'a str; 4] {
    [
        user,
        model,
        TOKEN_DIRECTION_LABELS[usize::from(k.direction & 1)],
        TOKEN_SOURCE_LABELS[usize::from(k.source & 1)],
    ]
}

/// Caps of the user label set.
#[derive(Debug, Clone, Copy)]
pub struct UserLimits {
    pub max_users: usize,
    /// Seconds of traffic time without a request after which a user's series are dropped.
    pub ttl_secs: u64,
    /// Longest user id kept as a label value; longer ones fold into `other`.
    pub max_id_len: usize,
}

/// The user label table.
#[derive(Debug)]
pub struct UserTable {
    limits: UserLimits,
    ids: FastMap<Box<str>, UserEntry>,
    specials: [Option<UserEntry>; 5],
    /// Requests or answers folded into `other` because the table was full.
    pub folded: u64,
    pub evicted: u64,
}

impl UserTable {
    pub fn new(limits: UserLimits) -> Self {
        Self {
            limits,
            ids: FastMap::default(),
            specials: Default::default(),
            folded: 0,
            evicted: 0,
        }
    }

    /// Number of user ids currently tracked (specials excluded).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The entry of `user`, creating it (and its `user_info` series when `info` is given) on
    /// first sight; ids beyond the cap get the `other` entry.
    pub fn entry(
        &mut self,
        user: UserRef<'_>,
        m: &OpenWebuiMetrics,
        info: impl FnOnce(&str) -> Option<UserRecord>,
    ) -> &mut UserEntry {
        let special = match user {
            UserRef::Special(s) => s,
            UserRef::Id(id) if self.ids.contains_key(id) => {
                return self.ids.get_mut(id).expect("checked above");
            }
            UserRef::Id(id)
                if self.ids.len() < self.limits.max_users && id.len() <= self.limits.max_id_len =>
            {
                let mut entry = UserEntry::new(id, m);
                if let Some(r) = info(id) {
                    m.user_info
                        .with_label_values(&[id, &r.name, &r.email, &r.role])
                        .set(1);
                    entry.info = Some([r.name.into(), r.email.into(), r.role.into()]);
                }
                return self.ids.entry(id.into()).or_insert(entry);
            }
            UserRef::Id(_) => {
                self.folded += 1;
                Special::Other
            }
        };
        self.specials[special.index()].get_or_insert_with(|| UserEntry::new(special.as_str(), m))
    }

    /// Re-read `openwebui_user_info` of every tracked id after a database reload: changed
    /// accounts get their new labels, deleted ones lose the series.
    pub fn refresh_info(
        &mut self,
        m: &OpenWebuiMetrics,
        lookup: impl Fn(&str) -> Option<UserRecord>,
    ) {
        for (id, e) in &mut self.ids {
            let new = lookup(id);
            let unchanged = match (&e.info, &new) {
                (Some([n, em, r]), Some(rec)) => {
                    **n == *rec.name && **em == *rec.email && **r == *rec.role
                }
                (None, None) => true,
                _ => false,
            };
            if unchanged {
                continue;
            }
            if let Some([n, em, r]) = e.info.take() {
                let _ = m.user_info.remove_label_values(&[&**id, &*n, &*em, &*r]);
            }
            if let Some(r) = new {
                m.user_info
                    .with_label_values(&[&**id, &r.name, &r.email, &r.role])
                    .set(1);
                e.info = Some([r.name.into(), r.email.into(), r.role.into()]);
            }
        }
    }

    /// The label value `user` currently maps to (without creating anything).
    pub fn label_of<'s>(&'s self, user: UserRef<'s>) -> &'s str {
        match user {
            UserRef::Id(id) if self.ids.contains_key(id) => id,
            UserRef::Id(_) => Special::Other.as_str(),
            UserRef::Special(s) => s.as_str(),
        }
    }

    /// Drop the series of ids idle since before `now - ttl`. Returns how many were dropped.
    pub fn expire(&mut self, now: Timestamp, m: &OpenWebuiMetrics, models: &ModelTable) -> usize {
        let ttl = self.limits.ttl_secs.saturating_mul(1_000_000_000);
        let before = self.ids.len();
        self.ids.retain(|_, e| {
            let keep = e.last_seen.as_nanos().saturating_add(ttl) > now.as_nanos();
            if !keep {
                e.remove_series(m, models);
            }
            keep
        });
        let dropped = before - self.ids.len();
        self.evicted += dropped as u64;
        dropped
    }
}
