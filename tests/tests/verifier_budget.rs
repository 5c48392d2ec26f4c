//! The capture programs stay far below the verifier's limits, whatever the configuration: at
//! most `PROCESSED_INSNS_BUDGET` (a tenth of the kernel's 1,000,000) processed instructions
//! each, so kernels that prune less than this one still load them. Needs root (or CAP_BPF +
//! CAP_PERFMON). `cargo xtask test-kernels` runs this file in every kernel of the matrix.
use webui_monitor::capture::{
    CaptureConfig, loader,
    verifier::{self, PROCESSED_INSNS_BUDGET, ProgramStats},
};
use webui_monitor_common::{MAX_PORTS, TC_PROGRAM, XDP_PROGRAM};

/// The configurations whose programs the verifier sees differently: the port list is read
/// from `.rodata`, so its length changes the walk; map sizes do not, but are covered anyway.
fn configurations() -> Vec<(&'static str, CaptureConfig)> {
    vec![
        ("default (one port)", CaptureConfig::default()),
        (
            "16 ports",
            CaptureConfig {
                ports: (8000..8000 + MAX_PORTS as u16).collect(),
                ..CaptureConfig::default()
            },
        ),
        (
            "skipping unread bodies",
            CaptureConfig {
                skip_min_bytes: 8 * 1024,
                ..CaptureConfig::default()
            },
        ),
        (
            "16 ports, skipping unread bodies",
            CaptureConfig {
                ports: (8000..8000 + MAX_PORTS as u16).collect(),
                skip_min_bytes: 8 * 1024,
                ..CaptureConfig::default()
            },
        ),
        (
            "smallest maps",
            CaptureConfig {
                ring_bytes: 4096,
                max_connections: 1,
                ..CaptureConfig::default()
            },
        ),
    ]
}

#[test]
fn every_program_verifies_within_the_budget() {
    for (name, config) in configurations() {
        let stats = verifier::measure(&config, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let programs: Vec<&str> = stats.iter().map(|s| s.program).collect();
        assert_eq!(programs, [XDP_PROGRAM, TC_PROGRAM], "{name}");
        for ProgramStats {
            program,
            processed_insns,
            ..
        } in &stats
        {
            println!("{name}: {program}: {processed_insns} processed insns");
            assert!(
                *processed_insns <= PROCESSED_INSNS_BUDGET,
                "{name}: {program} took {processed_insns} processed instructions, over the \
                 budget of {PROCESSED_INSNS_BUDGET}: {stats:?}"
            );
        }
    }
}

/// The statistics load is the load the daemon does: the kernel's own count for the programs
/// aya loaded (`verified_insns`, bpf_prog_info) is the one the statistics log reports.
#[test]
fn the_statistics_describe_the_programs_the_daemon_loads() {
    let config = CaptureConfig::default();
    let stats = verifier::measure(&config, None).unwrap();
    let mut ebpf = loader::load(&config).unwrap();
    for program in [XDP_PROGRAM, TC_PROGRAM] {
        let info = ebpf
            .program_mut(program)
            .unwrap()
            .info()
            .expect("program info");
        let measured = stats.iter().find(|s| s.program == program).unwrap();
        assert_eq!(
            info.verified_instruction_count().map(u64::from),
            Some(measured.processed_insns),
            "{program}"
        );
    }
}

/// On BPF, `memset`, `memcpy`, `memmove` and `memcmp` are calls into byte loops (aya-ebpf's)
/// that the verifier walks byte by byte, once per caller state: none may be called. They can
/// appear whenever LLVM merges stores of a value it sees through, so the object's call
/// relocations are checked rather than the source. (The linker keeps the functions' bodies;
/// what matters is that nothing calls them.)
#[test]
fn the_object_calls_no_memory_builtins() {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};
    let file = object::File::parse(loader::OBJECT).expect("the embedded eBPF object");
    let mut calls = Vec::new();
    let mut relocations = 0;
    for section in file.sections() {
        for (_, relocation) in section.relocations() {
            relocations += 1;
            let RelocationTarget::Symbol(index) = relocation.target() else {
                continue;
            };
            let name = file
                .symbol_by_index(index)
                .and_then(|symbol| symbol.name())
                .unwrap_or_default();
            if ["memset", "memcpy", "memmove", "memcmp", "bcmp"].contains(&name) {
                calls.push(format!("{} in {}", name, section.name().unwrap_or("?")));
            }
        }
    }
    assert!(relocations > 0, "the object's relocations are read");
    assert_eq!(calls, Vec::<String>::new(), "calls into memory builtins");
}
