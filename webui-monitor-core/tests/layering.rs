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

// ----- module imports -----
//
// Layers import only layers below them: no two top-level modules of the core import each
// other, directly or through others, and neither do two sibling modules of `http` and
// `websocket`. Every `crate::…` path counts (in `use` statements and inline), as does
// `super::…` from a file module; a name re-exported by a parent (`pub use child::Name`) counts
// as its child. Comments (doc links included) do not.

/// Parents whose child modules must not import each other in a cycle.
const LAYERED_PARENTS: [&str; 2] = ["http", "websocket"];

/// A source file's module path: `http/framer.rs` → `["http", "framer"]`, `http/mod.rs` →
/// `["http"]`, `lib.rs` → `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the source directory is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without `//` comments and string literals (a doc link or a message naming a path
/// is no import).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' or '{' must not open a string or a group.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let mut it = rest.chars();
                match (it.next(), it.next(), it.next()) {
                    (Some('\\'), Some(_), Some('\'')) => {
                        chars.nth(2);
                    }
                    (Some(_), Some('\''), _) => {
                        chars.nth(1);
                    }
                    _ => out.push(c),
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The paths of a use tree starting at `s` (after `crate::` or `super::`), each cut to its
/// first two segments: `a::{b::c, d}` → `[a, b]`, `[a, d]`.
fn use_tree(s: &[u8], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let skip_ws = |at: &mut usize| {
        while *at < s.len() && s[*at].is_ascii_whitespace() {
            *at += 1;
        }
    };
    let mut path = prefix.to_vec();
    loop {
        skip_ws(at);
        if s.get(*at) == Some(&b'{') {
            *at += 1;
            loop {
                skip_ws(at);
                match s.get(*at) {
                    Some(b'}') => {
                        *at += 1;
                        break;
                    }
                    Some(b',') => *at += 1,
                    None => break,
                    _ => {
                        let before = *at;
                        use_tree(s, at, &path, out);
                        if *at == before {
                            *at += 1;
                        }
                    }
                }
            }
            return;
        }
        let start = *at;
        while *at < s.len() && (s[*at].is_ascii_alphanumeric() || s[*at] == b'_') {
            *at += 1;
        }
        if *at == start {
            break;
        }
        path.push(String::from_utf8_lossy(&s[start..*at]).into_owned());
        skip_ws(at);
        if s[*at..].starts_with(b"::") {
            *at += 2;
        } else {
            break;
        }
    }
    path.truncate(2);
    if !path.is_empty() {
        out.push(path);
    }
}

/// Every module path a file names, resolved from the crate root.
fn imports(code: &str, module: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for (keyword, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` it is `a` as well.
            let mut parent = module.to_vec();
            if !is_mod_file || !parent.is_empty() {
                parent.pop();
            }
            parent
        }),
    ] {
        let mut from = 0;
        while let Some(p) = code[from..].find(keyword) {
            let at_start = from + p;
            from = at_start + keyword.len();
            let preceded = at_start > 0 && {
                let b = bytes[at_start - 1];
                b.is_ascii_alphanumeric() || b == b'_' || b == b':'
            };
            if preceded {
                continue;
            }
            let mut at = from;
            let mut paths = Vec::new();
            use_tree(bytes, &mut at, &[], &mut paths);
            for p in paths {
                let mut full = base.clone();
                full.extend(p);
                out.push(full);
            }
        }
    }
    out
}

/// `pub use child::{A, B}` in a parent module: name → child module.
fn reexports(code: &str, children: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("pub use ") {
        let s = &code.as_bytes()[i + "pub use ".len()..];
        let mut at = 0;
        let mut paths = Vec::new();
        use_tree(s, &mut at, &[], &mut paths);
        for p in paths {
            if let [child, name] = p.as_slice()
                && children.contains(child)
            {
                out.push((name.clone(), child.clone()));
            }
        }
    }
    out
}

type Graph = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// The import graphs: top-level modules, and the children of each layered parent.
fn import_graphs(src: &Path) -> (Graph, Vec<(String, Graph)>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: Vec<(Vec<String>, bool, String)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(src).expect("under src");
            let is_mod = rel.file_name().is_some_and(|n| n == "mod.rs");
            let code = code_only(&std::fs::read_to_string(f).expect("readable source"));
            (module_path(rel), is_mod, code)
        })
        .collect();
    let top_level: Vec<String> = modules
        .iter()
        .filter_map(|(m, _, _)| m.first().cloned())
        .collect();
    let mut top = Graph::new();
    let mut layered: Vec<(String, Graph)> = LAYERED_PARENTS
        .iter()
        .map(|p| (p.to_string(), Graph::new()))
        .collect();
    for (parent, graph) in &mut layered {
        let children: Vec<String> = modules
            .iter()
            .filter(|(m, _, _)| m.len() >= 2 && &m[0] == parent)
            .map(|(m, _, _)| m[1].clone())
            .collect();
        let parent_code = modules
            .iter()
            .find(|(m, _, _)| m.len() == 1 && &m[0] == parent)
            .map(|(_, _, c)| c.as_str())
            .unwrap_or_default();
        let names = reexports(parent_code, &children);
        for (module, is_mod, code) in &modules {
            if module.len() < 2 || &module[0] != parent {
                continue;
            }
            let from = &module[1];
            for path in imports(code, module, *is_mod) {
                let [p, name, ..] = path.as_slice() else {
                    continue;
                };
                if p != parent {
                    continue;
                }
                let to = if children.contains(name) {
                    Some(name.clone())
                } else {
                    names
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, c)| c.clone())
                };
                if let Some(to) = to
                    && &to != from
                {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    for (module, is_mod, code) in &modules {
        let Some(from) = module.first() else {
            continue;
        };
        for path in imports(code, module, *is_mod) {
            if let Some(to) = path.first()
                && to != from
                && top_level.contains(to)
            {
                top.entry(from.clone()).or_default().insert(to.clone());
            }
        }
    }
    (top, layered)
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_import_only_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (top, layered) = import_graphs(&src);
    assert!(
        top.get("http").is_some_and(|d| d.contains("segment")),
        "the parser sees http's imports: {top:?}"
    );
    if let Some(cycle) = find_cycle(&top) {
        panic!(
            "top-level modules of the core import each other: {}. Move what both need into a \
             module below both (as `secret` and `usage` are).",
            cycle.join(" → ")
        );
    }
    for (parent, graph) in &layered {
        assert!(
            !graph.is_empty(),
            "the parser sees {parent}'s children's imports"
        );
        if let Some(cycle) = find_cycle(graph) {
            panic!(
                "modules of {parent}/ import each other: {}. Move what both need into a \
                 sibling below both.",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn the_import_parser_reads_use_trees_and_finds_cycles() {
    let code = code_only(
        "use crate::{a::{b, c::D}, e};\n// use crate::f;\nlet s = \"crate::g\";\n\
         let c = '{';\nfn x() { crate::h::i(); super::j::K; }",
    );
    let module = ["p".to_owned(), "q".to_owned()];
    assert_eq!(
        imports(&code, &module, false),
        [
            vec!["a", "b"],
            vec!["a", "c"],
            vec!["e"],
            vec!["h", "i"],
            vec!["p", "j", "K"],
        ]
        .map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>())
    );
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .into_iter()
        .fold(Graph::new(), |mut g, (from, to)| {
            g.entry(from.to_owned()).or_default().insert(to.to_owned());
            g
        });
    assert_eq!(
        find_cycle(&graph),
        Some(["a", "b", "c", "a"].map(str::to_owned).to_vec())
    );
    let acyclic: Graph =
        [("a", "b"), ("a", "c"), ("b", "c")]
            .into_iter()
            .fold(Graph::new(), |mut g, (from, to)| {
                g.entry(from.to_owned()).or_default().insert(to.to_owned());
                g
            });
    assert_eq!(find_cycle(&acyclic), None);
}
