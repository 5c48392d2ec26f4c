//! Rebuild the eBPF programs when the bpf-linker binary changes.
fn main() {
    // Rebuild the eBPF programs when the bpf-linker binary changes: cargo cannot see that
    // dependency otherwise.
    if let Ok(bpf_linker) = which::which("bpf-linker") {
        println!("cargo::rerun-if-changed={}", bpf_linker.display());
    }
}
