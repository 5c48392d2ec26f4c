//! The whole monitor as one sans-IO state machine: TCP segments and traffic time in, Prometheus
//! metrics (and, for whoever watches, [`PipelineEvent`]s) out.
//!
//! The daemon feeds it segments decoded from the kernel's ring buffer; `replay` feeds it
//! segments read from a capture file. Both build it from the same [`MonitorConfig`] (the daemon
//! derives it from its configuration file), so a replay yields exactly the series the daemon
//! would have served for the same traffic. It owns no file descriptor, clock or timer: the
//! caller decides when time passes ([`Monitor::on_tick`]) and when Open WebUI's database is
//! re-read ([`Monitor::set_directory`]). The crate documentation gives the order of calls.
use std::sync::Arc;

use prometheus::Registry;

use crate::{
    audit::{AuditConfig, AuditCounters, AuditEvent, AuditSink},
    metrics::{
        GenAiMetrics, GenAiSink, OpenWebuiMetrics, PrometheusSink, StreamMetrics,
        websocket::WebSocketMetrics,
    },
    openwebui::{Attributor, Directory, Fact, FactSink, JwtSecret, SemanticsConfig},
    pipeline::{Pipeline, PipelineConfig, PipelineEvent, SkipCommand},
    pricing::Prices,
    secret::Secret,
    segment::{Segment, Timestamp},
};

/// Every setting of the monitor: the stream engine's caps and the semantics layer's settings.
#[derive(Debug, Clone, Default)]
pub struct MonitorConfig {
    /// Caps of reassembly, HTTP and WebSocket.
    pub pipeline: PipelineConfig,
    /// Attribution: label caps, expiry, personal data.
    pub semantics: SemanticsConfig,
    /// What tokens cost (empty: every model unpriced).
    pub prices: Arc<Prices>,
    /// The audit trail of scripted session-credential use.
    pub audit: AuditConfig,
    /// Skip bodies nothing reads once this many of their bytes remain (see
    /// [`Pipeline::skip_unread_bodies`]); `None`: skip none. The shell sets it when its
    /// capture applies [`Monitor::poll_skip`]'s commands.
    pub skip_unread_bodies_from: Option<u64>,
}

/// Pipeline (reassembly → HTTP → WebSocket) plus attribution, whose facts the [`Sinks`]
/// apply: the metrics (spend included), the GenAI histograms, and the audit trail of scripted
/// session-credential calls, queued for the shell ([`Monitor::drain_audit`]).
///
/// Input: [`on_segment`](Self::on_segment); time: [`on_tick`](Self::on_tick); context:
/// [`set_directory`](Self::set_directory); end: [`finish`](Self::finish). See [the crate
/// documentation](crate#driving-a-monitor) for the order of calls.
pub struct Monitor {
    pipeline: Pipeline,
    attributor: Attributor,
    sink: Sinks,
    stream_metrics: StreamMetrics,
    websocket_metrics: WebSocketMetrics,
    events: Vec<PipelineEvent>,
}

impl Monitor {
    /// Registers every `openwebui_*` and stream-level `webui_monitor_*` family in `registry`.
    /// `secret` is Open WebUI's `WEBUI_SECRET_KEY`; without it JWTs are decoded, not verified.
    pub fn new(
        config: &MonitorConfig,
        secret: Option<&Secret>,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let secret = secret.map(|s| JwtSecret::new(s.expose()));
        let attributor = Attributor::new(config.semantics.clone(), secret.as_ref());
        let metrics = OpenWebuiMetrics::register(registry, &config.prices.currency)?;
        let sink = Sinks {
            prometheus: PrometheusSink::new(metrics, &config.semantics, Arc::clone(&config.prices)),
            genai: GenAiSink::new(GenAiMetrics::register(registry)?),
            audit: AuditSink::new(&config.audit, &config.semantics, registry)?,
        };
        let mut pipeline = Pipeline::new(config.pipeline.clone());
        pipeline.read_request_bodies_of(crate::openwebui::route::reads_request_body);
        pipeline.skip_unread_bodies(config.skip_unread_bodies_from);
        Ok(Self {
            pipeline,
            attributor,
            sink,
            stream_metrics: StreamMetrics::register(registry)?,
            websocket_metrics: WebSocketMetrics::register(registry)?,
            events: Vec::new(),
        })
    }

    /// One TCP segment (or kernel chunk). `observe` sees every event before it is attributed.
    pub fn on_segment(&mut self, segment: &Segment<'_>, observe: impl FnMut(&PipelineEvent)) {
        self.pipeline.on_segment(segment, &mut self.events);
        self.attribute(observe);
    }

    /// Traffic time advanced to `now`: expire idle connections, idle users and stale answers,
    /// and bring the stream counters up to date.
    pub fn on_tick(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        self.pipeline.on_tick(now, &mut self.events);
        self.attribute(observe);
        self.attributor.on_tick(now, &mut self.sink);
        self.refresh_metrics();
    }

    /// End of input: close every connection (flushing what is pending) and settle what waits
    /// for an answer.
    pub fn finish(&mut self, now: Timestamp, observe: impl FnMut(&PipelineEvent)) {
        self.pipeline.finish(now, &mut self.events);
        self.attribute(observe);
        self.attributor.finish(now, &mut self.sink);
        self.refresh_metrics();
    }

    /// A new snapshot of Open WebUI's users and API keys (or none).
    pub fn set_directory(&mut self, directory: Option<Arc<Directory>>) {
        self.attributor.set_directory(directory, &mut self.sink);
    }

    /// New settings while running (the daemon's SIGHUP): the stream engine's caps and the
    /// semantics layer's settings of `config`, and the JWT `secret`. Connections, users and
    /// every counter are kept. Two sizes stay as they were at start, since their tables are
    /// allocated then: `reassembly.max_connections` and `reassembly.max_closed_connections`.
    /// A lower `max_users` folds new users into `other` until enough known ones expire.
    pub fn reconfigure(&mut self, config: &MonitorConfig, secret: Option<&Secret>) {
        self.pipeline.set_limits(config.pipeline.clone());
        self.pipeline
            .skip_unread_bodies(config.skip_unread_bodies_from);
        let secret = secret.map(|s| JwtSecret::new(s.expose()));
        self.attributor
            .reconfigure(config.semantics.clone(), secret.as_ref());
        self.sink
            .prometheus
            .reconfigure(&config.semantics, Arc::clone(&config.prices));
        self.sink
            .audit
            .reconfigure(&config.audit, &config.semantics);
    }

    /// Takes the audit events queued since the last call, oldest first. The shell calls it
    /// after each batch of input (and after `finish`) and writes them; events beyond
    /// `audit.max_queue` between two calls are dropped and counted.
    pub fn drain_audit(&mut self) -> impl Iterator<Item = AuditEvent> + '_ {
        self.sink.audit.drain()
    }

    /// Whether audit events are built and queued for [`drain_audit`](Self::drain_audit)
    /// (the default). A shell that writes them nowhere turns this off: the audit families and
    /// [`audit_counters`](Self::audit_counters) stay exactly as they would be, and no event is
    /// built. Kept across [`reconfigure`](Self::reconfigure).
    pub fn keep_audit_events(&mut self, keep: bool) {
        self.sink.audit.keep_events(keep);
    }

    /// What the audit trail recorded and dropped so far.
    pub fn audit_counters(&self) -> &AuditCounters {
        &self.sink.audit.counters
    }

    /// The next command for the capture about bytes skipped on purpose (see
    /// [`Pipeline::poll_skip`]): the shell calls it after each input, tick and `finish` until
    /// it returns `None`, and applies each to the capture.
    pub fn poll_skip(&mut self) -> Option<SkipCommand> {
        self.pipeline.poll_skip()
    }

    /// Mirrors the pipeline's counters (cumulative, kept in the sans-IO core) into their
    /// Prometheus families.
    pub fn refresh_metrics(&self) {
        self.stream_metrics.update(&self.pipeline);
        self.websocket_metrics
            .update(self.pipeline.websocket_counters());
    }

    /// The stream engine, for its counters and gauges.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The stream engine's families (replay adds the capture-file totals to them).
    pub fn stream_metrics(&self) -> &StreamMetrics {
        &self.stream_metrics
    }

    fn attribute(&mut self, mut observe: impl FnMut(&PipelineEvent)) {
        for event in self.events.drain(..) {
            observe(&event);
            self.attributor.on_event(&event, &mut self.sink);
        }
    }
}

/// Every sink of attribution's facts, each fact to each in turn.
struct Sinks {
    /// The `openwebui_*` families, spend included.
    prometheus: PrometheusSink,
    /// The OpenTelemetry GenAI families.
    genai: GenAiSink,
    /// Scripted session-credential calls, queued for the shell.
    audit: AuditSink,
}

impl FactSink for Sinks {
    fn fact(&mut self, fact: Fact<'_>) {
        self.prometheus.fact(fact);
        self.genai.fact(fact);
        self.audit.fact(fact);
    }
}
