//! Live capture: the eBPF programs, their loader, and the ring buffer reader.
//!
//! The kernel side (`webui-monitor-ebpf`) sends every TCP payload byte of the monitored ports as
//! chunk records through a BPF ring buffer and counts what it could not send. This module loads
//! it ([`loader`]), reads the ring through tokio's [`AsyncFd`] ([`Capture`]), decodes records
//! into the core's [`Segment`](webui_monitor_core::segment::Segment)s ([`record`], a pure
//! function) and reads the kernel's counters ([`counters`]), which [`metrics`] mirrors into
//! Prometheus. [`check`] tells whether this machine can run it.
pub mod check;
pub mod clock;
pub mod clsact;
pub mod counters;
pub mod follow;
pub mod links;
pub mod loader;
pub mod metrics;
pub mod record;
pub mod verifier;

use std::{
    net::IpAddr,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        LinkOrder, ProgramError, TcAttach, TcAttachType, XdpMode,
        tc::{self, SchedClassifierLinkId},
        xdp::XdpLinkId,
    },
};
use tokio::io::{Interest, unix::AsyncFd};
use webui_monitor_common::{
    CaptureStats, ConnKey, ConnStats, FAMILY_IPV4, FAMILY_IPV6, SKIP_CHUNKED, SkipSpan, SkipSpans,
    XDP_PROGRAM,
};
use webui_monitor_core::{pipeline::SkipCommand, segment::ConnectionKey};

pub use crate::config::{CaptureConfig, TcAttachMode, XdpAttachMode};
pub use loader::Attachment;
pub use record::{DecodeError, Record};

/// Errors of the live capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "this binary was built without its eBPF programs (AYA_BUILD_SKIP=1); rebuild it \
         after `cargo xtask setup`"
    )]
    EmptyObject,
    #[error(
        "invalid capture configuration:\n{}",
        crate::config::error::display_problems(.0)
    )]
    Invalid(Vec<crate::config::Problem>),
    #[error("no network interface named {0:?}")]
    NoInterface(String),
    #[error("loading the eBPF object failed (root or CAP_BPF + CAP_NET_ADMIN needed)")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("the kernel rejected program {program}")]
    Verify {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
    #[error("eBPF map access failed")]
    Map(#[source] aya::maps::MapError),
    #[error("attaching {what} to {interface} failed")]
    Attach {
        what: &'static str,
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("detaching from {interface} failed")]
    Detach {
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("reading the ring buffer failed")]
    Io(#[from] std::io::Error),
}

enum Link {
    Xdp(XdpLinkId),
    Tcx(SchedClassifierLinkId),
    /// A `cls_bpf` filter under the interface's `clsact` qdisc (kernels without tcx).
    Tc(SchedClassifierLinkId, clsact::Clsact),
}

/// The loaded programs, their attachments and the maps userspace reads.
///
/// Dropping it detaches everything. XDP and tcx attachments are bpf links owned by this process,
/// so they also go away if the process dies; a classic TC filter (kernels without tcx) is
/// removed on detach, and one left by a killed process is removed at the next attach (see
/// [`clsact`]).
pub struct Capture {
    ebpf: Ebpf,
    stats: PerCpuArray<MapData, CaptureStats>,
    connections: HashMap<MapData, ConnKey, ConnStats>,
    skip: HashMap<MapData, ConnKey, SkipSpans>,
    ring: AsyncFd<RingFd>,
    drain_interval: Duration,
    idle_drain_interval: Duration,
    /// How long after a drain the next one is due without a wakeup.
    drain_wait: Duration,
    /// When the next drain is due without a wakeup: a deadline, not a timeout, because the
    /// daemon's `select!` loop re-creates the [`Capture::readable`] future whenever another
    /// branch fires (its 1 s stats tick among them), and a timeout would start over each time.
    drain_deadline: tokio::time::Instant,
    /// Ring bytes (records with their 8-byte headers) the last [`Capture::drain`] took.
    drained_bytes: u64,
    attachments: Vec<Attachment>,
    links: Vec<Link>,
}

/// The ring buffer, as something tokio can poll.
struct RingFd(RingBuf<MapData>);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Capture {
    /// Loads and verifies the programs with `config`; nothing is attached yet. Needs a tokio
    /// runtime (the ring is registered with its reactor).
    pub fn load(config: &CaptureConfig) -> Result<Self, CaptureError> {
        let mut ebpf = loader::load(config)?;
        let maps = loader::take_maps(&mut ebpf)?;
        Ok(Self {
            ebpf,
            stats: maps.stats,
            connections: maps.connections,
            skip: maps.skip,
            // SAFETY: `RingFd` owns the ring's fd and never closes or swaps it while the
            // AsyncFd owns it.
            ring: unsafe { AsyncFd::register_with_interest(RingFd(maps.ring), Interest::READABLE) }
                .map_err(|e| CaptureError::Io(e.into()))?,
            drain_interval: config.drain_interval,
            idle_drain_interval: config.idle_drain_interval.max(config.drain_interval),
            drain_wait: config.drain_interval,
            drain_deadline: tokio::time::Instant::now() + config.drain_interval,
            drained_bytes: 0,
            attachments: Vec::new(),
            links: Vec::new(),
        })
    }

    /// The loaded object (tests run its programs through `BPF_PROG_TEST_RUN`).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Attaches to each interface: XDP (driver mode first, generic with a log line if the
    /// driver has none) and, except on loopback, the TC program on egress (tcx, or classic TC
    /// where the kernel has no tcx). See the eBPF crate's docs for why loopback needs XDP only.
    pub fn attach(
        &mut self,
        interfaces: &[String],
        xdp_mode: XdpAttachMode,
        tc_mode: TcAttachMode,
    ) -> Result<&[Attachment], CaptureError> {
        for interface in interfaces {
            self.attach_interface(interface, xdp_mode, tc_mode)?;
        }
        Ok(&self.attachments)
    }

    /// [`Capture::attach`] for one interface. On failure nothing stays attached to it.
    pub fn attach_interface(
        &mut self,
        interface: &str,
        xdp_mode: XdpAttachMode,
        tc_mode: TcAttachMode,
    ) -> Result<(), CaptureError> {
        let before = self.links.len();
        let result = loader::is_loopback(interface).and_then(|loopback| {
            self.attach_xdp(interface, xdp_mode)?;
            if !loopback {
                self.attach_egress(interface, tc_mode)?;
            }
            Ok(())
        });
        if result.is_err() {
            while self.links.len() > before {
                self.detach_last(true);
            }
        }
        result
    }

    /// Detaches what is attached to `interface`. `gone`: the interface no longer exists (the
    /// kernel then released its programs already, and failures to detach are expected).
    pub fn forget_interface(&mut self, interface: &str, gone: bool) {
        let mut index = self.attachments.len();
        while index > 0 {
            index -= 1;
            if self.attachments[index].interface() == interface {
                let attachment = self.attachments.remove(index);
                let link = self.links.remove(index);
                match self.detach_link(link, interface) {
                    Ok(()) => log::info!("detached {attachment}"),
                    Err(error) if gone => {
                        log::debug!("{attachment}: gone with its interface ({error})")
                    }
                    Err(error) => log::warn!("detaching {attachment}: {error}"),
                }
            }
        }
    }

    /// Detaches the newest link (rolling back a half-done attach).
    fn detach_last(&mut self, quiet: bool) {
        if let (Some(link), Some(attachment)) = (self.links.pop(), self.attachments.pop())
            && let Err(error) = self.detach_link(link, attachment.interface())
            && !quiet
        {
            log::warn!("detaching {attachment}: {error}");
        }
    }

    /// The TC program on egress: through tcx, or where the kernel has no tcx (before 6.6) as
    /// a classic `cls_bpf` filter under a `clsact` qdisc.
    fn attach_egress(&mut self, interface: &str, mode: TcAttachMode) -> Result<(), CaptureError> {
        let name = loader::interface_name(interface)?;
        let program = loader::tc(&mut self.ebpf)?;
        if mode != TcAttachMode::Classic {
            let tcx = program.attach(
                name.as_c_str(),
                TcAttach::Tcx {
                    attach_type: TcAttachType::Egress,
                    order: LinkOrder::default(),
                },
            );
            match tcx {
                Ok(id) => {
                    self.record_link(
                        Attachment::TcxEgress {
                            interface: interface.to_owned(),
                        },
                        Link::Tcx(id),
                    );
                    return Ok(());
                }
                Err(source) if mode == TcAttachMode::Tcx => {
                    return Err(CaptureError::Attach {
                        what: "tcx egress (Linux 6.6 or later; tc_mode \"auto\" falls back to classic TC)",
                        interface: interface.to_owned(),
                        source,
                    });
                }
                Err(error) => log::info!(
                    "{interface}: tcx unavailable ({error}; Linux 6.6 brings it); attaching to \
                     the classic TC egress hook (clsact qdisc + cls_bpf) instead"
                ),
            }
        }
        let attach_error = |source| CaptureError::Attach {
            what: "TC egress (tcx, then classic TC)",
            interface: interface.to_owned(),
            source,
        };
        let qdisc = clsact::Clsact::ensure(&name).map_err(|e| attach_error(e.into()))?;
        let added_qdisc = qdisc.added();
        let options = tc::NlOptions::default();
        match program.attach(
            name.as_c_str(),
            TcAttach::Netlink {
                parent: TcAttachType::Egress.into(),
                options,
            },
        ) {
            Ok(id) => {
                self.record_link(
                    Attachment::TcEgress {
                        interface: interface.to_owned(),
                        added_qdisc,
                    },
                    Link::Tc(id, qdisc),
                );
                Ok(())
            }
            Err(error) => {
                if let Err(remove) = qdisc.remove() {
                    log::warn!("{interface}: removing the clsact qdisc added for it: {remove}");
                }
                Err(attach_error(error))
            }
        }
    }

    fn attach_xdp(&mut self, interface: &str, mode: XdpAttachMode) -> Result<(), CaptureError> {
        let name = loader::interface_name(interface)?;
        let xdp = loader::xdp(&mut self.ebpf, XDP_PROGRAM)?;
        let attach_error = |source| CaptureError::Attach {
            what: "XDP",
            interface: interface.to_owned(),
            source,
        };
        let driver = match mode {
            XdpAttachMode::Generic => None,
            XdpAttachMode::Driver => Some(
                xdp.attach(name.as_c_str(), XdpMode::Driver)
                    .map_err(attach_error)?,
            ),
            XdpAttachMode::Auto => match xdp.attach(name.as_c_str(), XdpMode::Driver) {
                Ok(id) => Some(id),
                Err(driver_error) => {
                    log::info!(
                        "{interface}: driver-mode XDP unavailable ({driver_error}); falling \
                         back to generic XDP (slower, sees the same packets)"
                    );
                    None
                }
            },
        };
        let interface = interface.to_owned();
        let (attachment, id) = match driver {
            Some(id) => (Attachment::XdpDriver { interface }, id),
            None => {
                let id = xdp
                    .attach(name.as_c_str(), XdpMode::Skb)
                    .map_err(attach_error)?;
                (Attachment::XdpGeneric { interface }, id)
            }
        };
        self.record_link(attachment, Link::Xdp(id));
        Ok(())
    }

    fn record_link(&mut self, attachment: Attachment, link: Link) {
        log::info!("attached {attachment}");
        self.attachments.push(attachment);
        self.links.push(link);
    }

    /// What is attached where.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Detaches every program; the maps stay readable (drain the ring afterwards).
    pub fn detach(&mut self) -> Result<(), CaptureError> {
        let mut first_error = None;
        while let (Some(link), Some(attachment)) = (self.links.pop(), self.attachments.pop()) {
            match self.detach_link(link, attachment.interface()) {
                Ok(()) => log::info!("detached {attachment}"),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn detach_link(&mut self, link: Link, interface: &str) -> Result<(), CaptureError> {
        let detach_error = |source| CaptureError::Detach {
            interface: interface.to_owned(),
            source,
        };
        match link {
            Link::Xdp(id) => loader::xdp(&mut self.ebpf, XDP_PROGRAM)
                .and_then(|p| p.detach(id).map_err(detach_error)),
            Link::Tcx(id) => {
                loader::tc(&mut self.ebpf).and_then(|p| p.detach(id).map_err(detach_error))
            }
            Link::Tc(id, qdisc) => loader::tc(&mut self.ebpf)
                .and_then(|p| p.detach(id).map_err(detach_error))
                .and_then(|()| {
                    qdisc
                        .remove()
                        .map_err(|source| detach_error(ProgramError::IOError(source)))
                }),
        }
    }

    /// Waits until the ring is worth reading: the kernel woke the reader (records pile up), or
    /// [`Capture::drain_wait`] passed since the last [`Capture::drain`] (the kernel submits
    /// records without a wakeup until then; see `Config::wakeup_bytes`). The caller then drains
    /// the ring. Dropping this future and calling it again keeps the same deadline.
    pub async fn readable(&self) -> Result<(), CaptureError> {
        if let Ok(guard) = tokio::time::timeout_at(self.drain_deadline, self.ring.readable()).await
        {
            // Edge-triggered: clear, then the caller drains everything.
            guard?.clear_ready();
        }
        Ok(())
    }

    /// The ring buffer's file descriptor, for tests and tools that poll it themselves.
    pub fn ring_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ring.get_ref().0.as_fd()
    }

    /// Hands every record now in the ring to `on_record` (decoded, or the decoding error) and
    /// returns how many there were. An empty ring makes the next [`Capture::readable`] wait
    /// longer (see [`CaptureConfig::idle_drain_interval`]), records reset the wait.
    pub fn drain(&mut self, on_record: impl FnMut(Result<Record<'_>, DecodeError>)) -> usize {
        self.drain_at_most(u64::MAX, on_record)
    }

    /// [`Capture::drain`], but returns once the records read take `max_bytes` of the ring
    /// (with their headers) or more; [`Capture::readable`] then returns at once, for the rest.
    ///
    /// A reader that falls behind the kernel never finds the ring empty: a drain without a
    /// bound would not return while the load lasts, and whatever else its caller's loop does
    /// (mirroring the loss counters, writing skip spans, handling signals) would wait for it.
    pub fn drain_at_most(
        &mut self,
        max_bytes: u64,
        mut on_record: impl FnMut(Result<Record<'_>, DecodeError>),
    ) -> usize {
        let ring = &mut self.ring.get_mut().0;
        let mut count = 0;
        let mut bytes = 0;
        while bytes < max_bytes
            && let Some(item) = ring.next()
        {
            on_record(Record::decode(&item));
            count += 1;
            // What the record took of the ring: its 8-byte header, rounded up to 8
            // (`__bpf_ringbuf_reserve()`).
            bytes += (item.len() as u64 + 8).next_multiple_of(8);
        }
        self.drained_bytes = bytes;
        self.drain_wait = if bytes >= max_bytes {
            Duration::ZERO
        } else if count == 0 {
            (self.drain_wait * 2)
                .max(self.drain_interval)
                .min(self.idle_drain_interval)
        } else {
            self.drain_interval
        };
        self.drain_deadline = tokio::time::Instant::now() + self.drain_wait;
        count
    }

    /// Ring bytes the last [`Capture::drain`] took (records with their headers): at least what
    /// was unread when it started, plus what the kernel added while it read.
    pub fn drained_bytes(&self) -> u64 {
        self.drained_bytes
    }

    /// How long after the last drain [`Capture::readable`] returns without a wakeup:
    /// [`CaptureConfig::drain_interval`] after records, growing while the ring stays empty.
    pub fn drain_wait(&self) -> Duration {
        self.drain_wait
    }

    /// The kernel's counters now, summed over CPUs.
    pub fn totals(&self) -> Result<CaptureStats, CaptureError> {
        counters::read_totals(&self.stats).map_err(CaptureError::Map)
    }

    /// Counters of one connection, if the kernel tracks it.
    pub fn connection(&self, key: &ConnKey) -> Option<ConnStats> {
        self.connections.get(key, 0).ok()
    }

    /// The skip spans of one connection, as the kernel holds them (a chunked span's end
    /// moved along its body), if it has any.
    pub fn skip_spans(&self, key: &ConnKey) -> Option<SkipSpans> {
        self.skip.get(key, 0).ok()
    }

    /// Applies one of the monitor's commands about payload nobody reads (see
    /// `SkipCommand`): a span replaces the direction's earlier one (the connection's entry
    /// is read and written back: the other direction's span stays); forgetting deletes the
    /// entry (one the kernel already evicted is no error).
    pub fn apply_skip(&mut self, command: &SkipCommand) -> Result<(), MapError> {
        match command {
            SkipCommand::Skip { connection, range } => {
                let key = conn_key(connection);
                let mut spans = match self.skip.get(&key, 0) {
                    Ok(spans) => spans,
                    Err(MapError::KeyNotFound) => SkipSpans::default(),
                    Err(MapError::SyscallError(e))
                        if e.io_error.kind() == std::io::ErrorKind::NotFound =>
                    {
                        SkipSpans::default()
                    }
                    Err(e) => return Err(e),
                };
                spans.spans[range.direction.index()] = SkipSpan {
                    from: range.from,
                    to: range.to,
                    flags: if range.chunked { SKIP_CHUNKED } else { 0 },
                    chunks: 0,
                    data: 0,
                };
                self.skip.insert(&key, &spans, 0)
            }
            SkipCommand::Forget { connection } => match self.skip.remove(&conn_key(connection)) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                // ENOENT: no span was written, or the kernel evicted the entry.
                Err(MapError::SyscallError(e))
                    if e.io_error.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Connections in the kernel's table with their counters.
    pub fn connections(&self) -> Vec<(ConnKey, ConnStats)> {
        self.connections.iter().filter_map(Result::ok).collect()
    }

    /// Connections neither closed nor idle for `idle` (see [`counters::is_active`]).
    pub fn count_active(&self, idle: Duration) -> Result<u64, CaptureError> {
        let now = clock::coarse_now_ns()?;
        Ok(counters::count_active(
            &self.connections,
            now,
            u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX),
        ))
    }
}

/// The kernel's key of `connection` (see `parse.rs` in the eBPF crate: IPv4 addresses in the
/// first 4 bytes, ports in host order, padding zero).
fn conn_key(connection: &ConnectionKey) -> ConnKey {
    let mut key = ConnKey::ZERO;
    let family = |ip: IpAddr, out: &mut [u8; 16]| match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            FAMILY_IPV4
        }
        IpAddr::V6(v6) => {
            *out = v6.octets();
            FAMILY_IPV6
        }
    };
    key.family = family(connection.client.ip(), &mut key.client_addr);
    family(connection.server.ip(), &mut key.server_addr);
    key.client_port = connection.client.port();
    key.server_port = connection.server.port();
    key
}

impl Attachment {
    /// The interface of this attachment.
    pub fn interface(&self) -> &str {
        match self {
            Attachment::XdpDriver { interface }
            | Attachment::XdpGeneric { interface }
            | Attachment::TcxEgress { interface }
            | Attachment::TcEgress { interface, .. } => interface,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// The key the kernel builds for the same connection (`parse.rs`).
    #[test]
    fn conn_keys_match_the_kernels() {
        let v4 = ConnectionKey {
            client: "10.0.0.2:50000".parse::<SocketAddr>().unwrap(),
            server: "10.0.0.1:8080".parse::<SocketAddr>().unwrap(),
        };
        let key = conn_key(&v4);
        assert_eq!(key.family, FAMILY_IPV4);
        assert_eq!(key.client_addr[..4], [10, 0, 0, 2]);
        assert_eq!(key.client_addr[4..], [0; 12]);
        assert_eq!(key.server_addr[..4], [10, 0, 0, 1]);
        assert_eq!((key.client_port, key.server_port), (50000, 8080));
        assert_eq!((key._pad0, key._pad1), (0, 0));
        let v6 = ConnectionKey {
            client: "[fd00::2]:50000".parse::<SocketAddr>().unwrap(),
            server: "[fd00::1]:8080".parse::<SocketAddr>().unwrap(),
        };
        let key = conn_key(&v6);
        assert_eq!(key.family, FAMILY_IPV6);
        assert_eq!(key.server_addr[0], 0xfd);
        assert_eq!(key.server_addr[15], 1);
    }
}
