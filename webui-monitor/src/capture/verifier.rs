//! The verifier's own account of each capture program: processed instructions, states, time.
//!
//! How much work the verifier does for a program decides whether it loads at all: past
//! 1,000,000 processed instructions it is rejected, and how many states a kernel keeps differs
//! between kernel builds. The programs are kept far below that (see the eBPF crate's
//! `capture` module), and [`measure`] shows by how far.
//!
//! aya passes the kernel a log buffer only when a load fails, so a program that verifies leaves
//! no statistics behind. [`measure`] therefore loads each capture program once more itself:
//! the same embedded object, the same configuration written into it, maps of the same sizes,
//! relocated by `aya-obj` as aya relocates it, and `BPF_PROG_LOAD` with `BPF_LOG_STATS`. The
//! programs are closed again at once; nothing is attached. The kernel's `verified_insns` of
//! the programs aya loaded can be compared with [`ProgramStats::processed_insns`].
use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    path::Path,
    time::Duration,
};

use aya::maps::MapData;
use aya_obj::{
    EbpfSectionKind, Object,
    generated::{BPF_F_XDP_HAS_FRAGS, bpf_attach_type, bpf_attr, bpf_cmd, bpf_insn, bpf_prog_type},
};
use webui_monitor_common::{
    CONFIG_SYMBOL, CONNECTIONS_MAP, RING_MAP, SKIP_MAP, TC_PROGRAM, XDP_PROGRAM,
};

use super::{CaptureConfig, CaptureError, loader};

/// The most instructions the verifier may process for one capture program: a tenth of the
/// kernel's limit (`BPF_COMPLEXITY_LIMIT_INSNS`), so that kernels which prune less than the
/// one a change was tested on still load it.
pub const PROCESSED_INSNS_BUDGET: u64 = 100_000;

/// `BPF_LOG_STATS` (include/linux/bpf_verifier.h): the statistics.
const BPF_LOG_STATS: u32 = 4;
/// `BPF_LOG_LEVEL2`: every instruction walked, on every path (`BPF_LOG_LEVEL1` keeps only the
/// path that failed).
const BPF_LOG_LEVEL2: u32 = 2;

/// What the verifier reported for one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    pub program: &'static str,
    /// Instructions the verifier processed (`processed N insns`), the number the kernel's
    /// limit applies to.
    pub processed_insns: u64,
    /// The kernel's limit on processed instructions.
    pub insn_limit: u64,
    /// States kept for pruning, in all and at most at once.
    pub total_states: u64,
    pub peak_states: u64,
    pub max_states_per_insn: u64,
    pub verification_time: Duration,
    /// Stack bytes per subprogram, as the kernel prints them ("256+0+24").
    pub stack_depth: String,
}

impl std::fmt::Display for ProgramStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} insns processed (budget {PROCESSED_INSNS_BUDGET}, kernel limit {}), {} states \
             (peak {}, at most {} per insn), {} µs, stack {}",
            self.processed_insns,
            self.insn_limit,
            self.total_states,
            self.peak_states,
            self.max_states_per_insn,
            self.verification_time.as_micros(),
            self.stack_depth
        )
    }
}

/// Errors of [`measure`].
#[derive(Debug, thiserror::Error)]
pub enum VerifierStatsError {
    #[error("reading the embedded eBPF object failed")]
    Parse(#[source] aya_obj::ParseError),
    #[error("relocating the embedded eBPF object failed")]
    Relocate(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("creating map {name} for the statistics load failed")]
    Map {
        name: String,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("{call} for map {name} failed")]
    MapData {
        call: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("the eBPF object has no program {0}")]
    Missing(&'static str),
    #[error("writing the verifier log {path} failed")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the kernel rejected {program} on the statistics load: {source}; its log ends: {log}")]
    Load {
        program: &'static str,
        source: io::Error,
        log: String,
    },
    #[error("the verifier's statistics for {program} lack {missing:?}: {log}")]
    Log {
        program: &'static str,
        missing: &'static str,
        log: String,
    },
    #[error(transparent)]
    Config(#[from] CaptureError),
}

/// Loads each capture program with the verifier's statistics log and returns what it says.
///
/// With `full_log`, the verifier logs every instruction it walks (`BPF_LOG_LEVEL2`; tens of
/// MB, and the load takes about ten times as long) and each program's log is written to
/// `full_log/<program>.log`.
pub fn measure(
    config: &CaptureConfig,
    full_log: Option<&Path>,
) -> Result<Vec<ProgramStats>, VerifierStatsError> {
    if loader::OBJECT.is_empty() {
        return Err(CaptureError::EmptyObject.into());
    }
    let kernel = loader::kernel_config(config)?;
    let mut object = Object::parse(loader::OBJECT).map_err(VerifierStatsError::Parse)?;
    // SAFETY: `Config` is `#[repr(C)]` plain data without padding (asserted in the common
    // crate); its bytes are what the programs read.
    let config_bytes = unsafe {
        std::slice::from_raw_parts(
            (&raw const kernel).cast::<u8>(),
            size_of::<webui_monitor_common::Config>(),
        )
    };
    object
        .patch_map_data(HashMap::from([(CONFIG_SYMBOL, (config_bytes, true))]))
        .map_err(VerifierStatsError::Parse)?;
    // The program BTF carries the function info the verifier needs for subprograms such as
    // the `bpf_loop` callback. Every kernel the capture runs on (≥ 6.1) has every BTF kind
    // aya-obj would otherwise rewrite for an older one.
    let btf = object
        .fixup_and_sanitize_btf(|| Some(|_| true))
        .map_err(|e| VerifierStatsError::Relocate(Box::new(e)))?
        .map(|btf| load_btf(&btf.to_bytes()))
        .transpose()?;
    object
        .resolve_externs(None)
        .map_err(|e| VerifierStatsError::Relocate(Box::new(e)))?;

    let mut maps = Vec::new();
    for (name, map) in &object.maps {
        let mut map = map.clone();
        match name.as_str() {
            RING_MAP => map.set_max_entries(config.ring_bytes),
            CONNECTIONS_MAP | SKIP_MAP => map.set_max_entries(config.max_connections),
            _ => {}
        }
        let data =
            MapData::create(map.clone(), name, None).map_err(|source| VerifierStatsError::Map {
                name: name.clone(),
                source,
            })?;
        fill_data_section(name, &map, data.fd().as_fd().as_raw_fd())?;
        maps.push((name.clone(), data, map));
    }
    let text_sections: HashSet<usize> = object.functions.keys().map(|(s, _)| *s).collect();
    object
        .relocate_maps(
            maps.iter()
                .map(|(name, data, map)| (name.as_str(), data.fd().as_fd().as_raw_fd(), map)),
            &text_sections,
        )
        .map_err(|e| VerifierStatsError::Relocate(Box::new(e)))?;
    object
        .relocate_externs()
        .map_err(|e| VerifierStatsError::Relocate(Box::new(e)))?;
    object
        .relocate_calls(&text_sections)
        .map_err(|e| VerifierStatsError::Relocate(Box::new(e)))?;
    object.sanitize_functions(|| true);

    [XDP_PROGRAM, TC_PROGRAM]
        .into_iter()
        .map(|name| {
            let program = object
                .programs
                .get(name)
                .ok_or(VerifierStatsError::Missing(name))?;
            let function = object
                .functions
                .get(&program.function_key())
                .ok_or(VerifierStatsError::Missing(name))?;
            let kind = if name == XDP_PROGRAM {
                Kind::XdpFrags
            } else {
                Kind::SchedCls
            };
            let log = load_with_stats(name, kind, function, btf.as_ref(), full_log.is_some())?;
            if let Some(dir) = full_log {
                let path = dir.join(format!("{name}.log"));
                std::fs::write(&path, &log).map_err(|source| VerifierStatsError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            parse_log(name, &log)
        })
        .collect()
}

/// Writes a global-data section's initial bytes into its map and freezes read-only data, as
/// aya's loader does.
fn fill_data_section(name: &str, map: &aya_obj::Map, fd: RawFd) -> Result<(), VerifierStatsError> {
    let kind = map.section_kind();
    if !matches!(
        kind,
        EbpfSectionKind::Data | EbpfSectionKind::Rodata | EbpfSectionKind::Bss
    ) {
        return Ok(());
    }
    let mut value = map.data().to_vec();
    if !value.is_empty() {
        let key = 0u32;
        // SAFETY: bpf_attr is plain data; all-zero is valid.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the map-element member of the union.
        let u = unsafe { &mut attr.__bindgen_anon_2 };
        u.map_fd = fd as u32;
        u.key = (&raw const key) as u64;
        u.__bindgen_anon_1.value = value.as_mut_ptr() as u64;
        bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr).map_err(|source| {
            VerifierStatsError::MapData {
                call: "BPF_MAP_UPDATE_ELEM",
                name: name.to_owned(),
                source,
            }
        })?;
    }
    if kind == EbpfSectionKind::Rodata {
        // SAFETY: as above.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: BPF_MAP_FREEZE reads the map-element member's map_fd.
        attr.__bindgen_anon_2.map_fd = fd as u32;
        bpf(bpf_cmd::BPF_MAP_FREEZE, &mut attr).map_err(|source| VerifierStatsError::MapData {
            call: "BPF_MAP_FREEZE",
            name: name.to_owned(),
            source,
        })?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    /// `xdp.frags`: XDP with `BPF_F_XDP_HAS_FRAGS`.
    XdpFrags,
    /// `classifier`.
    SchedCls,
}

/// `BPF_BTF_LOAD` of the object's (fixed-up) BTF.
fn load_btf(bytes: &[u8]) -> Result<OwnedFd, VerifierStatsError> {
    let mut log = vec![0u8; 64 * 1024];
    // SAFETY: bpf_attr is plain data; all-zero is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the BTF-load member of the union.
    let u = unsafe { &mut attr.__bindgen_anon_7 };
    u.btf = bytes.as_ptr() as u64;
    u.btf_size = bytes.len() as u32;
    u.btf_log_buf = log.as_mut_ptr() as u64;
    u.btf_log_size = log.len() as u32;
    u.btf_log_level = 1;
    match bpf(bpf_cmd::BPF_BTF_LOAD, &mut attr) {
        // SAFETY: BPF_BTF_LOAD returned a new descriptor that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(source) => Err(VerifierStatsError::Load {
            program: "(object BTF)",
            source,
            log: last_lines(&nul_terminated(&log), 6),
        }),
    }
}

fn nul_terminated(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// `BPF_PROG_LOAD` with the statistics log; the program is closed again before returning.
fn load_with_stats(
    program: &'static str,
    kind: Kind,
    function: &aya_obj::Function,
    btf: Option<&OwnedFd>,
    full: bool,
) -> Result<String, VerifierStatsError> {
    let instructions: &[bpf_insn] = &function.instructions;
    let license = c"GPL";
    // The kernel takes at most UINT_MAX >> 2 bytes (kernel/bpf/log.c).
    let mut log = vec![
        0u8;
        if full {
            (u32::MAX >> 2) as usize
        } else {
            64 * 1024
        }
    ];
    // SAFETY: bpf_attr is plain data; all-zero is valid.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the program-load member of the union.
    let u = unsafe { &mut attr.__bindgen_anon_3 };
    match kind {
        Kind::XdpFrags => {
            u.prog_type = bpf_prog_type::BPF_PROG_TYPE_XDP as u32;
            u.expected_attach_type = bpf_attach_type::BPF_XDP as u32;
            u.prog_flags = BPF_F_XDP_HAS_FRAGS;
        }
        Kind::SchedCls => u.prog_type = bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS as u32,
    }
    u.insns = instructions.as_ptr() as u64;
    u.insn_cnt = instructions.len() as u32;
    u.license = license.as_ptr() as u64;
    u.log_level = if full {
        BPF_LOG_STATS | BPF_LOG_LEVEL2
    } else {
        BPF_LOG_STATS
    };
    u.log_buf = log.as_mut_ptr() as u64;
    u.log_size = log.len() as u32;
    if let Some(btf) = btf {
        u.prog_btf_fd = btf.as_raw_fd() as u32;
        let func_info = &function.func_info.func_info;
        u.func_info = func_info.as_ptr() as u64;
        u.func_info_cnt = func_info.len() as u32;
        u.func_info_rec_size = function.func_info_rec_size as u32;
        let line_info = &function.line_info.line_info;
        u.line_info = line_info.as_ptr() as u64;
        u.line_info_cnt = line_info.len() as u32;
        u.line_info_rec_size = function.line_info_rec_size as u32;
    }
    let name = CString::new(&program.as_bytes()[..program.len().min(15)]).unwrap_or_default();
    for (dst, src) in u.prog_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    let result = bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr);
    let text = nul_terminated(&log);
    match result {
        Ok(fd) => {
            // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
            drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            Ok(text)
        }
        Err(source) => Err(VerifierStatsError::Load {
            program,
            source,
            log: last_lines(&text, 6),
        }),
    }
}

/// The `bpf(2)` system call.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, fully initialised bpf_attr of the size passed; the kernel
    // reads (and for some commands writes) only within it and the buffers it points to, which
    // outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// Reads the statistics lines of a verifier log (`print_verification_stats()` in
/// kernel/bpf/verifier.c):
///
/// ```text
/// verification time 1234 usec
/// stack depth 256+0+24
/// processed 5678 insns (limit 1000000) max_states_per_insn 4 total_states 310 peak_states 120 mark_read 20
/// ```
pub fn parse_log(program: &'static str, log: &str) -> Result<ProgramStats, VerifierStatsError> {
    let missing = |what| VerifierStatsError::Log {
        program,
        missing: what,
        log: last_lines(log, 6),
    };
    let processed = log
        .lines()
        .rev()
        .find(|l| l.starts_with("processed "))
        .ok_or_else(|| missing("processed"))?;
    let words: Vec<&str> = processed.split_whitespace().collect();
    let after = |key: &'static str| -> Result<u64, VerifierStatsError> {
        words
            .iter()
            .position(|w| w.trim_start_matches('(') == key)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.trim_end_matches(')').parse().ok())
            .ok_or_else(|| missing(key))
    };
    let processed_insns = after("processed")?;
    let insn_limit = after("limit")?;
    let verification_time = log
        .lines()
        .find_map(|l| l.strip_prefix("verification time "))
        .and_then(|rest| rest.trim_end_matches(" usec").trim().parse().ok())
        .map(Duration::from_micros)
        .ok_or_else(|| missing("verification time"))?;
    let stack_depth = log
        .lines()
        .find_map(|l| l.strip_prefix("stack depth "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(ProgramStats {
        program,
        processed_insns,
        insn_limit,
        total_states: after("total_states")?,
        peak_states: after("peak_states")?,
        max_states_per_insn: after("max_states_per_insn")?,
        verification_time,
        stack_depth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_statistics_lines() {
        let log = "func#0 @0\nverification time 2307 usec\nstack depth 256+0+56+24\n\
                   processed 12345 insns (limit 1000000) max_states_per_insn 4 total_states 310 \
                   peak_states 120 mark_read 20\n";
        assert_eq!(
            parse_log("p", log).unwrap(),
            ProgramStats {
                program: "p",
                processed_insns: 12_345,
                insn_limit: 1_000_000,
                total_states: 310,
                peak_states: 120,
                max_states_per_insn: 4,
                verification_time: Duration::from_micros(2307),
                stack_depth: "256+0+56+24".into(),
            }
        );
    }

    #[test]
    fn a_log_without_statistics_is_an_error_that_names_what_is_missing() {
        let error = parse_log("p", "0: R1=ctx()\n").unwrap_err();
        assert!(error.to_string().contains("lack \"processed\""), "{error}");
    }
}
