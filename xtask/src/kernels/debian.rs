//! Debian's kernel packages: which kernel each suite offers, downloaded and unpacked once.
//!
//! Every suite gets its own apt state under `target/kernels/apt/<suite>/`, selected through
//! `APT_CONFIG`: apt reads that file first and takes its configuration directory, sources,
//! lists and cache from it, so the machine's own sources and state are neither read nor
//! changed, and neither is its `apt.conf.d` read (whose hooks on `apt-get update` refresh the
//! machine's AppStream catalog and notify PackageKit), except for the settings that reach a
//! mirror ([`INHERITED_SETTINGS`]). Versions are resolved from the suites' indexes at run time,
//! since mirrors drop superseded kernels. A kernel is unpacked into `target/kernels/<release>/`
//! with `dpkg-deb -x` and its module tree indexed with `depmod`; a later run reuses it.
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};

use crate::status;

/// Where the suites are fetched from. The archive keyring of a Debian 12 host verifies
/// bookworm, trixie and sid.
const MIRROR: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The kernel flavour of the matrix: Debian's kernel for cloud VMs, which has what a VM needs
/// (virtio, virtio-fs) built in or as modules and is small to download.
const FLAVOUR: &str = "cloud-amd64";

/// Which kernel of Debian's a row of the matrix boots.
pub enum Source {
    /// The newest kernel of `series` ("6.18": 6.18.x) in the first of `suites` that has one.
    Series {
        series: &'static str,
        suites: &'static [&'static str],
    },
    /// The newest kernel of all `suites`.
    Newest { suites: &'static [&'static str] },
}

/// A kernel image package one suite offers.
#[derive(Clone)]
pub struct Offer {
    pub suite: &'static str,
    /// `uname -r` of the kernel: the package name without `linux-image-`.
    pub release: String,
    /// The Debian version ("6.18.15-1~bpo13+1").
    pub version: String,
    /// The image package and the packages it is split into since 7.x (`linux-binary-*` holds
    /// vmlinuz, `linux-modules-*` the modules, `linux-base-*` modules.builtin): every
    /// dependency named after the release.
    packages: Vec<String>,
    /// Why this suite, when the preferred one had no kernel of the series.
    pub note: Option<String>,
}

/// An unpacked kernel, ready to boot.
pub struct Kernel {
    pub offer: Offer,
    pub vmlinuz: PathBuf,
    /// The unpacked root; `lib/modules/<release>` below it holds the modules, indexed.
    pub root: PathBuf,
}

impl Kernel {
    pub fn modules(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.offer.release)
    }
}

/// The suites of one run, each updated once, on first use.
pub struct Suites {
    dir: PathBuf,
    /// [`inherited_settings`], for each suite's configuration.
    inherited: String,
    kernels: HashMap<&'static str, Vec<Offer>>,
}

impl Suites {
    /// Suites with their apt state under `dir`.
    pub fn new(dir: PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            dir,
            inherited: inherited_settings()?,
            kernels: HashMap::new(),
        })
    }

    /// The kernel `source` names, resolved against the suites' current indexes.
    pub fn resolve(&mut self, source: &Source) -> anyhow::Result<Offer> {
        let (suites, series) = match source {
            Source::Series { series, suites } => (*suites, Some(*series)),
            Source::Newest { suites } => (*suites, None),
        };
        let mut best: Option<Offer> = None;
        for &suite in suites {
            let newest = self
                .offers(suite)?
                .iter()
                .filter(|offer| series.is_none_or(|s| in_series(&offer.version, s)))
                .max_by_key(|offer| upstream(&offer.version))
                .cloned();
            if let Some(offer) = newest
                && best
                    .as_ref()
                    .is_none_or(|best| upstream(&offer.version) > upstream(&best.version))
            {
                best = Some(offer);
                if series.is_some() {
                    break; // a series comes from the first suite that has it
                }
            }
        }
        let mut offer = best.with_context(|| {
            format!(
                "none of the suites {suites:?} offers a {FLAVOUR} kernel{}: look at \
                 https://packages.debian.org/search?keywords=linux-image-{FLAVOUR} for where \
                 it went and update the matrix in xtask/src/kernels.rs",
                series
                    .map(|s| format!(" of the {s} series"))
                    .unwrap_or_default()
            )
        })?;
        if let Some(series) = series
            && offer.suite != suites[0]
        {
            offer.note = Some(format!(
                "{} offers no {series} kernel any more; {}'s is the newest {series} available",
                suites[0], offer.suite
            ));
        }
        Ok(offer)
    }

    /// The kernel images `suite` offers (its index updated first).
    fn offers(&mut self, suite: &'static str) -> anyhow::Result<&Vec<Offer>> {
        if !self.kernels.contains_key(suite) {
            let apt = Apt::new(&self.dir, suite, &self.inherited)?;
            apt.update()?;
            self.kernels.insert(suite, apt.kernels()?);
        }
        Ok(&self.kernels[suite])
    }

    /// `offer`'s kernel, unpacked under `dir` (downloaded only if no earlier run did).
    pub fn fetch(&self, offer: Offer, dir: &Path) -> anyhow::Result<Kernel> {
        let dir = dir.join(&offer.release);
        let root = dir.join("root");
        let stamp = dir.join("unpacked");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(offer.version.as_str()) {
            println!(
                "  downloading {} {} from {}",
                offer.packages.join(" "),
                offer.version,
                offer.suite
            );
            if dir.exists() {
                // An interrupted or superseded unpack: start over.
                fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            let debs = dir.join("debs");
            fs::create_dir_all(&debs)?;
            Apt::new(&self.dir, offer.suite, &self.inherited)?.download(&offer, &debs)?;
            for deb in fs::read_dir(&debs)? {
                status(
                    Command::new("dpkg-deb")
                        .arg("-x")
                        .arg(deb?.path())
                        .arg(&root),
                )?;
            }
            fs::remove_dir_all(&debs)?;
            // Since trixie the modules live in /usr/lib/modules; depmod (kmod 30) and the
            // guest look in /lib/modules, which merged-/usr systems link to /usr/lib.
            if !root.join("lib").exists() {
                std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
            }
            status(
                Command::new("depmod")
                    .arg("-b")
                    .arg(&root)
                    .arg(&offer.release),
            )
            .context("indexing the kernel's modules (depmod, from Debian's kmod package)")?;
            fs::write(&stamp, &offer.version)?;
        }
        // vmlinuz is in /boot up to 6.x and next to the modules since the 7.x split.
        let vmlinuz = [
            root.join("boot").join(format!("vmlinuz-{}", offer.release)),
            root.join("lib/modules")
                .join(&offer.release)
                .join("vmlinuz"),
        ]
        .into_iter()
        .find(|path| path.exists())
        .with_context(|| {
            format!(
                "no vmlinuz in {}: has Debian moved it? Remove {} and look at the packages' \
                 contents (dpkg-deb -c)",
                root.display(),
                dir.display()
            )
        })?;
        Ok(Kernel {
            offer,
            vmlinuz,
            root,
        })
    }
}

/// The machine's apt settings for reaching mirrors, which the private configurations keep:
/// proxies and timeouts (`Acquire::http`, `Acquire::https`), retries, and whether an expired
/// Release file is accepted (images of a frozen archive snapshot turn that check off).
const INHERITED_SETTINGS: &[&str] = &[
    "Acquire::http",
    "Acquire::Retries",
    "Acquire::Check-Valid-Until",
    "Acquire::Check-Date",
];

/// [`INHERITED_SETTINGS`] as the machine's apt configuration has them, in apt.conf syntax.
fn inherited_settings() -> anyhow::Result<String> {
    let output = Command::new("apt-config")
        .arg("dump")
        .output()
        .context("running apt-config")?;
    ensure!(
        output.status.success(),
        "apt-config dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| INHERITED_SETTINGS.iter().any(|key| line.starts_with(key)))
        .map(|line| format!("{line}\n"))
        .collect())
}

/// apt with the private state of one suite.
struct Apt {
    suite: &'static str,
    dir: PathBuf,
}

impl Apt {
    fn new(dir: &Path, suite: &'static str, inherited: &str) -> anyhow::Result<Self> {
        let dir = dir.join(suite);
        for sub in ["etc/apt.conf.d", "etc/preferences.d", "state/lists/partial"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::create_dir_all(dir.join("cache/archives/partial"))?;
        fs::write(
            dir.join("etc/sources.list"),
            format!("deb [signed-by={KEYRING}] {MIRROR} {suite} main\n"),
        )?;
        // An empty dpkg status: nothing counts as installed, so nothing is held back.
        fs::write(dir.join("state/status"), "")?;
        let d = dir.display();
        fs::write(
            dir.join("apt.conf"),
            format!(
                "Dir::Etc \"{d}/etc\";\n\
                 Dir::State \"{d}/state\";\n\
                 Dir::State::status \"{d}/state/status\";\n\
                 Dir::Cache \"{d}/cache\";\n\
                 APT::Architecture \"amd64\";\n\
                 APT::Architectures {{ \"amd64\"; }};\n\
                 Acquire::Languages \"none\";\n\
                 // Lists kept compressed, no binary caches: 20 MB for sid instead of 160 MB.\n\
                 Acquire::GzipIndexes \"true\";\n\
                 Dir::Cache::pkgcache \"\";\n\
                 Dir::Cache::srcpkgcache \"\";\n\
                 // The downloads land in target/, which apt's unprivileged _apt user may not\n\
                 // write to.\n\
                 APT::Sandbox::User \"root\";\n\
                 {inherited}"
            ),
        )?;
        Ok(Self { suite, dir })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("APT_CONFIG", self.dir.join("apt.conf"))
            .arg("-q");
        command
    }

    /// Fetches the suite's index; a failed fetch falls back to the index of an earlier run.
    fn update(&self) -> anyhow::Result<()> {
        println!("  updating the package index of {}", self.suite);
        let output = self
            .command("apt-get")
            .arg("update")
            .output()
            .context("running apt-get")?;
        if output.status.success() {
            return Ok(());
        }
        let error = String::from_utf8_lossy(&output.stderr);
        let lists = fs::read_dir(self.dir.join("state/lists"))?;
        let cached = lists
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().contains("_Packages"));
        ensure!(
            cached,
            "apt-get update of {} from {MIRROR} failed, and no earlier run left its index \
             behind: is the mirror reachable (a proxy goes into apt's Acquire::http::Proxy or \
             http_proxy)?\n{error}",
            self.suite
        );
        println!(
            "  warning: apt-get update of {} failed; using the index of an earlier run:\n{error}",
            self.suite
        );
        Ok(())
    }

    /// The kernel images of the flavour in the suite's index.
    fn kernels(&self) -> anyhow::Result<Vec<Offer>> {
        let output = self
            .command("apt-cache")
            .args(["search", "--names-only", "--full"])
            .arg(format!(
                "^linux-(image|binary|modules|base)-[0-9].*-{FLAVOUR}$"
            ))
            .output()
            .context("running apt-cache")?;
        ensure!(
            output.status.success(),
            "apt-cache search in {} failed: {}",
            self.suite,
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let records: Vec<Record<'_>> = text.split("\n\n").map(Record).collect();
        let available = |name: &str| records.iter().any(|r| r.field("Package") == Some(name));
        let mut offers = Vec::new();
        for record in &records {
            let (Some(package), Some(version)) = (record.field("Package"), record.field("Version"))
            else {
                continue;
            };
            let Some(release) = package.strip_prefix("linux-image-") else {
                continue;
            };
            // Since 7.x the image package only depends on the packages holding the kernel.
            // (6.18's images also name a linux-base package the archive does not have.)
            let split: Vec<String> = record
                .field("Depends")
                .unwrap_or_default()
                .split(',')
                .filter_map(|dependency| {
                    let name = dependency.split('|').next()?.split_whitespace().next()?;
                    (name.contains(release) && available(name)).then(|| name.into())
                })
                .collect();
            offers.push(Offer {
                suite: self.suite,
                release: release.into(),
                version: version.into(),
                packages: std::iter::once(package.to_owned()).chain(split).collect(),
                note: None,
            });
        }
        Ok(offers)
    }

    /// Downloads the offer's packages into `dir`.
    fn download(&self, offer: &Offer, dir: &Path) -> anyhow::Result<()> {
        let mut command = self.command("apt-get");
        command.arg("download").current_dir(dir);
        for package in &offer.packages {
            command.arg(format!("{package}={}", offer.version));
        }
        status(&mut command).with_context(|| {
            format!(
                "downloading {} {} from {}",
                offer.packages.join(" "),
                offer.version,
                offer.suite
            )
        })
    }
}

/// One package's record in apt's output.
struct Record<'a>(&'a str);

impl<'a> Record<'a> {
    fn field(&self, name: &str) -> Option<&'a str> {
        self.0.lines().find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
        })
    }
}

/// The upstream part of a Debian kernel version as numbers: "6.18.15-1~bpo13+1" → [6, 18, 15].
fn upstream(version: &str) -> Vec<u64> {
    let version = version.rsplit_once(':').map_or(version, |(_, v)| v);
    version
        .split(['-', '~', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map_while(|part| part.parse().ok())
        .collect()
}

/// Whether `version` belongs to `series` ("6.1" holds 6.1.176, not 6.12.1).
fn in_series(version: &str, series: &str) -> bool {
    upstream(version).starts_with(&upstream(series))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions() {
        assert_eq!(upstream("6.18.15-1~bpo13+1"), [6, 18, 15]);
        assert_eq!(upstream("6.1.176-1"), [6, 1, 176]);
        assert_eq!(upstream("1:7.3.4-1"), [7, 3, 4]);
        assert!(upstream("7.3.4-1~bpo13+1") > upstream("7.2.13-1"));
        assert!(in_series("6.1.176-1", "6.1"));
        assert!(!in_series("6.12.117-1", "6.1"));
    }
}
