//! One kernel in QEMU: an initramfs with busybox and `tests/kernel-matrix/init`, the host's
//! root filesystem shared read-only over virtio-fs, the steps script run inside, the serial
//! console followed until the guest powers off.
//!
//! Debian's cloud kernels have no 9p (`CONFIG_NET_9P` is off in every one of them), but
//! virtio-fs: built in since trixie's 6.12, a module (with fuse and the virtio bus) in
//! bookworm's 6.1. Its host side is virtiofsd, which bookworm's qemu-system-common ships.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use super::{
    Script,
    debian::Kernel,
    transcript::{self, Reaped, StepResult, Transcript},
};

/// virtiofsd of bookworm's QEMU 7.2 (later QEMUs leave it to the `virtiofsd` package).
const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";
/// busybox-static: the initramfs has no libraries for anything dynamically linked.
const BUSYBOX: &str = "/bin/busybox";

/// Modules the init loads from the initramfs, with their dependencies, to mount the root:
/// virtio-fs and the PCI transport under it (modules in 6.1, built in later), and overlayfs,
/// which puts a writable tmpfs over the read-only host root.
const BOOT_MODULES: &[&str] = &["virtio_pci", "virtiofs", "overlay"];

/// The guest's memory: the capture's ring alone is 16 MiB, and the tests' scratch files live
/// in the guest's tmpfs.
const MEMORY: &str = "2G";
/// Virtual CPUs, as many as the CI machine has: QEMU runs one host thread per vCPU (MTTCG).
const CPUS: &str = "2";

/// `console=ttyS0`: the serial port QEMU's stdout carries. `panic=-1`: reboot at once on a
/// panic, which `-no-reboot` turns into QEMU exiting. `quiet`: the console shows only kernel
/// errors between the steps' lines. `mitigations=off`: under TCG, CPU vulnerability
/// mitigations only cost time.
const KERNEL_COMMAND_LINE: &str = "console=ttyS0 panic=-1 quiet mitigations=off";

/// Run by `unshare --mount` in a mount namespace of its own: binds the host's root filesystem
/// read-only to `$1` and serves that (to the socket `$3`) with virtiofsd `$2`, chrooted into
/// it. The bind disappears with the namespace when virtiofsd exits, however it exits. The bind
/// is not recursive: the guest sees the root filesystem alone (it mounts its own /proc, /sys,
/// /dev and /run), so the workspace must be on it (`run` checks).
const VIRTIOFSD_SCRIPT: &str = concat!(
    r#"mount --bind -o ro / "$1" && "#,
    r#"exec "$2" --socket-path="$3" -o source="$1" -o cache=always -o sandbox=chroot"#,
);

/// What a guest gets besides its kernel and the steps script.
pub struct Setup<'a> {
    /// `tests/kernel-matrix/init`.
    pub init: &'a Path,
    /// Modules the steps need, loaded before they run.
    pub preload: &'a [&'a str],
}

/// Boots `kernel` with everything in `work` (initramfs, virtiofsd's socket and log, the
/// console log), runs `script` (on the host's root filesystem, which the guest sees) and
/// follows it.
pub fn run(
    kernel: &Kernel,
    setup: &Setup<'_>,
    script: &Script,
    work: &Path,
    on_step: impl FnMut(&str, &StepResult),
) -> anyhow::Result<Transcript> {
    let initramfs = work.join("initramfs.cpio");
    fs::write(&initramfs, initramfs_archive(kernel, setup, &script.path)?)
        .with_context(|| format!("writing {}", initramfs.display()))?;

    let _virtiofsd = start_virtiofsd(work)?;
    let mut command = Command::new("qemu-system-x86_64");
    command
        .current_dir(work)
        .args(["-accel", "tcg", "-cpu", "max", "-smp", CPUS, "-m", MEMORY])
        // virtio-fs hands guest memory to virtiofsd, which must therefore be shared.
        .arg("-object")
        .arg(format!(
            "memory-backend-memfd,id=mem,size={MEMORY},share=on"
        ))
        .args(["-machine", "memory-backend=mem"])
        .args(["-chardev", "socket,id=hostroot,path=virtiofsd.sock"])
        .args(["-device", "vhost-user-fs-pci,chardev=hostroot,tag=hostroot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initramfs)
        .args(["-append", KERNEL_COMMAND_LINE])
        .args(["-nic", "none", "-no-reboot", "-nographic"])
        .stdin(Stdio::null());
    let (child, lines) = transcript::spawn(command)?;
    let mut qemu = Reaped(child);
    let mut log = fs::File::create(work.join("console.log"))?;
    let mut transcript =
        transcript::follow(&mut qemu.0, &lines, &script.steps, true, &mut log, on_step);
    if let Some(booted) = &transcript.release
        && *booted != kernel.offer.release
    {
        transcript.problem = Some(format!(
            "the guest booted {booted}, not {}: QEMU was given another kernel",
            kernel.offer.release
        ));
    }
    Ok(transcript)
}

/// A virtiofsd that exits by itself once QEMU disconnects, and is killed if not.
struct Virtiofsd(Reaped);

impl Drop for Virtiofsd {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && matches!(self.0.0.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts virtiofsd serving the host's root read-only on `work/virtiofsd.sock`.
fn start_virtiofsd(work: &Path) -> anyhow::Result<Virtiofsd> {
    ensure!(
        Path::new(VIRTIOFSD).exists(),
        "{VIRTIOFSD} is missing: it comes with bookworm's qemu-system-common (`cargo xtask \
         setup` installs qemu-system-x86); QEMU 8 and later leave it to the virtiofsd package"
    );
    let shared = work.join("hostroot");
    fs::create_dir_all(&shared)?;
    let socket = work.join("virtiofsd.sock");
    let log_path = work.join("virtiofsd.log");
    let log = fs::File::create(&log_path)?;
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .args([VIRTIOFSD_SCRIPT, "sh"])
        .arg(&shared)
        .arg(VIRTIOFSD)
        .arg("virtiofsd.sock")
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting virtiofsd through unshare")?;
    let mut virtiofsd = Virtiofsd(Reaped(child));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if let Ok(Some(status)) = virtiofsd.0.0.try_wait() {
            bail!(
                "virtiofsd exited ({status}) before it served the host root:\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        ensure!(
            Instant::now() < deadline,
            "virtiofsd created no socket within 10 s; see {}",
            log_path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
    Ok(virtiofsd)
}

/// The initramfs: busybox, the init, the boot modules (decompressed: busybox's insmod reads
/// plain ELF) and `matrix.env` for the init.
fn initramfs_archive(kernel: &Kernel, setup: &Setup<'_>, script: &Path) -> anyhow::Result<Vec<u8>> {
    let mut cpio = Cpio::default();
    for directory in ["bin", "dev", "proc", "sys", "modules"] {
        cpio.directory(directory);
    }
    // The kernel opens /dev/console for the init's stdio before anything is mounted.
    cpio.char_device("dev/console", 5, 1);
    let init = fs::read(setup.init).with_context(|| format!("reading {}", setup.init.display()))?;
    cpio.file("init", 0o755, &init);
    let busybox = fs::read(BUSYBOX).with_context(|| {
        format!("reading {BUSYBOX}: `cargo xtask setup` installs busybox-static")
    })?;
    cpio.file("bin/busybox", 0o755, &busybox);
    for (index, module) in boot_modules(kernel)?.iter().enumerate() {
        let name = module
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.split_once(".ko"))
            .map(|(name, _)| name)
            .context("module file name")?;
        // The init loads /modules/*.ko in the order the glob sorts them: dependencies first.
        cpio.file(
            &format!("modules/{index:02}-{name}.ko"),
            0o644,
            &decompressed(module)?,
        );
    }
    let modules = kernel.modules();
    let environment = [
        ("RELEASE", kernel.offer.release.as_str()),
        ("MODULES", super::path_str(&modules)?),
        ("PRELOAD", &setup.preload.join(" ")),
        ("STEPS", super::path_str(script)?),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}\n", super::shell_quote(value)))
    .collect::<String>();
    cpio.file("matrix.env", 0o644, environment.as_bytes());
    Ok(cpio.finish())
}

/// The module files [`BOOT_MODULES`] need, dependencies first, as modprobe would load them
/// (built-in ones need nothing).
fn boot_modules(kernel: &Kernel) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("modprobe")
        .arg("--dirname")
        .arg(&kernel.root)
        .args(["--set-version", &kernel.offer.release])
        .args(["--show-depends", "--all"])
        .args(BOOT_MODULES)
        .output()
        .context("running modprobe (Debian's kmod package)")?;
    ensure!(
        output.status.success(),
        "modprobe --show-depends {} for {} failed: {}",
        BOOT_MODULES.join(" "),
        kernel.offer.release,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut modules: Vec<PathBuf> = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // "insmod /path/module.ko[.xz] [parameters]" or "builtin name".
        if let Some(path) = line
            .strip_prefix("insmod ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            let path = PathBuf::from(path);
            if !modules.contains(&path) {
                modules.push(path);
            }
        }
    }
    Ok(modules)
}

/// A module's ELF, decompressed by the tool its extension names.
fn decompressed(module: &Path) -> anyhow::Result<Vec<u8>> {
    let tool = match module.extension().and_then(|e| e.to_str()) {
        Some("ko") => return Ok(fs::read(module)?),
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => bail!(
            "{}: a module compression this harness does not know",
            module.display()
        ),
    };
    let output = Command::new(tool)
        .arg("-dc")
        .arg(module)
        .output()
        .with_context(|| format!("running {tool} (`cargo xtask setup` installs it)"))?;
    ensure!(
        output.status.success(),
        "{tool} -dc {} failed: {}",
        module.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

/// A cpio archive in the "newc" format, the one the kernel unpacks an initramfs from
/// (Documentation/driver-api/early-userspace/buffer-format.rst). Everything is owned by root.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    inodes: u32,
}

impl Cpio {
    fn directory(&mut self, name: &str) {
        self.entry(name, 0o040_755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, permissions: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | permissions, (0, 0), data);
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020_600, (major, minor), &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, (major, minor): (u32, u32), data: &[u8]) {
        self.inodes += 1;
        let fields = [
            self.inodes,
            mode,
            0, // uid
            0, // gid
            1, // links
            0, // mtime
            u32::try_from(data.len()).expect("initramfs members are far below 4 GiB"),
            0, // device of the file system (major, minor)
            0,
            major, // device the node stands for
            minor,
            u32::try_from(name.len() + 1).expect("short names"),
            0, // checksum (none in "070701")
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Header plus name, and data, each end on a 4-byte boundary.
    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.bytes
    }
}
