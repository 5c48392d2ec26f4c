//! Loading the embedded eBPF object with the daemon's configuration, and attaching it.
//!
//! Where each program goes (and why loopback gets XDP only) is explained in the eBPF crate's
//! top-level docs (`webui-monitor-ebpf/src/main.rs`).
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{SchedClassifier, Xdp},
};
use webui_monitor_common::{
    CONFIG_SYMBOL, CONNECTIONS_MAP, CaptureStats, Config, ConnKey, ConnStats, RING_MAP, SKIP_MAP,
    STATS_MAP, SkipSpans, TC_PROGRAM, XDP_PROGRAM,
};

use super::{CaptureConfig, CaptureError};

/// The eBPF object `build.rs` produced (empty when built with `AYA_BUILD_SKIP=1`).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/webui-monitor"));

/// How a program is attached to one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// XDP in the driver (native).
    XdpDriver { interface: String },
    /// Generic (skb) XDP: the driver has no native XDP (always the case on `lo`).
    XdpGeneric { interface: String },
    /// The TC program on the interface's tcx egress hook.
    TcxEgress { interface: String },
    /// The TC program as a `cls_bpf` filter on the `clsact` qdisc's egress (kernels without
    /// tcx), and whether the qdisc was added for it.
    TcEgress {
        interface: String,
        added_qdisc: bool,
    },
}

impl std::fmt::Display for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attachment::XdpDriver { interface } => write!(f, "XDP (driver mode) on {interface}"),
            Attachment::XdpGeneric { interface } => {
                write!(f, "XDP (generic mode) on {interface}")
            }
            Attachment::TcxEgress { interface } => write!(f, "tcx egress on {interface}"),
            Attachment::TcEgress {
                interface,
                added_qdisc,
            } => {
                let qdisc = if *added_qdisc { "added" } else { "existing" };
                write!(f, "classic TC egress on {interface} ({qdisc} clsact qdisc)")
            }
        }
    }
}

/// The maps userspace reads, taken out of the [`Ebpf`] so tasks can own them.
pub struct Maps {
    pub ring: RingBuf<MapData>,
    pub stats: PerCpuArray<MapData, CaptureStats>,
    pub connections: HashMap<MapData, ConnKey, ConnStats>,
    pub skip: HashMap<MapData, ConnKey, SkipSpans>,
}

/// The reader is woken once this fraction of the ring is unread (see [`Config::wakeup_bytes`]);
/// until then it collects records every [`CaptureConfig::drain_interval`] (less often while
/// the ring stays empty, see [`CaptureConfig::idle_drain_interval`]). An eighth of the
/// default ring is 2 MiB, 1.6 ms at 10 Gbit/s: plenty of room left for the reader to wake up.
pub const WAKEUP_FRACTION: u32 = 8;

/// Validates `config` and turns it into the kernel's [`Config`].
pub fn kernel_config(config: &CaptureConfig) -> Result<Config, CaptureError> {
    config.validate().map_err(CaptureError::Invalid)?;
    let mut kernel = Config::EMPTY;
    for (slot, port) in kernel.ports.iter_mut().zip(&config.ports) {
        *slot = *port;
    }
    kernel.port_count = config.ports.len() as u32;
    kernel.wakeup_bytes = config.ring_bytes / WAKEUP_FRACTION;
    kernel.skip = u32::from(config.skip_min_bytes > 0);
    Ok(kernel)
}

/// Loads the object with `config` written into it and loads (verifies) both capture programs.
/// Nothing is attached yet.
pub fn load(config: &CaptureConfig) -> Result<Ebpf, CaptureError> {
    if OBJECT.is_empty() {
        return Err(CaptureError::EmptyObject);
    }
    let kernel = kernel_config(config)?;
    let mut ebpf = EbpfLoader::new()
        .override_global(CONFIG_SYMBOL, &kernel, true)
        .map_max_entries(RING_MAP, config.ring_bytes)
        .map_max_entries(CONNECTIONS_MAP, config.max_connections)
        .map_max_entries(SKIP_MAP, config.max_connections)
        .load(OBJECT)
        .map_err(|e| CaptureError::Load(Box::new(e)))?;
    xdp(&mut ebpf, XDP_PROGRAM)?
        .load()
        .map_err(|source| CaptureError::Verify {
            program: XDP_PROGRAM,
            source,
        })?;
    tc(&mut ebpf)?
        .load()
        .map_err(|source| CaptureError::Verify {
            program: TC_PROGRAM,
            source,
        })?;
    Ok(ebpf)
}

/// The XDP program `name` of a loaded object.
pub fn xdp<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, CaptureError> {
    ebpf.program_mut(name)
        .ok_or(CaptureError::Missing(name))?
        .try_into()
        .map_err(|source| CaptureError::Verify {
            program: name,
            source,
        })
}

/// The TC program of a loaded object.
pub fn tc(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, CaptureError> {
    ebpf.program_mut(TC_PROGRAM)
        .ok_or(CaptureError::Missing(TC_PROGRAM))?
        .try_into()
        .map_err(|source| CaptureError::Verify {
            program: TC_PROGRAM,
            source,
        })
}

/// Takes the maps userspace reads out of `ebpf`.
pub fn take_maps(ebpf: &mut Ebpf) -> Result<Maps, CaptureError> {
    let mut take = |name: &'static str| ebpf.take_map(name).ok_or(CaptureError::Missing(name));
    let ring = take(RING_MAP)?;
    let stats = take(STATS_MAP)?;
    let connections = take(CONNECTIONS_MAP)?;
    let skip = take(SKIP_MAP)?;
    Ok(Maps {
        ring: RingBuf::try_from(ring).map_err(CaptureError::Map)?,
        stats: PerCpuArray::try_from(stats).map_err(CaptureError::Map)?,
        connections: HashMap::try_from(connections).map_err(CaptureError::Map)?,
        skip: HashMap::try_from(skip).map_err(CaptureError::Map)?,
    })
}

/// `interface` as the C string the attach calls take.
pub fn interface_name(interface: &str) -> Result<std::ffi::CString, CaptureError> {
    std::ffi::CString::new(interface).map_err(|_| CaptureError::NoInterface(interface.to_owned()))
}

/// Whether `interface` is a loopback device (`IFF_LOOPBACK`).
///
/// Asked through `SIOCGIFFLAGS` on a socket rather than sysfs: a socket belongs to the calling
/// thread's network namespace, as the attach calls do, while /sys shows the namespace it was
/// mounted in.
pub fn is_loopback(interface: &str) -> Result<bool, CaptureError> {
    let missing = || CaptureError::NoInterface(interface.to_owned());
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(missing());
    }
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(CaptureError::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of the ifreq we own.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(missing());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    Ok(flags as libc::c_int & libc::IFF_LOOPBACK != 0)
}
