//! `webui-monitor check`: can this machine run the capture, and if not, what is missing.
//!
//! Each check is tried for real where possible (the programs are loaded, attached and detached
//! again), because feature probing by kernel version misses distribution backports and
//! lockdown/LSM policies.
use std::fmt;

use aya::programs::{LinkOrder, TcAttach, TcAttachType, XdpMode, tc::NlOptions};
use webui_monitor_common::XDP_PROGRAM;

use super::{CaptureConfig, TcAttachMode, XdpAttachMode, clsact::Clsact, loader, verifier};

/// Oldest kernel with everything the programs need: XDP multi-buffer and `bpf_xdp_load_bytes`
/// (5.18). `bpf_loop` (5.17), BPF ring buffers (5.8) and atomics (5.12) are older. Tested from
/// 6.1 on (docs/kernels.md).
pub const MIN_KERNEL: (u32, u32) = (5, 18);

/// Oldest kernel with tcx (6.6). Before it the egress program is attached as a classic TC
/// filter, which works as well but outlives a killed process (see `capture::clsact`).
pub const TCX_KERNEL: (u32, u32) = (6, 6);

/// Outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    /// `Ok(detail)` or `Err(what is missing)`.
    pub outcome: Result<String, String>,
    /// Informational: shown, but not a verdict on the machine.
    pub note: bool,
}

/// All checks, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.outcome.is_ok())
    }

    /// One line per failed check, for the error message.
    pub fn missing(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.outcome.as_ref().err().map(|e| format!("{}: {e}", c.name)))
            .collect()
    }

    fn push(&mut self, name: impl Into<String>, outcome: Result<String, String>) -> bool {
        let ok = outcome.is_ok();
        self.checks.push(Check {
            name: name.into(),
            outcome,
            note: false,
        });
        ok
    }

    fn note(&mut self, name: impl Into<String>, text: String) {
        self.checks.push(Check {
            name: name.into(),
            outcome: Ok(text),
            note: true,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            match &check.outcome {
                Ok(detail) if check.note => writeln!(f, "note  {:<28} {detail}", check.name)?,
                Ok(detail) => writeln!(f, "ok    {:<28} {detail}", check.name)?,
                Err(missing) => writeln!(f, "FAIL  {:<28} {missing}", check.name)?,
            }
        }
        Ok(())
    }
}

/// Parses the `major.minor` prefix of a kernel release string ("6.18.44-fc-v657").
pub fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The capabilities that loading and attaching need and `cap_eff` (a `CapEff` mask) lacks:
/// CAP_NET_ADMIN (networking program types, XDP and tcx links), CAP_BPF (maps, BTF, programs)
/// and CAP_PERFMON (the verifier accepts pointer arithmetic on packet data only with it:
/// `allow_ptr_leaks` in kernel/bpf/verifier.c) — CAP_SYS_ADMIN stands in for the last two.
pub fn missing_capabilities(cap_eff: u64) -> Vec<&'static str> {
    const NET_ADMIN: u64 = 1 << 12;
    const SYS_ADMIN: u64 = 1 << 21;
    const PERFMON: u64 = 1 << 38;
    const BPF: u64 = 1 << 39;
    let mut missing = Vec::new();
    for (bit, name) in [
        (BPF, "CAP_BPF"),
        (PERFMON, "CAP_PERFMON"),
        (NET_ADMIN, "CAP_NET_ADMIN"),
    ] {
        let covered = cap_eff & bit != 0 || (bit != NET_ADMIN && cap_eff & SYS_ADMIN != 0);
        if !covered {
            missing.push(name);
        }
    }
    missing
}

/// `Err` with what to do when the effective capabilities cannot load and attach.
pub fn capabilities_sufficient(cap_eff: u64) -> Result<(), String> {
    let missing = missing_capabilities(cap_eff);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} missing: run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (the \
             systemd unit deploy/systemd/webui-monitor.service does)",
            missing.join(", ")
        ))
    }
}

/// Fails early, with the fix, when this process cannot load and attach the programs (the
/// kernel's own refusal — EPERM, or a verifier log about pointer arithmetic — says neither).
pub fn require_capabilities() -> Result<(), String> {
    match effective_capabilities() {
        Some(caps) => capabilities_sufficient(caps),
        // Not Linux-like /proc: let the kernel decide.
        None => Ok(()),
    }
}

fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Runs every check for `config` (its interfaces and sizes); with `verifier_log`, the full
/// verifier logs go there (see [`verifier::measure`]).
pub fn run(config: &CaptureConfig, verifier_log: Option<&std::path::Path>) -> Report {
    let mut report = Report::default();
    let release = kernel_release();
    let version = release.as_deref().and_then(parse_kernel_release);
    report.push(
        "kernel version",
        match (&release, version) {
            (Some(r), Some(v)) if v >= TCX_KERNEL => Ok(r.clone()),
            (Some(r), Some(v)) if v >= MIN_KERNEL => Ok(format!(
                "{r}: no tcx (Linux {}.{} brings it): egress uses classic TC (clsact)",
                TCX_KERNEL.0, TCX_KERNEL.1
            )),
            (Some(r), _) => Err(format!(
                "{r}: Linux {}.{} or newer needed (XDP multi-buffer and bpf_xdp_load_bytes)",
                MIN_KERNEL.0, MIN_KERNEL.1
            )),
            (None, _) => Err("cannot read /proc/sys/kernel/osrelease".into()),
        },
    );
    report.push(
        "BTF",
        if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            Ok("/sys/kernel/btf/vmlinux".into())
        } else {
            Err(
                "/sys/kernel/btf/vmlinux missing: kernel built without CONFIG_DEBUG_INFO_BTF"
                    .into(),
            )
        },
    );
    let caps = match effective_capabilities() {
        Some(caps) => capabilities_sufficient(caps).map(|()| format!("CapEff {caps:#x}")),
        None => Err("cannot read CapEff from /proc/self/status".into()),
    };
    report.push("capabilities", caps);

    // Patterns are checked on the interfaces that match them now.
    let present = super::links::dump().unwrap_or_default();
    let mut interfaces = Vec::new();
    for entry in &config.interfaces {
        if !crate::config::schema::is_interface_pattern(entry) {
            interfaces.push(entry.clone());
            continue;
        }
        let pattern = glob::Pattern::new(entry).ok();
        let matching: Vec<String> = present
            .iter()
            .filter(|l| pattern.as_ref().is_some_and(|p| p.matches(&l.name)))
            .map(|l| l.name.clone())
            .collect();
        report.note(
            format!("interface pattern {entry}"),
            if matching.is_empty() {
                "matches no interface now (attached when one appears; /readyz 503 until then)"
                    .to_owned()
            } else {
                format!("matches {}", matching.join(", "))
            },
        );
        interfaces.extend(matching);
    }
    let mut interfaces_ok = true;
    for interface in &interfaces {
        let outcome = match loader::is_loopback(interface) {
            Ok(true) => Ok("loopback: XDP only".into()),
            Ok(false) => Ok("XDP ingress + TC egress".into()),
            Err(e) => Err(e.to_string()),
        };
        interfaces_ok &= report.push(format!("interface {interface}"), outcome);
    }

    let mut ebpf = match loader::load(config) {
        Ok(ebpf) => {
            report.push(
                "load (ring buffer, verifier)",
                Ok("programs verified, ring buffer created".into()),
            );
            ebpf
        }
        Err(error) => {
            report.push("load (ring buffer, verifier)", Err(error_chain(&error)));
            return report;
        }
    };
    match verifier::measure(config, verifier_log) {
        Ok(programs) => {
            for stats in programs {
                report.push(format!("verifier {}", stats.program), Ok(stats.to_string()));
            }
        }
        // The programs loaded: statistics that cannot be had do not stop the capture.
        Err(error) => report.note(
            "verifier statistics",
            format!("unavailable: {}", error_chain(&error)),
        ),
    }
    if !interfaces_ok {
        return report;
    }
    for interface in &interfaces {
        let outcome = try_xdp(&mut ebpf, interface, config.xdp_mode);
        report.push(format!("XDP attach on {interface}"), outcome);
        if !matches!(loader::is_loopback(interface), Ok(true)) {
            let outcome = try_tc(&mut ebpf, interface, config.tc_mode);
            report.push(format!("TC egress attach on {interface}"), outcome);
        }
    }
    report
}

fn try_xdp(ebpf: &mut aya::Ebpf, interface: &str, mode: XdpAttachMode) -> Result<String, String> {
    let name = loader::interface_name(interface).map_err(|e| error_chain(&e))?;
    let program = loader::xdp(ebpf, XDP_PROGRAM).map_err(|e| error_chain(&e))?;
    let driver = match mode {
        XdpAttachMode::Generic => None,
        XdpAttachMode::Driver => Some(
            program
                .attach(name.as_c_str(), XdpMode::Driver)
                .map_err(|e| format!("driver mode: {}", error_chain(&e)))?,
        ),
        XdpAttachMode::Auto => program.attach(name.as_c_str(), XdpMode::Driver).ok(),
    };
    let (mode, id) = match driver {
        Some(id) => ("driver mode", id),
        None => (
            "generic mode",
            program
                .attach(name.as_c_str(), XdpMode::Skb)
                .map_err(|e| error_chain(&e))?,
        ),
    };
    program.detach(id).map_err(|e| error_chain(&e))?;
    Ok(format!("{mode}; detached again"))
}

fn try_tc(ebpf: &mut aya::Ebpf, interface: &str, mode: TcAttachMode) -> Result<String, String> {
    let name = loader::interface_name(interface).map_err(|e| error_chain(&e))?;
    let program = loader::tc(ebpf).map_err(|e| error_chain(&e))?;
    let tcx_error = if mode == TcAttachMode::Classic {
        "not tried (tc_mode classic)".to_owned()
    } else {
        let tcx = program.attach(
            name.as_c_str(),
            TcAttach::Tcx {
                attach_type: TcAttachType::Egress,
                order: LinkOrder::default(),
            },
        );
        match tcx {
            Ok(id) => {
                program.detach(id).map_err(|e| error_chain(&e))?;
                return Ok("tcx; detached again".into());
            }
            Err(error) if mode == TcAttachMode::Tcx => {
                return Err(format!(
                    "tcx (Linux 6.6 or later; tc_mode \"auto\" falls back to classic TC): {}",
                    error_chain(&error)
                ));
            }
            Err(error) => error_chain(&error),
        }
    };
    let qdisc = Clsact::ensure(&name)
        .map_err(|e| format!("tcx: {tcx_error}; classic TC: {}", error_chain(&e)))?;
    let attached = program.attach(
        name.as_c_str(),
        TcAttach::Netlink {
            parent: TcAttachType::Egress.into(),
            options: NlOptions::default(),
        },
    );
    let detached = attached.and_then(|id| program.detach(id));
    let removed = qdisc.remove();
    detached.map_err(|e| format!("tcx: {tcx_error}; classic TC: {}", error_chain(&e)))?;
    removed.map_err(|e| format!("removing the clsact qdisc added for the check: {e}"))?;
    Ok(format!(
        "classic TC (clsact; tcx: {tcx_error}); detached again"
    ))
}

/// An error and its sources; a verifier log inside is cut to its last lines (the reason).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    const KEEP_LINES: usize = 6;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > 2 * KEEP_LINES {
        let omitted = lines.len() - KEEP_LINES - 1;
        let mut short = format!("{}\n  [... {omitted} lines ...]\n", lines[0]);
        short.push_str(&lines[lines.len() - KEEP_LINES..].join("\n"));
        return short;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_kernel_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_kernel_release("6.6"), Some((6, 6)));
        assert_eq!(parse_kernel_release("garbage"), None);
        assert!(parse_kernel_release("6.18.44").unwrap() >= TCX_KERNEL);
        assert!(parse_kernel_release("6.1.158").unwrap() >= MIN_KERNEL);
        assert!(parse_kernel_release("6.1.158").unwrap() < TCX_KERNEL);
        assert!(parse_kernel_release("5.15.0-91-generic").unwrap() < MIN_KERNEL);
    }

    #[test]
    fn capabilities() {
        assert!(capabilities_sufficient(0x000001ffffffffff).is_ok());
        assert!(capabilities_sufficient((1 << 12) | (1 << 21)).is_ok());
        assert!(capabilities_sufficient((1 << 12) | (1 << 38) | (1 << 39)).is_ok());
        assert!(capabilities_sufficient((1 << 12) | (1 << 39)).is_err());
        assert_eq!(missing_capabilities((1 << 12) | (1 << 39)), ["CAP_PERFMON"]);
        assert_eq!(
            missing_capabilities((1 << 38) | (1 << 39)),
            ["CAP_NET_ADMIN"]
        );
        assert_eq!(
            missing_capabilities(0),
            ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]
        );
        assert!(capabilities_sufficient(1 << 21).is_err());
        assert!(capabilities_sufficient(0).is_err());
    }

    #[test]
    fn report_lists_what_is_missing() {
        let mut report = Report::default();
        report.push("BTF", Ok("x".into()));
        report.push("capabilities", Err("CAP_BPF missing".into()));
        assert!(!report.ok());
        assert_eq!(report.missing(), vec!["capabilities: CAP_BPF missing"]);
        assert_eq!(
            report.to_string(),
            format!(
                "ok    {:<28} x\nFAIL  {:<28} CAP_BPF missing\n",
                "BTF", "capabilities"
            )
        );
    }
}
