//! `webui-monitor run`: the async shell around the sans-IO [`Monitor`].
//!
//! It owns everything with a file descriptor or a clock: the eBPF programs and their ring
//! buffer, the metrics endpoint, signals and timers. One task drives the monitor, so the core
//! needs no locks:
//!
//! * ring buffer readable → decode records into segments → [`Monitor::on_segment`];
//! * after each input, tick and the end → the monitor's skip commands into the kernel's skip
//!   map ([`Monitor::poll_skip`]): spans of bodies nothing reads are not copied; a
//!   connection's spans are removed when it ends (the LRU map evicts what a lost command
//!   leaves);
//! * every `stats_interval` → kernel counters into the metrics, traffic time forward;
//! * after each of those → the audit events the monitor queued go to the audit writer's
//!   thread ([`AuditWriter`]), which writes them to `[audit]`'s output (with `output =
//!   "none"` the monitor builds no event and only counts them);
//! * an interface appears, changes or goes (rtnetlink) → attach or forget it
//!   ([`Follower`]), and `/readyz` says whether every configured interface is watched;
//! * every `db_reload_interval` → re-read Open WebUI's database;
//! * SIGHUP → re-read the configuration, the JWT secret and the database, and apply what can
//!   change while running (the log names what changed, and what waits for a restart and why);
//! * SIGINT/SIGTERM → detach, drain what the ring still holds, settle the pipeline, exit.
use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context as _;
use prometheus::Registry;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Interval, MissedTickBehavior, interval},
};
use webui_monitor_core::{Monitor, openwebui::Directory, pipeline::SkipCommand, secret::Secret};

use crate::{
    audit::{self, AuditWriter},
    capture::{
        self, Capture,
        clock::BootClock,
        follow::Follower,
        links::{self, LinkWatcher},
        metrics::{CaptureMetrics, SkipWrite},
    },
    config::{self, Config, ConfigArgs, reload::Changes},
    db, privileges, server,
};

/// Builds the runtime and runs the daemon until SIGINT/SIGTERM.
pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let loaded = config::load(args)?;
    // The logger lets every level through and `log::set_max_level` filters, so SIGHUP can
    // change the level. A second init (tests) is harmless: the first logger stays.
    let everything = config::LogConfig {
        level: config::LogLevel::Trace,
        ..loaded.config.log.clone()
    };
    let _ = everything.logger().try_init();
    log::set_max_level(loaded.config.log.level.filter());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Worker threads serve HTTP and need no capability (see `privileges`).
        .on_thread_start(|| {
            if let Err(error) = privileges::drop_all_in_this_thread() {
                log::error!("{error}");
            }
        })
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(daemon(args, loaded.config))
}

async fn daemon(args: &ConfigArgs, mut config: Config) -> anyhow::Result<()> {
    let mut secret = config.load_webui_secret()?;
    if secret.is_none() {
        log::warn!(
            "no WEBUI_SECRET_KEY: JWTs are decoded but not verified (auth result \"unverified\"); \
             set it in the environment or openwebui.webui_secret_file"
        );
    }
    let capture_config = config.capture.clone();
    let registry = Registry::new();
    server::register_build_info(&registry)?;
    // process_* (memory, CPU, file descriptors), as every exporter serves them.
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let capture_metrics = CaptureMetrics::register(&registry)?;
    let mut monitor = Monitor::new(&config.monitor_config()?, secret.as_ref(), &registry)?;
    monitor.set_directory(load_directory(config.openwebui.db.as_deref(), None));
    let web = match &config.server.web_config_file {
        Some(path) => server::WebConfig::load(path)?,
        None => server::WebConfig::default(),
    };
    let security = server::SecurityHandle::new(&web);
    let http_server = server::Server {
        limits: config.server.limits(),
        metrics: server::ServerMetrics::register(&registry)?,
        security: security.clone(),
    };
    let mut audit = AuditWriter::start(audit::Output::open(&config.audit)?, &registry)?;
    monitor.keep_audit_events(audit.writes_events());
    let state = Arc::new(server::State {
        registry,
        ready: false.into(),
    });
    let listen = config.capture.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} (capture.listen)"))?;
    log::info!("serving /metrics on {}", server::describe(&web, listen));
    warn_clear_text_passwords(&web, config.server.web_config_file.as_deref());

    capture::check::require_capabilities()
        .map_err(|why| anyhow::anyhow!("cannot load the eBPF programs: {why}"))?;
    let mut capture = Capture::load(&capture_config).context("loading the eBPF programs")?;
    // Subscribed before listing, so no interface created in between is missed.
    let mut watcher = LinkWatcher::new().context("subscribing to interface changes (rtnetlink)")?;
    let mut follower = Follower::new(&capture_config, &state.registry)?;
    let present = links::dump().context("listing the network interfaces (rtnetlink)")?;
    // On failure `capture` is dropped, which detaches whatever was attached.
    if let Some(error) = follower
        .reconcile(&mut capture, &present)
        .into_iter()
        .next()
    {
        return Err(error).context(
            "attaching the eBPF programs (run `webui-monitor check` for what is missing)",
        );
    }
    // This thread runs the loop below: it keeps what attaching later and reading the maps need.
    let dropped = privileges::drop_after_attach()?;
    log::info!(
        "capabilities after attaching: kept {}; dropped {}{}; no_new_privs set",
        names(&dropped.kept),
        names(&dropped.dropped),
        if dropped.bounding_cut {
            " (bounding set cut too)"
        } else {
            ""
        }
    );
    let mut unmet = Vec::new();
    update_readiness(&follower, &state, &mut unmet);
    let mut server = tokio::spawn(server::serve(listener, Arc::clone(&state), http_server));

    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut stats_tick = interval(capture_config.stats_interval);
    stats_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut active_tick = interval(capture_config.active_scan_interval);
    active_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut db_tick = db_interval(config.openwebui.db_reload_interval);

    let mut clock = BootClock::sample().context("reading the clocks")?;
    let mut loss_log = capture::counters::LossLog::default();
    let mut active = 0;
    let mut records = 0u64;
    let mut decode_errors = 0u64;
    let read_bound = u64::from(capture_config.ring_bytes);
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = interrupt.recv() => { log::info!("SIGINT: detaching"); break Ok(()); }
            _ = terminate.recv() => { log::info!("SIGTERM: detaching"); break Ok(()); }
            // The endpoint is gone: /healthz cannot answer, so running on would only be blind.
            // Exiting with the reason lets systemd (Restart=on-failure) or the container runtime
            // start a fresh process, and the exit status says it failed.
            ended = &mut server => {
                let why = match ended {
                    Ok(Ok(())) => "it returned".to_owned(),
                    Ok(Err(error)) => format!("accept() on the listening socket failed: {error}"),
                    Err(error) if error.is_panic() => "it panicked".to_owned(),
                    Err(error) => error.to_string(),
                };
                break Err(anyhow::anyhow!(
                    "the metrics endpoint on {listen} stopped ({why}); /healthz can no longer \
                     answer, so the daemon exits to be restarted"
                ));
            }
            _ = hangup.recv() => {
                config = reload(args, config, Running {
                    monitor: &mut monitor,
                    follower: &mut follower,
                    capture: &mut capture,
                    secret: &mut secret,
                    db_tick: &mut db_tick,
                    security: &security,
                });
                update_readiness(&follower, &state, &mut unmet);
            }
            events = watcher.events() => {
                match events {
                    Ok(events) => {
                        for event in &events {
                            follower.on_event(&mut capture, event);
                        }
                        update_readiness(&follower, &state, &mut unmet);
                    }
                    Err(error) => break Err(error).context("reading interface notifications (rtnetlink)"),
                }
            }
            ready = capture.readable() => {
                if let Err(error) = ready {
                    break Err(error).context("waiting for the ring buffer");
                }
                // At most one ring's worth per turn: a reader behind the kernel never finds
                // the ring empty, and the other branches must still run.
                drain(&mut capture, read_bound, &mut monitor, &clock, &mut records, &mut decode_errors);
                capture_metrics.observe_ring_read(capture.drained_bytes());
                apply_skips(&mut capture, &mut monitor, &capture_metrics);
                audit.submit(&mut monitor);
            }
            _ = stats_tick.tick() => {
                // Re-sampled so steps of the wall clock (NTP) reach the timestamps.
                match BootClock::sample() {
                    Ok(sampled) => clock = sampled,
                    Err(error) => break Err(error).context("reading the clocks"),
                }
                match (capture.totals(), capture::clock::boot_now_ns()) {
                    (Ok(totals), Ok(now)) => {
                        capture_metrics.observe(&totals, active);
                        for line in loss_log.lines(&totals, std::time::Instant::now()) {
                            log::warn!("{line}");
                        }
                        monitor.on_tick(clock.to_epoch(now), |_| {});
                        apply_skips(&mut capture, &mut monitor, &capture_metrics);
                        audit.submit(&mut monitor);
                    }
                    (Err(error), _) => break Err(error).context("reading the kernel counters"),
                    (_, Err(error)) => break Err(error).context("reading the clocks"),
                }
            }
            _ = active_tick.tick() => {
                match capture.count_active(capture_config.idle_timeout) {
                    Ok(n) => active = n,
                    Err(error) => break Err(error).context("scanning the connection table"),
                }
            }
            _ = db_tick.tick() => {
                if let Some(directory) = load_directory(config.openwebui.db.as_deref(), Some("periodic")) {
                    monitor.set_directory(Some(directory));
                }
            }
        }
    };
    state.ready.store(false, Ordering::Relaxed);
    let detached = capture.detach();
    // Detached: the ring only empties from here.
    drain(
        &mut capture,
        u64::MAX,
        &mut monitor,
        &clock,
        &mut records,
        &mut decode_errors,
    );
    if let Ok(totals) = capture.totals() {
        capture_metrics.observe(&totals, 0);
    }
    monitor.finish(
        clock.to_epoch(capture::clock::boot_now_ns().unwrap_or_default()),
        |_| {},
    );
    apply_skips(&mut capture, &mut monitor, &capture_metrics);
    audit.submit(&mut monitor);
    audit.finish();
    server.abort();
    outcome?;
    detached.context("detaching the eBPF programs")?;
    log::info!(
        "stopped: {records} ring records read ({decode_errors} undecodable), everything detached"
    );
    Ok(())
}

/// Capability names, comma-separated (`none` for an empty list).
fn names(caps: &[caps::Capability]) -> String {
    if caps.is_empty() {
        return "none".to_owned();
    }
    caps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `/readyz` answers 200 while every configured interface name is attached and every pattern
/// matches an attached interface; what is missing is logged when it changes.
fn update_readiness(follower: &Follower, state: &server::State, last: &mut Vec<String>) {
    let unmet: Vec<String> = follower.unmet().into_iter().map(str::to_owned).collect();
    if unmet != *last {
        if unmet.is_empty() {
            log::info!(
                "capture attached to every configured interface ({}); /readyz answers 200",
                follower.attached().collect::<Vec<_>>().join(", ")
            );
        } else {
            log::warn!(
                "capture.interfaces not matched by any interface: {}; /readyz answers 503 until \
                 they appear (`ip -br link` lists the interfaces)",
                unmet.join(", ")
            );
        }
        *last = unmet;
    }
    state.ready.store(last.is_empty(), Ordering::Relaxed);
}

/// Feeds the records the ring holds to the monitor, until they take `max_bytes` of it (see
/// [`Capture::drain_at_most`]).
fn drain(
    capture: &mut Capture,
    max_bytes: u64,
    monitor: &mut Monitor,
    clock: &BootClock,
    records: &mut u64,
    decode_errors: &mut u64,
) {
    capture.drain_at_most(max_bytes, |record| match record {
        Ok(record) => {
            *records += 1;
            monitor.on_segment(&record.segment(clock), |_| {});
        }
        Err(error) => {
            if *decode_errors == 0 {
                log::warn!(
                    "undecodable ring record ({error}): the eBPF object does not match this binary"
                );
            }
            *decode_errors += 1;
        }
    });
}

/// Writes the monitor's commands about payload nobody reads into the kernel's skip map. A
/// failed write costs ring bytes only (the kernel copies what it was not told to skip, and
/// the monitor drops it): counted, logged once.
fn apply_skips(capture: &mut Capture, monitor: &mut Monitor, metrics: &CaptureMetrics) {
    while let Some(command) = monitor.poll_skip() {
        let op = match command {
            SkipCommand::Skip { .. } => SkipWrite::Skip,
            SkipCommand::Forget { .. } => SkipWrite::Forget,
        };
        let written = capture.apply_skip(&command);
        if let Err(error) = &written
            && metrics.skip_write_errors() == 0
        {
            log::warn!(
                "cannot write the kernel's skip map ({error}): bodies nothing reads are still \
                 copied to userspace (more ring bytes, no metric changes); \
                 webui_monitor_capture_skip_writes_total{{result=\"error\"}} counts these"
            );
        }
        metrics.count_skip_write(op, written.is_ok());
    }
}

/// Open WebUI's database as a directory of users and API keys. A failed read keeps the previous
/// snapshot (returns `None`) and says why.
fn load_directory(path: Option<&Path>, why: Option<&str>) -> Option<Arc<Directory>> {
    let path = path?;
    match db::load(path) {
        Ok(directory) => {
            log::debug!(
                "read Open WebUI's database {}{}",
                path.display(),
                why.map(|w| format!(" ({w})")).unwrap_or_default()
            );
            Some(Arc::new(directory))
        }
        Err(error) => {
            log::warn!(
                "cannot read Open WebUI's database {}: {error}; API keys resolve with the previous \
                 snapshot (check openwebui.db and that the daemon may read the file)",
                path.display()
            );
            None
        }
    }
}

/// What SIGHUP may change in the running daemon.
struct Running<'a> {
    monitor: &'a mut Monitor,
    follower: &'a mut Follower,
    capture: &'a mut Capture,
    secret: &'a mut Option<Secret>,
    db_tick: &'a mut Interval,
    security: &'a server::SecurityHandle,
}

/// SIGHUP: re-read the configuration, the secret and the database, and apply what can change
/// while running (see [`config::reload`]). Counters are kept: the monitor lives on. The log
/// names the settings that changed, never their values; a configuration that does not load
/// (or a secret that cannot be read) leaves everything as it was, and says why.
fn reload(args: &ConfigArgs, current: Config, running: Running<'_>) -> Config {
    let reread_db = |monitor: &mut Monitor, db: Option<&Path>| match db {
        None => monitor.set_directory(None),
        Some(db) => {
            if let Some(directory) = load_directory(Some(db), Some("SIGHUP")) {
                monitor.set_directory(Some(directory));
            }
        }
    };
    let loaded = config::load(args).and_then(|loaded| {
        let secret = loaded.config.load_webui_secret()?;
        let effective = config::reload::running_values(&current, &loaded.config);
        let monitor_config = effective.monitor_config()?;
        Ok((loaded.config, secret, monitor_config))
    });
    let (new, secret, monitor_config) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            log::warn!(
                "SIGHUP: configuration not applied, the running one stays: {error}; \
                 Open WebUI's database re-read"
            );
            reread_db(running.monitor, current.openwebui.db.as_deref());
            return current;
        }
    };
    let changes = Changes::between(&current, &new);
    let secret_changed =
        secret.as_ref().map(Secret::expose) != running.secret.as_ref().map(Secret::expose);
    let effective = config::reload::running_values(&current, &new);

    running
        .monitor
        .reconfigure(&monitor_config, secret.as_ref());
    *running.secret = secret;
    log::set_max_level(effective.log.level.filter());
    if effective.capture.interfaces != current.capture.interfaces
        || effective.capture.max_interfaces != current.capture.max_interfaces
    {
        match links::dump() {
            Ok(present) => {
                let errors =
                    running
                        .follower
                        .reconfigure(&effective.capture, running.capture, &present);
                for error in errors {
                    log::warn!("SIGHUP: {error}");
                }
            }
            Err(error) => log::warn!("SIGHUP: listing the network interfaces: {error}"),
        }
    }
    if effective.openwebui.db_reload_interval != current.openwebui.db_reload_interval {
        *running.db_tick = db_interval(effective.openwebui.db_reload_interval);
    }
    reread_db(running.monitor, effective.openwebui.db.as_deref());
    reread_web_config(
        running.security,
        effective.server.web_config_file.as_deref(),
        effective.capture.listen,
    );

    let mut applied = changes.applied;
    if secret_changed {
        applied.push("the JWT secret".to_owned());
    }
    if applied.is_empty() {
        log::info!(
            "SIGHUP: configuration re-read, no setting changed; Open WebUI's database re-read"
        );
    } else {
        log::info!(
            "SIGHUP: applied {}; Open WebUI's database re-read",
            applied.join(", ")
        );
    }
    if !changes.restart.is_empty() {
        let not_applied: Vec<String> = changes
            .restart
            .iter()
            .map(|(key, why)| format!("{key} ({why})"))
            .collect();
        log::warn!(
            "SIGHUP: not applied until webui-monitor restarts: {}",
            not_applied.join("; ")
        );
    }
    effective
}

/// SIGHUP: the web config file is read again (a renewed certificate, changed users) and
/// applies to connections accepted from then on. One that does not load leaves the running
/// TLS and users in place, and says why.
fn reread_web_config(
    security: &server::SecurityHandle,
    path: Option<&Path>,
    listen: std::net::SocketAddr,
) {
    let web = match path.map(server::WebConfig::load).transpose() {
        Ok(web) => web.unwrap_or_default(),
        Err(error) => {
            log::warn!("SIGHUP: {error}; the metrics endpoint keeps its TLS and users");
            return;
        }
    };
    security.replace(&web);
    if let Some(path) = path {
        log::info!(
            "SIGHUP: web config {} re-read: serving /metrics on {}",
            path.display(),
            server::describe(&web, listen)
        );
        warn_clear_text_passwords(&web, Some(path));
    }
}

fn warn_clear_text_passwords(web: &server::WebConfig, path: Option<&Path>) {
    if !web.users.is_empty() && web.tls.is_none() {
        log::warn!(
            "basic_auth_users without tls_server_config: passwords cross the network in clear \
             text; add tls_server_config to {}",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
}

/// The database re-read timer (the first read happens at start).
fn db_interval(every: Duration) -> Interval {
    let mut tick = interval(every.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.reset();
    tick
}
