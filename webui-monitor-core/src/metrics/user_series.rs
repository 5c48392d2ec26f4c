//! The bounded set of `user` label values and the metric handles cached per user, so a fact
//! about an already-seen user costs hash lookups, never an allocation.
//!
//! At most `max_users` user ids are label values at a time; later ones share the `other`
//! bucket (counted). Users idle longer than the TTL (traffic time) lose their series and free
//! their slot. The special values (`anonymous`, `invalid`, …) are always available and do not
//! count against the cap. Both rules bound the exposition's cardinality, and with it the only
//! per-user memory of the monitor (attribution keeps none; see `openwebui::fact`).
use hashbrown::hash_map::EntryRef;
use prometheus::{Counter, Gauge, IntCounter};

use super::openwebui::OpenWebuiMetrics;
use crate::{
    openwebui::{
        Auth, Client, StatusClass, UserRecord,
        fact::{Model, TokenDetail, TokenDirection, TokenSource},
        fast_map::FastMap,
        identity::{Special, UserRef},
        labels::{AUTH_LABELS, CLIENT_LABELS},
        route::ApiKind,
    },
    segment::Timestamp,
};

/// Key of a cached `openwebui_chat_completions_total` child (the model by its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct CompletionKey {
    pub(super) model: u32,
    pub(super) api: ApiKind,
    pub(super) auth: Auth,
    pub(super) client: Client,
    pub(super) stream: bool,
    pub(super) status: StatusClass,
}

/// Key of a cached `openwebui_llm_tokens_total` child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TokenKey {
    pub(super) model: u32,
    pub(super) direction: TokenDirection,
    pub(super) source: TokenSource,
}

/// A cached child, with the model name its labels were made with (to remove it by).
#[derive(Debug)]
struct Series<K> {
    key: K,
    model: Box<str>,
    counter: IntCounter,
}

/// The counter of `key` in `series`, created with `make(model name)` on first use.
fn child<'s, K: PartialEq + Copy>(
    series: &'s mut Vec<Series<K>>,
    key: K,
    model: &str,
    make: impl FnOnce() -> IntCounter,
) -> &'s IntCounter {
    let i = match series.iter().position(|s| s.key == key) {
        Some(i) => i,
        None => {
            series.push(Series {
                key,
                model: model.into(),
                counter: make(),
            });
            series.len() - 1
        }
    };
    &series[i].counter
}

/// Metric handles of one user label value, created on first use.
pub(super) struct UserEntry {
    label: Box<str>,
    /// `[auth][client]`.
    requests: [[Option<IntCounter>; 2]; 4],
    bytes: [IntCounter; 2],
    last_seen_gauge: Gauge,
    last_seen: Timestamp,
    completions: Vec<Series<CompletionKey>>,
    tokens: Vec<Series<TokenKey>>,
    /// `openwebui_llm_token_details_total` children by (model, kind, source).
    details: Vec<Series<(u32, TokenDetail, TokenSource)>>,
    /// `openwebui_chat_completions_without_usage_total` children by (model, source).
    without_usage: Vec<Series<(u32, TokenSource)>>,
    /// `openwebui_llm_spend_total` children by model, with the model's name.
    spend: Vec<(u32, Box<str>, Counter)>,
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
            details: Vec::new(),
            without_usage: Vec::new(),
            spend: Vec::new(),
            info: None,
        }
    }

    pub(super) fn requests(
        &mut self,
        m: &OpenWebuiMetrics,
        auth: Auth,
        client: Client,
    ) -> &IntCounter {
        let label = &self.label;
        self.requests[auth.index()][client.index()].get_or_insert_with(|| {
            m.user_requests
                .with_label_values(&[label, auth.as_str(), client.as_str()])
        })
    }

    pub(super) fn add_bytes(&self, request: u64, response: u64) {
        self.bytes[0].inc_by(request);
        self.bytes[1].inc_by(response);
    }

    pub(super) fn seen(&mut self, ts: Timestamp) {
        if ts > self.last_seen {
            self.last_seen = ts;
            self.last_seen_gauge.set(ts.as_secs_f64());
        }
    }

    /// The completions child for `key` (created on first use).
    pub(super) fn completion(
        &mut self,
        m: &OpenWebuiMetrics,
        key: CompletionKey,
        model: &str,
    ) -> &IntCounter {
        let label = &self.label;
        child(&mut self.completions, key, model, || {
            m.chat_completions
                .with_label_values(&completion_labels(label, model, &key))
        })
    }

    pub(super) fn tokens(
        &mut self,
        m: &OpenWebuiMetrics,
        key: TokenKey,
        model: &str,
    ) -> &IntCounter {
        let label = &self.label;
        child(&mut self.tokens, key, model, || {
            m.llm_tokens
                .with_label_values(&token_labels(label, model, &key))
        })
    }

    /// The `openwebui_llm_token_details_total` child of `model`, `kind` and `source`.
    pub(super) fn detail(
        &mut self,
        m: &OpenWebuiMetrics,
        model: Model<'_>,
        kind: TokenDetail,
        source: TokenSource,
    ) -> &IntCounter {
        let label = &self.label;
        child(
            &mut self.details,
            (model.id, kind, source),
            model.name,
            || {
                m.llm_token_details.with_label_values(&[
                    label,
                    model.name,
                    kind.as_str(),
                    source.as_str(),
                ])
            },
        )
    }

    /// The `openwebui_chat_completions_without_usage_total` child of `model` and `source`.
    pub(super) fn without_usage(
        &mut self,
        m: &OpenWebuiMetrics,
        model: Model<'_>,
        source: TokenSource,
    ) -> &IntCounter {
        let label = &self.label;
        child(
            &mut self.without_usage,
            (model.id, source),
            model.name,
            || {
                m.completions_without_usage
                    .with_label_values(&[label, model.name, source.as_str()])
            },
        )
    }

    /// The `openwebui_llm_spend_total` child of `model`.
    pub(super) fn spend(&mut self, m: &OpenWebuiMetrics, model: Model<'_>) -> &Counter {
        let i = match self.spend.iter().position(|(id, ..)| *id == model.id) {
            Some(i) => i,
            None => {
                let counter = m.llm_spend.with_label_values(&[&self.label, model.name]);
                self.spend.push((model.id, model.name.into(), counter));
                self.spend.len() - 1
            }
        };
        &self.spend[i].2
    }

    /// Drop this user's series of model `id` (retired: the index may name another model next).
    fn retire_model(&mut self, m: &OpenWebuiMetrics, id: u32) {
        let l: &str = &self.label;
        self.completions.retain(|s| {
            let keep = s.key.model != id;
            if !keep {
                let _ = m
                    .chat_completions
                    .remove_label_values(&completion_labels(l, &s.model, &s.key));
            }
            keep
        });
        self.tokens.retain(|s| {
            let keep = s.key.model != id;
            if !keep {
                let _ = m
                    .llm_tokens
                    .remove_label_values(&token_labels(l, &s.model, &s.key));
            }
            keep
        });
        self.details.retain(|s| {
            let (model, kind, source) = s.key;
            let keep = model != id;
            if !keep {
                let _ = m.llm_token_details.remove_label_values(&[
                    l,
                    &s.model,
                    kind.as_str(),
                    source.as_str(),
                ]);
            }
            keep
        });
        self.without_usage.retain(|s| {
            let keep = s.key.0 != id;
            if !keep {
                let _ = m.completions_without_usage.remove_label_values(&[
                    l,
                    &s.model,
                    s.key.1.as_str(),
                ]);
            }
            keep
        });
        self.spend.retain(|(model, name, _)| {
            let keep = *model != id;
            if !keep {
                let _ = m.llm_spend.remove_label_values(&[l, name]);
            }
            keep
        });
    }

    /// Drop every series of this user.
    fn remove_series(&self, m: &OpenWebuiMetrics) {
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
        for s in &self.completions {
            let _ = m
                .chat_completions
                .remove_label_values(&completion_labels(l, &s.model, &s.key));
        }
        for s in &self.tokens {
            let _ = m
                .llm_tokens
                .remove_label_values(&token_labels(l, &s.model, &s.key));
        }
        for s in &self.details {
            let (_, kind, source) = s.key;
            let _ = m.llm_token_details.remove_label_values(&[
                l,
                &s.model,
                kind.as_str(),
                source.as_str(),
            ]);
        }
        for s in &self.without_usage {
            let _ =
                m.completions_without_usage
                    .remove_label_values(&[l, &s.model, s.key.1.as_str()]);
        }
        for (_, model, _) in &self.spend {
            let _ = m.llm_spend.remove_label_values(&[l, model]);
        }
        if let Some([name, email, role]) = &self.info {
            let _ = m.user_info.remove_label_values(&[l, name, email, role]);
        }
    }
}

fn completion_labels<'a>(user: &'a str, model: &'a str, k: &CompletionKey) -> [&'a str; 7] {
    [
        user,
        model,
        k.api.as_str(),
        k.auth.as_str(),
        k.client.as_str(),
        if k.stream { "true" } else { "false" },
        k.status.as_str(),
    ]
}

fn token_labels<'a>(user: &'a str, model: &'a str, k: &TokenKey) -> [&'a str; 4] {
    [user, model, k.direction.as_str(), k.source.as_str()]
}

/// Caps of the user label set.
#[derive(Debug, Clone, Copy)]
pub(super) struct UserLimits {
    pub(super) max_users: usize,
    /// Seconds of traffic time without a request after which a user's series are dropped.
    pub(super) ttl_secs: u64,
    /// Longest user id kept as a label value; longer ones fold into `other`.
    pub(super) max_id_len: usize,
}

/// The user label table.
///
/// Entries live in `slots`, found by id through `ids`. The facts of one exchange name the
/// same user one after another (request, completion, tokens, spend), so the slot of the last
/// id looked up is tried first: a comparison of the id instead of hashing it again.
#[derive(Debug)]
pub(super) struct UserTable {
    limits: UserLimits,
    /// Id → its index in `slots`.
    ids: FastMap<Box<str>, usize>,
    /// Entries of tracked ids (`None`: free, listed in `free`).
    slots: Vec<Option<UserEntry>>,
    free: Vec<usize>,
    /// The slot of the id looked up last.
    last: Option<usize>,
    specials: [Option<UserEntry>; 5],
    /// Facts folded into `other` because the table was full (or the id too long).
    pub(super) folded: u64,
    pub(super) evicted: u64,
}

impl UserTable {
    pub(super) fn new(limits: UserLimits) -> Self {
        Self {
            limits,
            ids: FastMap::default(),
            // The first few entries without growing the vector on the request path.
            slots: Vec::with_capacity(limits.max_users.min(16)),
            free: Vec::new(),
            last: None,
            specials: Default::default(),
            folded: 0,
            evicted: 0,
        }
    }

    /// Number of user ids currently tracked (specials excluded).
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The entry of `user`, creating it (and its `user_info` series when `info` is given) on
    /// first sight; ids beyond the cap get the `other` entry.
    pub(super) fn entry(
        &mut self,
        user: UserRef<'_>,
        m: &OpenWebuiMetrics,
        info: impl FnOnce(&str) -> Option<UserRecord>,
    ) -> &mut UserEntry {
        let special = match user {
            UserRef::Special(s) => s,
            UserRef::Id(id) => match self.slot_of(id, m, info) {
                Some(i) => {
                    self.last = Some(i);
                    return self.slots[i]
                        .as_mut()
                        .expect("a tracked id's slot is in use");
                }
                None => {
                    self.folded += 1;
                    Special::Other
                }
            },
        };
        self.specials[special.index()].get_or_insert_with(|| UserEntry::new(special.as_str(), m))
    }

    /// The slot of `id`, given one (with its `user_info` series when `info` has a record) if
    /// it is new and there is room; `None` when it has none.
    fn slot_of(
        &mut self,
        id: &str,
        m: &OpenWebuiMetrics,
        info: impl FnOnce(&str) -> Option<UserRecord>,
    ) -> Option<usize> {
        if let Some(i) = self.last
            && self.slots[i].as_ref().is_some_and(|e| *e.label == *id)
        {
            return Some(i);
        }
        let room = self.ids.len() < self.limits.max_users && id.len() <= self.limits.max_id_len;
        match self.ids.entry_ref(id) {
            EntryRef::Occupied(known) => Some(*known.get()),
            EntryRef::Vacant(slot) if room => {
                let mut entry = UserEntry::new(id, m);
                if let Some(r) = info(id) {
                    m.user_info
                        .with_label_values(&[id, &r.name, &r.email, &r.role])
                        .set(1);
                    entry.info = Some([r.name.into(), r.email.into(), r.role.into()]);
                }
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i] = Some(entry);
                        i
                    }
                    None => {
                        self.slots.push(Some(entry));
                        self.slots.len() - 1
                    }
                };
                slot.insert_with_key(id.into(), i);
                Some(i)
            }
            EntryRef::Vacant(_) => None,
        }
    }

    /// New caps from now on; users already tracked stay until they expire.
    pub(super) fn set_limits(&mut self, limits: UserLimits) {
        self.limits = limits;
    }

    /// Re-read `openwebui_user_info` of every tracked id after a database reload: changed
    /// accounts get their new labels, deleted ones lose the series.
    pub(super) fn refresh_info(
        &mut self,
        m: &OpenWebuiMetrics,
        lookup: impl Fn(&str) -> Option<UserRecord>,
    ) {
        for (id, &i) in &self.ids {
            let Some(e) = self.slots[i].as_mut() else {
                continue;
            };
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
    pub(super) fn label_of<'s>(&'s self, user: UserRef<'s>) -> &'s str {
        match user {
            UserRef::Id(id) if self.ids.contains_key(id) => id,
            UserRef::Id(_) => Special::Other.as_str(),
            UserRef::Special(s) => s.as_str(),
        }
    }

    /// Every user's series of model `id` go (the model was retired).
    pub(super) fn retire_model(&mut self, m: &OpenWebuiMetrics, id: u32) {
        for entry in self
            .slots
            .iter_mut()
            .chain(self.specials.iter_mut())
            .flatten()
        {
            entry.retire_model(m, id);
        }
    }

    /// Drop the series of ids idle since before `now - ttl`. Returns how many were dropped.
    pub(super) fn expire(&mut self, now: Timestamp, m: &OpenWebuiMetrics) -> usize {
        let ttl = self.limits.ttl_secs.saturating_mul(1_000_000_000);
        let before = self.ids.len();
        let (slots, free) = (&mut self.slots, &mut self.free);
        self.ids.retain(|_, &mut i| {
            let keep = slots[i]
                .as_ref()
                .is_some_and(|e| e.last_seen.as_nanos().saturating_add(ttl) > now.as_nanos());
            if !keep {
                if let Some(e) = slots[i].take() {
                    e.remove_series(m);
                }
                free.push(i);
            }
            keep
        });
        let dropped = before - self.ids.len();
        if dropped > 0 {
            self.last = None;
        }
        self.evicted += dropped as u64;
        dropped
    }
}
