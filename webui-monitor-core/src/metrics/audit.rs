//! The Prometheus view of the audit trail (`crate::audit`): the latest scripted
//! session-credential call of each user, for the dashboard's table and `top`, and a count of
//! such calls.
//!
//! * `openwebui_scripted_session_last_timestamp_seconds{user,auth,api,model,client_address}`:
//!   exactly one series per user, the labels of their latest event and its traffic time as the
//!   value. When the labels change, the old series is removed before the new one is set.
//! * `openwebui_scripted_session_calls_total{user,auth,api}`.
//!
//! Users are bounded like every other user series: at most `max_users` at a time (a later user
//! is counted in `webui_monitor_audit_limit_hits_total{limit="max_users"}` and gets no series),
//! ids longer than `max_user_id_len` are not label values (`limit="max_user_id_len"`), and a user
//! without an event for the user TTL (traffic time, swept on `Fact::Tick`) loses their series.
//! `client_address` is one address per user, so it adds no cardinality of its own.
use std::net::IpAddr;

use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry};

use super::util::{counter, counter_vec, register};
use crate::{
    openwebui::fast_map::{FastMap, entry_within},
    segment::Timestamp,
};

/// What the view keeps of one audit event (`crate::audit::AuditEvent`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed<'a> {
    pub(crate) user: &'a str,
    /// The user id was longer than `max_user_id_len` (`user` is its cut start).
    pub(crate) user_cut: bool,
    pub(crate) auth: &'static str,
    pub(crate) api: &'static str,
    pub(crate) model: &'a str,
    pub(crate) client_address: IpAddr,
    pub(crate) at: Timestamp,
}

/// The audit families.
#[derive(Debug, Clone)]
pub struct AuditMetrics {
    /// `openwebui_scripted_session_last_timestamp_seconds{user,auth,api,model,client_address}`.
    pub last: GaugeVec,
    /// `openwebui_scripted_session_calls_total{user,auth,api}`.
    pub calls: IntCounterVec,
    /// `webui_monitor_audit_events_total`: events recorded (queued or dropped).
    pub events: IntCounter,
    /// `webui_monitor_audit_limit_hits_total{limit}`: `max_queue` (event dropped before the
    /// shell wrote it), `max_users`, `max_user_id_len` (no series for the user).
    pub limit_hits: IntCounterVec,
    /// `webui_monitor_audit_users_evicted_total`: users whose series expired.
    pub users_evicted: IntCounter,
}

impl AuditMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            last: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "openwebui_scripted_session_last_timestamp_seconds",
                        "Traffic time of the user's latest model call made with a session JWT or cookie from a non-web-UI client, labelled with that call's credential kind, API, model and client address (one series per user).",
                    ),
                    &["user", "auth", "api", "model", "client_address"],
                )?,
            )?,
            calls: counter_vec(
                registry,
                "openwebui_scripted_session_calls_total",
                "Model calls made with a session JWT or cookie from a non-web-UI client, by user, credential kind and API.",
                &["user", "auth", "api"],
            )?,
            events: counter(
                registry,
                "webui_monitor_audit_events_total",
                "Audit events recorded (scripted session-credential model calls), queued or dropped.",
            )?,
            limit_hits: counter_vec(
                registry,
                "webui_monitor_audit_limit_hits_total",
                "What a cap of the audit trail cut: max_queue (event dropped before it was written), max_users and max_user_id_len (user without a series).",
                &["limit"],
            )?,
            users_evicted: counter(
                registry,
                "webui_monitor_audit_users_evicted_total",
                "Users whose scripted-session series expired after the user TTL without an event.",
            )?,
        })
    }
}

/// The labels of a user's gauge series (user excluded), and the series' handle.
#[derive(Debug)]
struct Latest {
    auth: &'static str,
    api: &'static str,
    model: Box<str>,
    /// `address` as its label value.
    client_address: Box<str>,
    address: Option<IpAddr>,
    /// The series of these labels, once set.
    gauge: Option<Gauge>,
}

#[derive(Debug)]
struct Entry {
    latest: Latest,
    last: Timestamp,
    /// `calls_total` children by (auth, api).
    calls: Vec<((&'static str, &'static str), IntCounter)>,
}

/// The per-user series, bounded (module documentation).
#[derive(Debug)]
pub(crate) struct AuditView {
    metrics: AuditMetrics,
    users: FastMap<Box<str>, Entry>,
    max_users: usize,
    ttl_secs: u64,
}

impl AuditView {
    pub(crate) fn new(metrics: AuditMetrics, max_users: usize, ttl_secs: u64) -> Self {
        Self {
            metrics,
            users: FastMap::default(),
            max_users,
            ttl_secs,
        }
    }

    pub(crate) fn set_limits(&mut self, max_users: usize, ttl_secs: u64) {
        self.max_users = max_users;
        self.ttl_secs = ttl_secs;
    }

    pub(crate) fn queue_dropped(&self) {
        self.metrics
            .limit_hits
            .with_label_values(&["max_queue"])
            .inc();
    }

    /// One event: its user's calls counter and latest series (none for a cut user id).
    pub(crate) fn observe(&mut self, event: Observed<'_>) {
        let at = event.at;
        let m = &self.metrics;
        m.events.inc();
        if event.user_cut {
            m.limit_hits.with_label_values(&["max_user_id_len"]).inc();
            return;
        }
        let user: &str = event.user;
        let Some(entry) = entry_within(&mut self.users, user, self.max_users, || Entry {
            latest: Latest {
                auth: "",
                api: "",
                model: "".into(),
                client_address: "".into(),
                address: None,
                gauge: None,
            },
            last: Timestamp::default(),
            calls: Vec::new(),
        }) else {
            m.limit_hits.with_label_values(&["max_users"]).inc();
            return;
        };
        let key = (event.auth, event.api);
        match entry.calls.iter().find(|(k, _)| *k == key) {
            Some((_, c)) => c.inc(),
            None => {
                let c = m.calls.with_label_values(&[user, event.auth, event.api]);
                c.inc();
                entry.calls.push((key, c));
            }
        }
        // Events of one user arrive in traffic order per connection, not across connections:
        // the latest stays the latest.
        if at < entry.last {
            return;
        }
        entry.last = at;
        let latest = &mut entry.latest;
        let same = latest.auth == event.auth
            && latest.api == event.api
            && *latest.model == *event.model
            && latest.address == Some(event.client_address);
        if !same {
            if !latest.auth.is_empty() {
                let _ = m.last.remove_label_values(&gauge_labels(user, latest));
            }
            *latest = Latest {
                auth: event.auth,
                api: event.api,
                model: event.model.into(),
                client_address: event.client_address.to_string().into(),
                address: Some(event.client_address),
                gauge: None,
            };
        }
        let gauge = match &latest.gauge {
            Some(gauge) => gauge,
            None => latest
                .gauge
                .insert(m.last.with_label_values(&gauge_labels(user, latest))),
        };
        gauge.set(at.as_secs_f64());
    }

    /// Drops the series of users without an event since before `now - ttl`.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        let ttl = self.ttl_secs.saturating_mul(1_000_000_000);
        let m = &self.metrics;
        let before = self.users.len();
        self.users.retain(|user, e| {
            let keep = e.last.as_nanos().saturating_add(ttl) > now.as_nanos();
            if !keep {
                let _ = m.last.remove_label_values(&gauge_labels(user, &e.latest));
                for ((auth, api), _) in &e.calls {
                    let _ = m.calls.remove_label_values(&[&**user, auth, api]);
                }
            }
            keep
        });
        m.users_evicted.inc_by((before - self.users.len()) as u64);
    }
}

fn gauge_labels<'a>(user: &'a str, l: &'a Latest) -> [&'a str; 5] {
    [user, l.auth, l.api, &l.model, &l.client_address]
}
