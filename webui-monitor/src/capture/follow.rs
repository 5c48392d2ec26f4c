//! Following `capture.interfaces` as interfaces come and go.
//!
//! Container and pod interfaces are recreated, with new names, whenever their container
//! restarts (`vethXXXX`, `caliXXXX`, a compose network's `br-<id>`). The [`Follower`] keeps
//! the capture attached to every interface that matches the configuration: it is told the
//! links present ([`Follower::reconcile`], from [`links::dump`]) and every change after
//! ([`Follower::on_event`], from a [`links::LinkWatcher`]). It tracks interfaces by index, so a
//! renamed interface is re-examined under its new name and an interface recreated under its
//! old name is a new attachment. The kernel releases an interface's XDP and tcx programs when
//! the interface is deleted; the follower then only forgets its handles.
//!
//! Readiness: every configured name attached and every pattern matching at least one attached
//! interface ([`Follower::unmet`] lists what is not).
use std::collections::BTreeMap;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{
    Capture, CaptureConfig, CaptureError, TcAttachMode, XdpAttachMode,
    links::{self, Link, LinkEvent},
};
use crate::config::schema::is_interface_pattern;

/// Why an interface that matches is not attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Attaching failed (logged); not retried until the interface changes name or is recreated.
    Error,
    /// `capture.max_interfaces` were attached; retried when one goes.
    Limit,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::Error => "error",
            Refused::Limit => "limit",
        }
    }
}

/// The interfaces to attach to and those attached.
pub struct Follower {
    names: Vec<String>,
    patterns: Vec<(String, glob::Pattern)>,
    max: usize,
    xdp_mode: XdpAttachMode,
    tc_mode: TcAttachMode,
    /// Attached interfaces by index.
    attached: BTreeMap<u32, String>,
    /// Matching interfaces not attached, by index.
    refused: BTreeMap<u32, (String, Refused)>,
    metrics: InterfaceMetrics,
}

impl Follower {
    /// A follower of `config.interfaces` with its metric families registered in `registry`.
    pub fn new(config: &CaptureConfig, registry: &Registry) -> prometheus::Result<Self> {
        let mut follower = Self {
            names: Vec::new(),
            patterns: Vec::new(),
            max: config.max_interfaces,
            xdp_mode: config.xdp_mode,
            tc_mode: config.tc_mode,
            attached: BTreeMap::new(),
            refused: BTreeMap::new(),
            metrics: InterfaceMetrics::register(registry)?,
        };
        follower.configure(config);
        Ok(follower)
    }

    fn configure(&mut self, config: &CaptureConfig) {
        let (patterns, names): (Vec<&String>, Vec<&String>) = config
            .interfaces
            .iter()
            .partition(|entry| is_interface_pattern(entry));
        self.names = names.into_iter().cloned().collect();
        // Validation accepted every pattern; one that does not compile matches nothing.
        self.patterns = patterns
            .into_iter()
            .filter_map(|p| Some((p.clone(), glob::Pattern::new(p).ok()?)))
            .collect();
        self.max = config.max_interfaces;
        self.xdp_mode = config.xdp_mode;
        self.tc_mode = config.tc_mode;
    }

    /// Whether the configuration names `interface` or has a pattern matching it.
    pub fn matches(&self, interface: &str) -> bool {
        self.names.iter().any(|n| n == interface)
            || self.patterns.iter().any(|(_, p)| p.matches(interface))
    }

    /// Makes the attachments follow `present`, the whole list of links now: forgets what is
    /// gone or no longer matches, attaches what matches. Returns the attach errors.
    pub fn reconcile(&mut self, capture: &mut Capture, present: &[Link]) -> Vec<CaptureError> {
        let stale: Vec<u32> = self
            .attached
            .iter()
            .filter(|&(index, name)| {
                !present
                    .iter()
                    .any(|l| l.index == *index && l.name == *name && self.matches(name))
            })
            .map(|(&index, _)| index)
            .collect();
        for index in stale {
            let gone = !present.iter().any(|l| l.index == index);
            self.forget(capture, index, gone);
        }
        self.refused.retain(|index, (name, _)| {
            present.iter().any(|l| l.index == *index && l.name == *name)
        });
        present
            .iter()
            .filter_map(|link| self.present(capture, link))
            .collect()
    }

    /// One notification of a [`links::LinkWatcher`]. An [`LinkEvent::Overrun`] re-reads the
    /// whole list. Attach errors are logged and counted, not returned: the daemon runs on.
    pub fn on_event(&mut self, capture: &mut Capture, event: &LinkEvent) {
        match event {
            LinkEvent::Present(link) => {
                if self
                    .attached
                    .get(&link.index)
                    .is_some_and(|n| *n != link.name)
                {
                    // Renamed: the old name's attachment goes, the new name is examined.
                    self.forget(capture, link.index, false);
                }
                if self
                    .refused
                    .get(&link.index)
                    .is_some_and(|(n, _)| *n != link.name)
                {
                    self.refused.remove(&link.index);
                }
                if let Some(error) = self.present(capture, link) {
                    log::warn!("{}: {error}", link.name);
                }
            }
            LinkEvent::Gone(link) => {
                self.refused.remove(&link.index);
                if self.attached.contains_key(&link.index) {
                    self.forget(capture, link.index, true);
                }
            }
            LinkEvent::Overrun => {
                log::warn!(
                    "interface notifications were lost (the netlink socket's buffer was full); \
                     re-reading the interface list"
                );
                match links::dump() {
                    Ok(present) => {
                        for error in self.reconcile(capture, &present) {
                            log::warn!("{error}");
                        }
                    }
                    Err(error) => log::warn!("listing the interfaces: {error}"),
                }
            }
        }
    }

    /// Takes a new configuration (SIGHUP) and re-examines `present` against it. Returns the
    /// attach errors.
    pub fn reconfigure(
        &mut self,
        config: &CaptureConfig,
        capture: &mut Capture,
        present: &[Link],
    ) -> Vec<CaptureError> {
        self.configure(config);
        self.refused.clear();
        self.reconcile(capture, present)
    }

    /// Configured names not attached and patterns matching no attached interface. Empty when
    /// the capture watches everything it was told to.
    pub fn unmet(&self) -> Vec<&str> {
        let names = self
            .names
            .iter()
            .filter(|n| !self.attached.values().any(|a| a == *n));
        let patterns = self
            .patterns
            .iter()
            .filter(|(_, p)| !self.attached.values().any(|a| p.matches(a)))
            .map(|(text, _)| text);
        names.chain(patterns).map(String::as_str).collect()
    }

    /// The attached interfaces' names, by index.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.attached.values().map(String::as_str)
    }

    /// A link that exists: attaches it if it matches and is neither attached nor refused.
    fn present(&mut self, capture: &mut Capture, link: &Link) -> Option<CaptureError> {
        if !self.matches(&link.name)
            || self.attached.contains_key(&link.index)
            || self.refused.contains_key(&link.index)
        {
            return None;
        }
        if self.attached.len() >= self.max {
            log::warn!(
                "{}: not attached, {} interfaces are (capture.max_interfaces); raise it or \
                 narrow capture.interfaces",
                link.name,
                self.attached.len()
            );
            self.refuse(link, Refused::Limit);
            return None;
        }
        match capture.attach_interface(&link.name, self.xdp_mode, self.tc_mode) {
            Ok(()) => {
                self.attached.insert(link.index, link.name.clone());
                self.metrics
                    .attached
                    .with_label_values(&[&link.name])
                    .set(1);
                self.metrics.events.with_label_values(&["attach"]).inc();
                None
            }
            // Gone between the notification and the attach: its deletion follows.
            Err(CaptureError::NoInterface(_)) => None,
            Err(error) => {
                self.refuse(link, Refused::Error);
                Some(error)
            }
        }
    }

    fn refuse(&mut self, link: &Link, why: Refused) {
        self.metrics
            .failures
            .with_label_values(&[why.label()])
            .inc();
        self.refused.insert(link.index, (link.name.clone(), why));
    }

    fn forget(&mut self, capture: &mut Capture, index: u32, gone: bool) {
        let Some(name) = self.attached.remove(&index) else {
            return;
        };
        capture.forget_interface(&name, gone);
        let _ = self.metrics.attached.remove_label_values(&[&name]);
        self.metrics.events.with_label_values(&["detach"]).inc();
        if gone {
            log::info!("{name} is gone; its attachments are forgotten");
        }
        // A slot is free: an interface refused for the limit may take it.
        let waiting: Vec<Link> = self
            .refused
            .iter()
            .filter(|(_, (_, why))| *why == Refused::Limit)
            .map(|(&index, (name, _))| Link {
                index,
                name: name.clone(),
            })
            .collect();
        for link in waiting {
            self.refused.remove(&link.index);
            if let Some(error) = self.present(capture, &link) {
                log::warn!("{}: {error}", link.name);
            }
        }
    }
}

/// `webui_monitor_capture_interface_*`.
struct InterfaceMetrics {
    attached: IntGaugeVec,
    events: IntCounterVec,
    failures: IntCounterVec,
}

impl InterfaceMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let attached = IntGaugeVec::new(
            Opts::new(
                "webui_monitor_capture_interface_attached",
                "1 for each interface the capture is attached to (at most capture.max_interfaces)",
            ),
            &["interface"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "webui_monitor_capture_interface_events_total",
                "Interfaces attached (a matching interface appeared) and detached (it went, was \
                 renamed, or no longer matches)",
            ),
            &["event"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "webui_monitor_capture_interface_attach_failures_total",
                "Matching interfaces not attached: the attach failed (error) or \
                 capture.max_interfaces were attached (limit)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(attached.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        for event in ["attach", "detach"] {
            events.with_label_values(&[event]);
        }
        for reason in [Refused::Error, Refused::Limit] {
            failures.with_label_values(&[reason.label()]);
        }
        Ok(Self {
            attached,
            events,
            failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follower(entries: &[&str]) -> Follower {
        let config = CaptureConfig {
            interfaces: entries.iter().map(|e| (*e).to_owned()).collect(),
            ..CaptureConfig::default()
        };
        Follower::new(&config, &Registry::new()).expect("metrics register")
    }

    #[test]
    fn names_match_exactly_and_patterns_as_globs() {
        let f = follower(&["eth0", "veth*", "br-*", "cali?1"]);
        for name in ["eth0", "veth", "veth1a2b", "br-0123abcd", "cali01"] {
            assert!(f.matches(name), "{name}");
        }
        for name in ["eth01", "eth", "xveth0", "br0", "cali001", "lo"] {
            assert!(!f.matches(name), "{name}");
        }
    }

    #[test]
    fn unmet_lists_missing_names_and_patterns_matching_nothing_attached() {
        let mut f = follower(&["eth0", "veth*", "br-*"]);
        assert_eq!(f.unmet(), ["eth0", "veth*", "br-*"]);
        f.attached.insert(3, "veth9".into());
        f.attached.insert(4, "eth0".into());
        assert_eq!(f.unmet(), ["br-*"]);
        f.attached.insert(5, "br-1".into());
        assert!(f.unmet().is_empty());
    }
}
