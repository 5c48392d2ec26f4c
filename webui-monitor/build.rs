//! Builds the eBPF object (`webui-monitor-ebpf`) for the BPF target and places it in `OUT_DIR`,
//! where `capture::loader` embeds it.
//!
//! The eBPF crate is `no_std` and needs `core` built for `bpfel-unknown-none`. We build it on the
//! pinned stable toolchain with `RUSTC_BOOTSTRAP=1` (which unlocks `-Z build-std=core`, as the
//! Linux kernel does for its Rust code) instead of requiring a nightly toolchain.
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build (for work on the sans-IO core on machines without
//! bpf-linker); an empty object is embedded and `capture` reports it at run time.
use std::{env, fs, path::PathBuf};

use anyhow::Context as _;

const EBPF_PACKAGE: &str = "webui-monitor-ebpf";
/// The `[[bin]]` name of the eBPF crate: aya-build copies it to `OUT_DIR/<name>`.
const EBPF_OBJECT: &str = "webui-monitor";

fn main() -> anyhow::Result<()> {
    let toolchain = env::var("WEBUI_MONITOR_EBPF_TOOLCHAIN").unwrap_or_else(|_| "1.98.0".into());
    println!("cargo::rerun-if-env-changed=WEBUI_MONITOR_EBPF_TOOLCHAIN");
    // SAFETY: the build script is single-threaded at this point.
    unsafe { env::set_var("RUSTC_BOOTSTRAP", "1") };
    let root_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?)
        .parent()
        .context("workspace root")?
        .join(EBPF_PACKAGE);
    let root_dir = root_dir.to_str().context("non-UTF-8 workspace path")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .context(
        "building the eBPF programs failed; run `cargo xtask setup` to install bpf-linker, \
         or set AYA_BUILD_SKIP=1 to build without them",
    )?;
    let object = PathBuf::from(env::var("OUT_DIR")?).join(EBPF_OBJECT);
    if !object.exists() {
        fs::write(&object, []).context("writing the empty eBPF object placeholder")?;
    }
    Ok(())
}
