//! Capabilities after attaching: the daemon keeps only what later work needs and sets
//! `no_new_privs`, so the code that parses attacker bytes (HTTP, JSON, brotli, zstd, SQLite)
//! runs with as little as possible.
//!
//! Kept, each only if the process holds it:
//! * `CAP_BPF`: reading the programs' maps (kernel counters, the connection table) — kernels
//!   before 6.5 check it on every `bpf()` call when unprivileged BPF is disabled, as Debian
//!   does — and creating the links that attach the loaded programs to interfaces that appear
//!   later;
//! * `CAP_NET_ADMIN`: attaching to and detaching from interfaces (XDP and tcx links, classic TC
//!   filters over netlink);
//! * `CAP_DAC_READ_SEARCH`: re-reading Open WebUI's database when it belongs to another user
//!   (only a daemon started as root holds it; the systemd unit grants it not).
//!
//! Dropped: `CAP_PERFMON` (needed only while the verifier checks the programs at load) and
//! everything else a root start brings (`CAP_SYS_ADMIN`, `CAP_DAC_OVERRIDE`, …), from the
//! effective, permitted, inheritable and ambient sets, and from the bounding set where the
//! process may change it (`CAP_SETPCAP`, which root has), so not even executing a program
//! could bring them back.
//!
//! Capabilities and `no_new_privs` belong to each thread. The thread that attaches — the one
//! running the daemon's main loop, which also attaches to later interfaces and reads the maps —
//! keeps [`KEPT`] ([`drop_after_attach`]); every other thread — the runtime's workers (the
//! metrics server) and the audit writer — drops everything when it starts
//! ([`drop_all_in_this_thread`]), and threads started later inherit the set of the thread
//! that starts them.
use caps::{CapSet, Capability, CapsHashSet};

/// What could not be dropped.
#[derive(Debug, thiserror::Error)]
#[error(
    "dropping capabilities after attaching failed: {0} (the daemon would run with more privileges than it needs; check the process's capability sets with `grep Cap /proc/PID/status`)"
)]
pub struct PrivilegeError(String);

/// The capabilities kept after attaching, in the order documented above.
pub const KEPT: [Capability; 3] = [
    Capability::CAP_BPF,
    Capability::CAP_NET_ADMIN,
    Capability::CAP_DAC_READ_SEARCH,
];

/// What [`drop_after_attach`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Capabilities still permitted.
    pub kept: Vec<Capability>,
    /// Capabilities removed from the permitted set.
    pub dropped: Vec<Capability>,
    /// Whether the bounding set was cut too (needs `CAP_SETPCAP`).
    pub bounding_cut: bool,
}

/// Drops every capability of the calling thread but [`KEPT`] and sets its `no_new_privs`.
/// Call on the main loop's thread once the programs are loaded and attached.
pub fn drop_after_attach() -> Result<Dropped, PrivilegeError> {
    drop_to(&KEPT)
}

/// Drops every capability of the calling thread and sets its `no_new_privs`: for threads that
/// never need one (the runtime's workers, from `on_thread_start`).
pub fn drop_all_in_this_thread() -> Result<Dropped, PrivilegeError> {
    drop_to(&[])
}

fn drop_to(wanted: &[Capability]) -> Result<Dropped, PrivilegeError> {
    let err = |what: &str, e: caps::errors::CapsError| PrivilegeError(format!("{what}: {e}"));
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| err("reading", e))?;
    let keep: CapsHashSet = wanted
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    // The bounding set first: cutting it needs CAP_SETPCAP, which goes with the rest below.
    let bounding_cut = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(|e| err("reading", e))?;
    if bounding_cut {
        for cap in caps::read(None, CapSet::Bounding).map_err(|e| err("reading", e))? {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| err("bounding set", e))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient set", e))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| err("inheritable set", e))?;
    // Effective must stay a subset of permitted: shrink it first.
    caps::set(None, CapSet::Effective, &keep).map_err(|e| err("effective set", e))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| err("permitted set", e))?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers; it only sets a flag of
    // the calling process (inherited by its threads and children) and cannot be undone.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(PrivilegeError(format!(
            "no_new_privs: {}",
            std::io::Error::last_os_error()
        )));
    }
    let kept: Vec<Capability> = wanted
        .iter()
        .copied()
        .filter(|c| keep.contains(c))
        .collect();
    let mut dropped: Vec<Capability> = permitted.difference(&keep).copied().collect();
    dropped.sort_by_key(|c| c.index());
    Ok(Dropped {
        kept,
        dropped,
        bounding_cut,
    })
}
