//! The core stays sans-IO: its manifest names no capture, runtime, HTTP server, database,
//! terminal or command-line crate, and it has no build script (so no eBPF build, no
//! bpf-linker). Those belong to the daemon crate, which drives the core.
use std::path::Path;

/// Crate names (or name prefixes, ending in `-`) the core must not depend on, with the shell
/// code that needs them.
const FORBIDDEN: [(&str, &str); 7] = [
    ("aya", "the eBPF capture"),
    ("tokio", "the async runtime"),
    ("hyper", "the metrics server"),
    ("rusqlite", "Open WebUI's database reader"),
    ("crossterm", "`top`'s terminal"),
    ("clap", "the command line"),
    ("netlink-", "attaching to interfaces"),
];

fn manifest() -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("the core's Cargo.toml");
    toml::from_str(&text).expect("Cargo.toml is TOML")
}

/// Every dependency table of a manifest: `[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]` and their `[target.'cfg(…)'.…]` variants, as (table, table name).
fn dependency_tables(manifest: &toml::Table) -> Vec<(String, &toml::Table)> {
    fn collect<'m>(prefix: &str, table: &'m toml::Table, out: &mut Vec<(String, &'m toml::Table)>) {
        for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = table.get(kind).and_then(toml::Value::as_table) {
                out.push((format!("{prefix}{kind}"), deps));
            }
        }
    }
    let mut tables = Vec::new();
    collect("", manifest, &mut tables);
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for (cfg, target) in targets {
            if let Some(target) = target.as_table() {
                collect(&format!("target.{cfg}."), target, &mut tables);
            }
        }
    }
    tables
}

/// The crate a dependency entry names: its key, or `package = "…"` when renamed.
fn crate_name<'a>(key: &'a str, spec: &'a toml::Value) -> &'a str {
    spec.get("package")
        .and_then(toml::Value::as_str)
        .unwrap_or(key)
}

/// What needs `name` if the core must not depend on it. Cargo treats `-` and `_` alike.
fn forbidden(name: &str) -> Option<&'static str> {
    let name = name.replace('_', "-");
    FORBIDDEN.iter().find_map(|&(banned, owner)| {
        let hit = match banned.strip_suffix('-') {
            Some(prefix) => name.starts_with(prefix),
            None => name == banned || name.starts_with(&format!("{banned}-")),
        };
        hit.then_some(owner)
    })
}

#[test]
fn the_core_depends_on_no_shell_crate() {
    let manifest = manifest();
    let tables = dependency_tables(&manifest);
    assert!(
        tables.iter().any(|(kind, _)| kind == "dependencies"),
        "the manifest has a [dependencies] table"
    );
    let mut offenders = Vec::new();
    for (kind, deps) in &tables {
        for (key, spec) in *deps {
            let name = crate_name(key, spec);
            if let Some(owner) = forbidden(name) {
                offenders.push(format!("[{kind}] {name} (for {owner})"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "webui-monitor-core must stay sans-IO; move the code that needs these to the daemon \
         crate (webui-monitor):\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn the_core_has_no_build_script() {
    let manifest = manifest();
    let build = manifest
        .get("package")
        .and_then(|p| p.get("build"))
        .cloned();
    assert!(
        matches!(build, None | Some(toml::Value::Boolean(false))),
        "package.build is set: the core builds without a build script (the eBPF object is the \
         daemon's)"
    );
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("build.rs")
            .exists(),
        "build.rs in the core: the core builds without a build script (the eBPF object is the \
         daemon's)"
    );
}

#[test]
fn the_check_recognises_what_it_forbids() {
    for name in [
        "aya",
        "aya-obj",
        "tokio",
        "tokio-util",
        "hyper",
        "hyper-util",
        "rusqlite",
        "crossterm",
        "clap",
        "clap_derive",
        "netlink-sys",
        "netlink-packet-route",
    ] {
        assert!(forbidden(name).is_some(), "{name} is let through");
    }
    for name in ["prometheus", "serde", "flate2", "http", "clappy", "ayatana"] {
        assert!(forbidden(name).is_none(), "{name} is refused");
    }
    let renamed: toml::Table = toml::from_str(
        "[dependencies]\nrt = { package = \"tokio\", version = \"1\" }\n\
         [target.'cfg(unix)'.dev-dependencies]\nterm = { package = \"crossterm\" }\n",
    )
    .unwrap();
    let names: Vec<(String, &str)> = dependency_tables(&renamed)
        .into_iter()
        .flat_map(|(kind, deps)| {
            deps.iter()
                .map(move |(key, spec)| (kind.clone(), crate_name(key, spec)))
        })
        .collect();
    assert_eq!(
        names,
        [
            ("dependencies".to_owned(), "tokio"),
            ("target.cfg(unix).dev-dependencies".to_owned(), "crossterm"),
        ]
    );
}
