//! The architecture, held by a test: each invariant of ARCHITECTURE.md that a machine
//! can check is a rule here, and `cargo test -p outpost-xtask --test tidy` (also
//! `cargo xtask tidy`) fails with the rule's name, the place and what to do instead.
//!
//! The rules read two things: the resolved dependency graph (`cargo metadata`, so a
//! dependency that arrives through another crate counts) and the Rust sources, parsed
//! with `syn` (so comments and strings never count, and test code — `#[cfg(test)]`
//! items, `tests/`, `benches/`, `examples/` — is told apart from product code).
//!
//! Left out on purpose: rules about behaviour (the other tests' job), and line numbers
//! (a place is a file and the item in it: line numbers would need `proc-macro2`'s
//! `span-locations`, which would change the build of every proc macro the desktop
//! uses). The wall-clock rule is also clippy's `disallowed-methods` (clippy.toml); this
//! module checks that the configuration is there, that only clock modules allow it,
//! and finds the calls itself so that the rule holds in `make test` too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;

pub const USAGE: &str = "check the architecture's invariants (ARCHITECTURE.md) over the workspace";

/// `cargo xtask tidy`: print every broken rule; fail when there is one.
pub fn run(root: &Path, _args: &[String]) -> Result<ExitCode, String> {
    let found = check_workspace(root)?;
    for v in &found {
        eprintln!("{v}");
    }
    if found.is_empty() {
        println!("tidy: every architecture rule holds");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// One broken rule at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub place: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule \"{}\" broken at {}: {}",
            self.rule, self.place, self.detail
        )
    }
}

pub const NO_TAURI: &str = "nothing under crates/ depends on Tauri";
pub const SIDES_APART: &str = "the server and the device crates never depend on each other";
pub const ONLY_STORE_SQL: &str = "only store runs SQL on the device";
pub const PROTOCOL_NO_IO: &str = "protocol does no I/O";
pub const CLOCK: &str = "no wall-clock reads outside clock modules";
pub const NO_UNSAFE: &str = "no unsafe code in the workspace";
pub const RUST_VERSION: &str = "every member's rust-version covers its dependencies";
pub const TEST_HOOKS: &str = "only dev-dependencies turn on test hooks";

/// Files where `unsafe` is allowed: none. (The store's own SQLCipher crypto provider,
/// C callbacks behind `unsafe`, was the one exception until it was removed for
/// SQLCipher's own provider: issue 18 in ARCHITECTURE.md.)
pub const UNSAFE_ALLOWED: &[&str] = &[];

/// The device-side workspace packages (what runs on a technician's laptop).
const DEVICE: &[&str] = &[
    "outpost-store",
    "outpost-sync",
    "outpost-core",
    "outpost-cli",
    "outpost-desktop",
];
const SERVER: &str = "outpost-server";
const PROTOCOL: &str = "outpost-protocol";
const STORE: &str = "outpost-store";
/// Crates that run SQL; on the device only `store` may depend on them.
const SQL_CRATES: &[&str] = &["rusqlite", "libsqlite3-sys", "rusqlite_migration"];
/// Crates that do I/O (network, files, processes, async runtimes, the OS's stores).
const IO_CRATES: &[&str] = &[
    "tokio",
    "reqwest",
    "hyper",
    "axum",
    "rusqlite",
    "libsqlite3-sys",
    "tokio-postgres",
    "keyring",
    "directories",
    "if-watch",
    "tempfile",
];
/// Modules of `std` whose use is I/O or reads the process's surroundings.
const IO_MODULES: &[&str] = &["fs", "net", "io", "process", "env", "thread", "os"];
/// Macros that write to the terminal.
const IO_MACROS: &[&str] = &["print", "println", "eprint", "eprintln", "dbg"];
/// The wall-clock reads, as `Type::now`.
const CLOCK_TYPES: &[&str] = &["Utc", "Local", "SystemTime"];
/// The same, as clippy.toml must name them.
pub const CLOCK_CALLS: &[&str] = &[
    "chrono::Utc::now",
    "chrono::Local::now",
    "std::time::SystemTime::now",
];
/// Type names that are SQL handles.
const SQL_HANDLES: &[&str] = &["rusqlite", "Connection", "Transaction", "Savepoint"];

// ---------------------------------------------------------------------------------
// The dependency graph
// ---------------------------------------------------------------------------------

/// The workspace's packages and what each depends on (every kind: normal, build, dev).
#[derive(Debug, Default, Clone)]
pub struct Graph {
    /// Workspace package name -> its directory relative to the root.
    pub members: BTreeMap<String, PathBuf>,
    /// Workspace package name -> names of its direct dependencies.
    pub direct: BTreeMap<String, BTreeSet<String>>,
    /// Workspace package name -> names of everything it depends on, directly or not.
    pub closure: BTreeMap<String, BTreeSet<String>>,
    /// The same without dev-dependencies: what its product build links.
    pub runtime: BTreeMap<String, BTreeSet<String>>,
    /// Workspace package name -> its `rust-version` (None when it declares none).
    pub rust_version: BTreeMap<String, Option<String>>,
    /// The highest `rust-version` a resolved dependency declares, and which one.
    pub deps_rust_version: Option<(String, String)>,
    /// Workspace package name -> how its product build would turn on a `test-support`
    /// feature ([`test_hook_switches`]); empty when none does.
    pub test_hooks: BTreeMap<String, Vec<String>>,
}

/// This machine's target triple (`rustc -vV`): the graph is the one built here.
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".into())
}

/// Read the graph from `cargo metadata` for this machine's platform (offline: the lock
/// file says it all, and the other platforms' crates need not be downloaded).
pub fn graph(root: &Path) -> Result<Graph, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = host_triple()?;
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed something that is not JSON: {e}"))?;
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    graph_from_metadata(&meta, &root)
}

/// The graph from `cargo metadata`'s JSON.
pub fn graph_from_metadata(meta: &serde_json::Value, root: &Path) -> Result<Graph, String> {
    let missing = |what: &str| format!("cargo metadata: no {what}");
    let packages = meta["packages"]
        .as_array()
        .ok_or_else(|| missing("packages"))?;
    let names: BTreeMap<&str, &str> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .ok_or_else(|| missing("workspace_members"))?
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut runtime_edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"]
        .as_array()
        .ok_or_else(|| missing("resolve.nodes"))?
    {
        let id = node["id"].as_str().ok_or_else(|| missing("node id"))?;
        let deps = node["deps"].as_array().cloned().unwrap_or_default();
        let pkg = |d: &serde_json::Value| d["pkg"].as_str().map(str::to_owned);
        let only_dev = |d: &serde_json::Value| {
            d["dep_kinds"]
                .as_array()
                .is_some_and(|k| !k.is_empty() && k.iter().all(|k| k["kind"] == "dev"))
        };
        let all: Vec<String> = deps.iter().filter_map(pkg).collect();
        let runtime: Vec<String> = deps
            .iter()
            .filter(|d| !only_dev(d))
            .filter_map(pkg)
            .collect();
        edges.insert(id, all.iter().filter_map(|p| intern(&names, p)).collect());
        runtime_edges.insert(
            id,
            runtime.iter().filter_map(|p| intern(&names, p)).collect(),
        );
    }
    let name_all = |ids: &mut dyn Iterator<Item = &&str>| -> BTreeSet<String> {
        ids.filter_map(|d| names.get(d))
            .map(|n| (*n).to_owned())
            .collect()
    };
    let mut g = Graph {
        deps_rust_version: packages
            .iter()
            .filter(|p| p["id"].as_str().is_some_and(|id| !members.contains(id)))
            .filter_map(|p| {
                Some((
                    p["rust_version"].as_str()?.to_owned(),
                    p["name"].as_str()?.to_owned(),
                ))
            })
            .max_by_key(|(v, _)| version_key(v)),
        ..Graph::default()
    };
    for p in packages {
        let (Some(id), Some(name)) = (p["id"].as_str(), p["name"].as_str()) else {
            continue;
        };
        if !members.contains(id) {
            continue;
        }
        let dir = Path::new(p["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .and_then(|d| d.strip_prefix(root).ok())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        g.members.insert(name.to_owned(), dir);
        g.rust_version.insert(
            name.to_owned(),
            p["rust_version"].as_str().map(str::to_owned),
        );
        g.test_hooks.insert(name.to_owned(), test_hook_switches(p));
        let direct = edges.get(id).cloned().unwrap_or_default();
        g.direct
            .insert(name.to_owned(), name_all(&mut direct.iter()));
        let closure = reach(&edges, direct);
        g.closure
            .insert(name.to_owned(), name_all(&mut closure.iter()));
        let runtime = reach(
            &runtime_edges,
            runtime_edges.get(id).cloned().unwrap_or_default(),
        );
        g.runtime
            .insert(name.to_owned(), name_all(&mut runtime.iter()));
    }
    Ok(g)
}

/// How a package (its `cargo metadata` entry) would turn on test hooks in a product
/// build: a dependency other than a dev-dependency that asks for a `test-support`
/// feature, or a feature of its own other than `test-support` that turns one on.
pub fn test_hook_switches(package: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for d in package["dependencies"].as_array().into_iter().flatten() {
        let asks = d["features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == TEST_SUPPORT));
        if asks && d["kind"] != "dev" {
            out.push(format!(
                "its {} dependency on {} turns on {TEST_SUPPORT}",
                d["kind"].as_str().unwrap_or("normal"),
                d["name"].as_str().unwrap_or("?")
            ));
        }
    }
    for (feature, turns_on) in package["features"].as_object().into_iter().flatten() {
        if feature == TEST_SUPPORT {
            continue;
        }
        for t in turns_on
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
        {
            if t == TEST_SUPPORT || t.ends_with(&format!("/{TEST_SUPPORT}")) {
                out.push(format!("its feature {feature} turns on {t}"));
            }
        }
    }
    out
}

/// The id as the key `names` holds (so the edges borrow from one place).
fn intern<'a>(names: &BTreeMap<&'a str, &'a str>, id: &str) -> Option<&'a str> {
    names.get_key_value(id).map(|(k, _)| *k)
}

/// Everything reachable from `start` along `edges`.
fn reach<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>, start: Vec<&'a str>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut stack = start;
    while let Some(d) = stack.pop() {
        if seen.insert(d) {
            stack.extend(edges.get(d).cloned().unwrap_or_default());
        }
    }
    seen
}

/// `1.90` as `[1, 90, 0]`, for comparing versions.
fn version_key(v: &str) -> Vec<u64> {
    let mut k: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    k.resize(3, 0);
    k
}

fn is_tauri(name: &str) -> bool {
    name == "tauri" || name.starts_with("tauri-") || name.starts_with("tauri_")
}

/// The dependency rules: no Tauri under `crates/`; the server and the device apart and
/// both over `protocol` only; SQL only in `store` on the device; no I/O crates in
/// `protocol`.
pub fn check_graph(g: &Graph) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut flag = |rule, place: &str, detail: String| {
        found.push(Violation {
            rule,
            place: place.to_owned(),
            detail,
        })
    };
    for (name, declared) in &g.rust_version {
        match (declared, &g.deps_rust_version) {
            (None, _) => flag(
                RUST_VERSION,
                name,
                "declares no rust-version; add `rust-version.workspace = true`".into(),
            ),
            (Some(v), Some((needed, by))) if version_key(v) < version_key(needed) => flag(
                RUST_VERSION,
                name,
                format!("says rust-version {v}, but {by} needs {needed}; raise the workspace's"),
            ),
            _ => {}
        }
    }
    for (name, switches) in &g.test_hooks {
        for how in switches {
            flag(
                TEST_HOOKS,
                name,
                format!("{how}; ask for it in [dev-dependencies] only, so that no product build holds test hooks"),
            );
        }
    }
    for (name, dir) in &g.members {
        let closure = g.closure.get(name).cloned().unwrap_or_default();
        let direct = g.direct.get(name).cloned().unwrap_or_default();
        let place = format!("{name} ({})", dir.display());
        if dir.starts_with("crates") {
            for dep in closure.iter().filter(|d| is_tauri(d)) {
                flag(
                    NO_TAURI,
                    &place,
                    format!("depends on {dep}; keep Tauri in src-tauri and move what the shell needs into core"),
                );
            }
        }
        if name == SERVER {
            for dep in closure.iter().filter(|d| DEVICE.contains(&d.as_str())) {
                flag(
                    SIDES_APART,
                    &place,
                    format!("depends on {dep}; what both sides need belongs in outpost-protocol"),
                );
            }
        }
        if DEVICE.contains(&name.as_str()) && closure.contains(SERVER) {
            flag(
                SIDES_APART,
                &place,
                "depends on outpost-server; what both sides need belongs in outpost-protocol"
                    .into(),
            );
        }
        let runtime = g.runtime.get(name).cloned().unwrap_or_default();
        if name == PROTOCOL {
            for dep in closure.iter().filter(|d| d.starts_with("outpost-")) {
                flag(
                    SIDES_APART,
                    &place,
                    format!("depends on {dep}; protocol is the bottom layer"),
                );
            }
            for dep in runtime.iter().filter(|d| IO_CRATES.contains(&d.as_str())) {
                flag(
                    PROTOCOL_NO_IO,
                    &place,
                    format!("depends on {dep}; protocol takes values and returns values"),
                );
            }
        }
        if DEVICE.contains(&name.as_str()) && name != STORE {
            for dep in direct.iter().filter(|d| SQL_CRATES.contains(&d.as_str())) {
                flag(
                    ONLY_STORE_SQL,
                    &place,
                    format!("depends on {dep}; give outpost-store a typed method instead"),
                );
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------
// The sources
// ---------------------------------------------------------------------------------

/// Is this file test code as a whole (integration tests, benches, examples, the test
/// crate, this tool, a test module in a file of its own)?
pub fn is_test_file(rel: &Path) -> bool {
    let s = rel.to_string_lossy().replace('\\', "/");
    s.starts_with("tests/")
        || s.starts_with("xtask/")
        || ["/tests/", "/benches/", "/examples/"]
            .iter()
            .any(|d| s.contains(d))
        || s.ends_with("/tests.rs")
        || s.ends_with("/test_support.rs")
        || s.ends_with("/races.rs")
}

/// A clock module: the one place per side that reads the wall clock.
pub fn is_clock_module(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n == "clock.rs")
}

/// Every `.rs` file of the workspace, relative to `root` (no build output, no npm
/// packages, no generated code).
pub fn rust_files(root: &Path) -> Vec<PathBuf> {
    let skip = ["target", "node_modules", "gen", "dist"];
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && !skip.contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_path_buf());
                }
            }
        }
    }
    out.sort();
    out
}

/// The cargo feature that turns on a crate's test hooks (never in a product build).
pub const TEST_SUPPORT: &str = "test-support";
/// The same as a `cfg` predicate, spaces removed.
pub const TEST_FEATURE: &str = "feature=\"test-support\"";

/// Test-only code by its `cfg`: `test`, the test-support feature, either of them, or a
/// `cfg` that needs `test` (`all(test, …)`); not `not(test)`.
fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta.require_list().is_ok_and(|l| {
                let s: String = l.tokens.to_string().split_whitespace().collect();
                s == "test"
                    || s == TEST_FEATURE
                    || s == format!("any(test,{TEST_FEATURE})")
                    || s.starts_with("all(test,")
            })
    })
}

/// What one place (an item, with its attributes) contains that the rules look at.
#[derive(Debug, Default)]
struct Findings {
    unsafe_code: bool,
    clock_reads: BTreeSet<String>,
    io: BTreeSet<String>,
    /// `allow(clippy::disallowed_methods)` outside `cfg_attr(test, …)`.
    clock_allow: bool,
}

/// Walk a token stream (recursively into groups).
fn scan_tokens(tokens: TokenStream, f: &mut Findings) {
    let list: Vec<TokenTree> = tokens.into_iter().collect();
    let ident = |i: usize| match list.get(i) {
        Some(TokenTree::Ident(id)) => Some(id.to_string()),
        _ => None,
    };
    let path_sep = |i: usize| {
        matches!((list.get(i), list.get(i + 1)),
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':')
    };
    let bang = |i: usize| matches!(list.get(i), Some(TokenTree::Punct(p)) if p.as_char() == '!');
    for (i, t) in list.iter().enumerate() {
        match t {
            TokenTree::Ident(id) => {
                let id = id.to_string();
                if id == "unsafe" {
                    f.unsafe_code = true;
                }
                if CLOCK_TYPES.contains(&id.as_str())
                    && path_sep(i + 1)
                    && ident(i + 3).as_deref() == Some("now")
                {
                    f.clock_reads.insert(format!("{id}::now"));
                }
                if id == "std" && path_sep(i + 1) {
                    match list.get(i + 3) {
                        Some(TokenTree::Ident(m))
                            if IO_MODULES.contains(&m.to_string().as_str()) =>
                        {
                            f.io.insert(format!("std::{m}"));
                        }
                        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                            for inner in g.stream() {
                                if let TokenTree::Ident(m) = inner {
                                    if IO_MODULES.contains(&m.to_string().as_str()) {
                                        f.io.insert(format!("std::{m}"));
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if IO_MACROS.contains(&id.as_str()) && bang(i + 1) {
                    f.io.insert(format!("{id}!"));
                }
            }
            TokenTree::Punct(p) if p.as_char() == '#' => {
                let attr = match (list.get(i + 1), list.get(i + 2)) {
                    (Some(TokenTree::Group(g)), _) if g.delimiter() == Delimiter::Bracket => {
                        Some(g)
                    }
                    (Some(TokenTree::Punct(b)), Some(TokenTree::Group(g)))
                        if b.as_char() == '!' && g.delimiter() == Delimiter::Bracket =>
                    {
                        Some(g)
                    }
                    _ => None,
                };
                if let Some(g) = attr {
                    let text: String = g.stream().to_string().split_whitespace().collect();
                    if text.contains("disallowed_methods") && !text.starts_with("cfg_attr(test,") {
                        f.clock_allow = true;
                    }
                }
            }
            TokenTree::Group(g) => scan_tokens(g.stream(), f),
            _ => {}
        }
    }
}

/// The product code of a file as (place, tokens) pairs: one per item, test items left
/// out, modules and impl blocks opened up.
fn product_items(file: &syn::File) -> Vec<(String, TokenStream)> {
    fn walk(items: &[syn::Item], ctx: &str, out: &mut Vec<(String, TokenStream)>) {
        let at = |what: String| {
            if ctx.is_empty() {
                what
            } else {
                format!("{ctx}::{what}")
            }
        };
        for item in items {
            match item {
                syn::Item::Mod(m) if !is_cfg_test(&m.attrs) => match &m.content {
                    Some((_, inner)) => {
                        let mut head = TokenStream::new();
                        for a in &m.attrs {
                            a.to_tokens(&mut head);
                        }
                        out.push((at(format!("mod {}", m.ident)), head));
                        walk(inner, &at(format!("mod {}", m.ident)), out);
                    }
                    None => out.push((at(format!("mod {}", m.ident)), m.to_token_stream())),
                },
                syn::Item::Impl(i) if !is_cfg_test(&i.attrs) => {
                    let name = format!("impl {}", i.self_ty.to_token_stream())
                        .split_whitespace()
                        .collect::<String>()
                        .replacen("impl", "impl ", 1);
                    let mut head = TokenStream::new();
                    for a in &i.attrs {
                        a.to_tokens(&mut head);
                    }
                    i.unsafety.to_tokens(&mut head);
                    out.push((at(name.clone()), head));
                    for ii in &i.items {
                        let skip = match ii {
                            syn::ImplItem::Fn(f) => is_cfg_test(&f.attrs),
                            syn::ImplItem::Const(c) => is_cfg_test(&c.attrs),
                            _ => false,
                        };
                        if !skip {
                            let label = match ii {
                                syn::ImplItem::Fn(f) => format!("fn {}", f.sig.ident),
                                syn::ImplItem::Const(c) => format!("const {}", c.ident),
                                _ => "item".into(),
                            };
                            out.push((at(format!("{name}::{label}")), ii.to_token_stream()));
                        }
                    }
                }
                syn::Item::Mod(_) | syn::Item::Impl(_) => {}
                other => {
                    let attrs: &[syn::Attribute] = match other {
                        syn::Item::Fn(f) => &f.attrs,
                        syn::Item::Use(u) => &u.attrs,
                        syn::Item::Const(c) => &c.attrs,
                        syn::Item::Static(s) => &s.attrs,
                        syn::Item::Struct(s) => &s.attrs,
                        syn::Item::Enum(e) => &e.attrs,
                        syn::Item::Trait(t) => &t.attrs,
                        syn::Item::Macro(m) => &m.attrs,
                        syn::Item::Type(t) => &t.attrs,
                        syn::Item::ForeignMod(f) => &f.attrs,
                        _ => &[],
                    };
                    if !is_cfg_test(attrs) {
                        out.push((at(item_label(other)), other.to_token_stream()));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut inner = TokenStream::new();
    for a in &file.attrs {
        a.to_tokens(&mut inner);
    }
    out.push(("the file's attributes".to_owned(), inner));
    walk(&file.items, "", &mut out);
    out
}

fn item_label(item: &syn::Item) -> String {
    match item {
        syn::Item::Fn(f) => format!("fn {}", f.sig.ident),
        syn::Item::Struct(s) => format!("struct {}", s.ident),
        syn::Item::Enum(e) => format!("enum {}", e.ident),
        syn::Item::Trait(t) => format!("trait {}", t.ident),
        syn::Item::Const(c) => format!("const {}", c.ident),
        syn::Item::Static(s) => format!("static {}", s.ident),
        syn::Item::Type(t) => format!("type {}", t.ident),
        syn::Item::Use(_) => "a use".to_owned(),
        syn::Item::Macro(m) => match &m.ident {
            Some(i) => format!("macro {i}"),
            None => "a macro call".to_owned(),
        },
        syn::Item::ForeignMod(_) => "an extern block".to_owned(),
        _ => "an item".to_owned(),
    }
}

/// Check one file's source; `rel` says where it is in the workspace.
pub fn check_source(rel: &Path, source: &str) -> Vec<Violation> {
    let rel_s = rel.to_string_lossy().replace('\\', "/");
    let file = match syn::parse_file(source) {
        Ok(f) => f,
        Err(e) => {
            return vec![Violation {
                rule: "every source parses",
                place: rel_s,
                detail: format!("cannot parse: {e}"),
            }]
        }
    };
    let mut found = Vec::new();
    let mut flag = |rule, place: &str, detail: String| {
        found.push(Violation {
            rule,
            place: format!("{rel_s}: {place}"),
            detail,
        })
    };

    // `unsafe` anywhere, test code included: the whole file's tokens.
    if !UNSAFE_ALLOWED.contains(&rel_s.as_str()) {
        let mut f = Findings::default();
        scan_tokens(file.to_token_stream(), &mut f);
        if f.unsafe_code {
            flag(
                NO_UNSAFE,
                "the file",
                format!(
                    "holds unsafe code; use a safe crate instead (allowed in: {UNSAFE_ALLOWED:?})"
                ),
            );
        }
    }
    if is_test_file(rel) {
        return found;
    }
    let protocol = rel_s.starts_with("crates/protocol/");
    for (place, tokens) in product_items(&file) {
        let mut f = Findings::default();
        scan_tokens(tokens, &mut f);
        if !is_clock_module(rel) {
            if f.clock_allow {
                flag(
                    CLOCK,
                    &place,
                    "allows clippy::disallowed_methods outside a clock module; take a Clock instead".into(),
                );
            }
            for call in &f.clock_reads {
                flag(
                    CLOCK,
                    &place,
                    format!("reads the wall clock ({call}); take an outpost_protocol::Clock and leave the reading to a clock module"),
                );
            }
        }
        if protocol {
            for io in &f.io {
                flag(
                    PROTOCOL_NO_IO,
                    &place,
                    format!("uses {io}; protocol takes values and returns values"),
                );
            }
        }
    }
    if rel_s.starts_with("crates/store/src/") {
        for (place, what) in public_sql_handles(&file) {
            flag(
                ONLY_STORE_SQL,
                &place,
                format!(
                    "{what}; keep SQL handles private to outpost-store and offer a typed method"
                ),
            );
        }
    }
    found
}

fn names_sql_handle(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => SQL_HANDLES.contains(&i.to_string().as_str()),
        TokenTree::Group(g) => names_sql_handle(g.stream()),
        _ => false,
    })
}

/// `store`'s public items (plain `pub`, outside test code) whose signature or type names
/// an SQL handle: a raw connection or transaction handed out of the crate.
fn public_sql_handles(file: &syn::File) -> Vec<(String, String)> {
    fn is_pub(v: &syn::Visibility) -> bool {
        matches!(v, syn::Visibility::Public(_))
    }
    fn walk(items: &[syn::Item], out: &mut Vec<(String, String)>) {
        for item in items {
            match item {
                syn::Item::Mod(m) if !is_cfg_test(&m.attrs) => {
                    if let Some((_, inner)) = &m.content {
                        walk(inner, out);
                    }
                }
                syn::Item::Fn(f)
                    if is_pub(&f.vis)
                        && !is_cfg_test(&f.attrs)
                        && names_sql_handle(f.sig.to_token_stream()) =>
                {
                    out.push((
                        format!("fn {}", f.sig.ident),
                        "a public fn names an SQL handle".into(),
                    ));
                }
                syn::Item::Impl(i) if !is_cfg_test(&i.attrs) => {
                    for ii in &i.items {
                        if let syn::ImplItem::Fn(f) = ii {
                            if is_pub(&f.vis)
                                && !is_cfg_test(&f.attrs)
                                && names_sql_handle(f.sig.to_token_stream())
                            {
                                out.push((
                                    format!(
                                        "impl {}::fn {}",
                                        i.self_ty.to_token_stream(),
                                        f.sig.ident
                                    ),
                                    "a public method names an SQL handle".into(),
                                ));
                            }
                        }
                    }
                }
                syn::Item::Use(u)
                    if is_pub(&u.vis) && names_sql_handle(u.tree.to_token_stream()) =>
                {
                    out.push(("a pub use".into(), "re-exports an SQL handle".into()));
                }
                syn::Item::Type(t)
                    if is_pub(&t.vis) && names_sql_handle(t.ty.to_token_stream()) =>
                {
                    out.push((
                        format!("type {}", t.ident),
                        "a public type alias of an SQL handle".into(),
                    ));
                }
                syn::Item::Struct(s) if is_pub(&s.vis) => {
                    for field in &s.fields {
                        if is_pub(&field.vis) && names_sql_handle(field.ty.to_token_stream()) {
                            out.push((
                                format!("struct {}", s.ident),
                                "a public field holds an SQL handle".into(),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&file.items, &mut out);
    out
}

/// `clippy.toml` must forbid the wall-clock calls, so that clippy holds the rule too.
pub fn check_clippy_config(text: &str) -> Vec<Violation> {
    let compact: String = text.split_whitespace().collect();
    CLOCK_CALLS
        .iter()
        .filter(|c| !compact.contains(&format!("path=\"{c}\"")))
        .map(|c| Violation {
            rule: CLOCK,
            place: "clippy.toml".into(),
            detail: format!("disallowed-methods does not list {c}"),
        })
        .collect()
}

/// Every rule over the whole workspace.
pub fn check_workspace(root: &Path) -> Result<Vec<Violation>, String> {
    let mut found = check_graph(&graph(root)?);
    let clippy = std::fs::read_to_string(root.join("clippy.toml"))
        .map_err(|e| format!("cannot read clippy.toml: {e}"))?;
    found.extend(check_clippy_config(&clippy));
    let files = rust_files(root);
    if files.len() < 10 {
        return Err(format!(
            "found only {} Rust files under {}: is that the repository's root?",
            files.len(),
            root.display()
        ));
    }
    for rel in files {
        let text = std::fs::read_to_string(root.join(&rel))
            .map_err(|e| format!("cannot read {}: {e}", rel.display()))?;
        found.extend(check_source(&rel, &text));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(rel: &str, src: &str) -> Vec<&'static str> {
        check_source(Path::new(rel), src)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn unsafe_is_found_in_every_form_in_every_file() {
        assert!(UNSAFE_ALLOWED.is_empty(), "no file may hold unsafe code");
        for src in [
            "fn f() { unsafe { g() } }",
            "unsafe fn f() {}",
            "unsafe impl Send for X {}",
            "#[cfg(test)] mod t { fn f() { unsafe { g() } } }",
        ] {
            assert_eq!(rules("crates/core/src/x.rs", src), [NO_UNSAFE], "{src}");
            // Where the store's page-crypto provider was: no exception any more.
            assert_eq!(
                rules("crates/store/src/crypto.rs", src),
                [NO_UNSAFE],
                "{src}"
            );
        }
        // A comment or a string is not code.
        assert!(rules(
            "crates/core/src/x.rs",
            "// unsafe\nconst S: &str = \"unsafe\";"
        )
        .is_empty());
    }

    #[test]
    fn wall_clock_reads_are_found_outside_clock_modules_and_test_code() {
        let read = "fn f() -> i64 { chrono::Utc::now().timestamp() }";
        assert_eq!(rules("crates/server/src/x.rs", read), [CLOCK]);
        assert_eq!(
            rules(
                "crates/core/src/x.rs",
                "fn f() { let t = SystemTime::now(); }"
            ),
            [CLOCK]
        );
        assert!(rules("crates/server/src/clock.rs", read).is_empty());
        assert!(rules("crates/server/tests/x.rs", read).is_empty());
        assert!(rules(
            "crates/server/src/x.rs",
            &format!("#[cfg(test)] mod t {{ {read} }}")
        )
        .is_empty());
        // Allowing clippy's rule is itself flagged, except for tests.
        assert_eq!(
            rules(
                "crates/core/src/x.rs",
                "#[allow(clippy::disallowed_methods)] fn f() {}"
            ),
            [CLOCK]
        );
        assert!(rules(
            "crates/core/src/lib.rs",
            "#![cfg_attr(test, allow(clippy::disallowed_methods))]"
        )
        .is_empty());
        // A method of that name on something else is not a clock.
        assert!(rules(
            "crates/core/src/x.rs",
            "fn f(c: &C) { c.now(); Instant::now(); }"
        )
        .is_empty());
    }

    #[test]
    fn protocol_io_is_found_in_paths_use_groups_and_printing() {
        for src in [
            "use std::fs::File;",
            "use std::{collections::HashMap, io};",
            "fn f() { std::env::var(\"X\"); }",
            "fn f() { println!(\"hi\"); }",
        ] {
            assert_eq!(
                rules("crates/protocol/src/x.rs", src),
                [PROTOCOL_NO_IO],
                "{src}"
            );
            assert!(rules("crates/store/src/x.rs", src).is_empty(), "{src}");
        }
        assert!(rules("crates/protocol/src/x.rs", "use std::collections::HashMap;").is_empty());
    }

    #[test]
    fn stores_public_api_may_not_hand_out_sql_handles() {
        for src in [
            "impl Store { pub fn conn(&self) -> &rusqlite::Connection { &self.c } }",
            "pub fn tx<'a>(s: &'a mut Store) -> Transaction<'a> { todo() }",
            "pub use rusqlite::Connection;",
            "pub struct Raw { pub c: Connection }",
        ] {
            assert_eq!(
                rules("crates/store/src/x.rs", src),
                [ONLY_STORE_SQL],
                "{src}"
            );
        }
        for src in [
            "impl Store { pub(crate) fn conn(&self) -> &Connection { &self.c } }",
            "impl Store { fn tx(&mut self) -> Transaction<'_> { todo() } }",
            "pub struct Store { c: Connection }",
            "impl Store { pub fn count(&self) -> usize { 0 } }",
        ] {
            assert!(rules("crates/store/src/x.rs", src).is_empty(), "{src}");
        }
    }

    fn graph(members: &[(&str, &str, &[&str], &[&str])]) -> Graph {
        let mut g = Graph::default();
        for (name, dir, direct, closure) in members {
            g.members.insert((*name).into(), PathBuf::from(dir));
            g.direct.insert(
                (*name).into(),
                direct.iter().map(|s| (*s).to_owned()).collect(),
            );
            let mut all: BTreeSet<String> = closure.iter().map(|s| (*s).to_owned()).collect();
            all.extend(direct.iter().map(|s| (*s).to_owned()));
            g.closure.insert((*name).into(), all.clone());
            g.runtime.insert((*name).into(), all);
            g.rust_version.insert((*name).into(), Some("1.95".into()));
        }
        g.deps_rust_version = Some(("1.90".into(), "tauri".into()));
        g
    }

    #[test]
    fn the_dependency_rules_name_what_broke() {
        let ok = graph(&[
            ("outpost-protocol", "crates/protocol", &["serde"], &[]),
            (
                "outpost-store",
                "crates/store",
                &["rusqlite", "outpost-protocol"],
                &["libsqlite3-sys"],
            ),
            (
                "outpost-core",
                "crates/core",
                &["outpost-store"],
                &["rusqlite"],
            ),
            (
                "outpost-server",
                "crates/server",
                &["outpost-protocol", "tokio-postgres"],
                &["tokio"],
            ),
            (
                "outpost-desktop",
                "src-tauri",
                &["tauri", "outpost-core"],
                &[],
            ),
        ]);
        assert!(check_graph(&ok).is_empty(), "{:?}", check_graph(&ok));

        let bad = graph(&[
            ("outpost-protocol", "crates/protocol", &["tokio"], &[]),
            (
                "outpost-core",
                "crates/core",
                &["rusqlite"],
                &["tauri-utils"],
            ),
            ("outpost-server", "crates/server", &["outpost-store"], &[]),
        ]);
        let broken: BTreeSet<&str> = check_graph(&bad).iter().map(|v| v.rule).collect();
        assert_eq!(
            broken,
            BTreeSet::from([PROTOCOL_NO_IO, ONLY_STORE_SQL, NO_TAURI, SIDES_APART])
        );
    }

    #[test]
    fn test_hooks_are_turned_on_by_dev_dependencies_only() {
        let package = |deps: serde_json::Value, features: serde_json::Value| serde_json::json!({"name": "outpost-cli", "dependencies": deps, "features": features});
        let fine = package(
            serde_json::json!([
                {"name": "outpost-core", "kind": null, "features": []},
                {"name": "outpost-core", "kind": "dev", "features": ["test-support"]},
            ]),
            serde_json::json!({"test-support": ["outpost-core/test-support"]}),
        );
        assert_eq!(test_hook_switches(&fine), Vec::<String>::new());
        let leaky = package(
            serde_json::json!([
                {"name": "outpost-core", "kind": null, "features": ["test-support"]},
                {"name": "outpost-store", "kind": "build", "features": ["test-support"]},
            ]),
            serde_json::json!({"default": ["outpost-core?/test-support"], "local": ["test-support"]}),
        );
        assert_eq!(
            test_hook_switches(&leaky).len(),
            4,
            "{:?}",
            test_hook_switches(&leaky)
        );
        let mut g = graph(&[("outpost-cli", "crates/cli", &[], &[])]);
        g.test_hooks
            .insert("outpost-cli".into(), test_hook_switches(&leaky));
        let broken: Vec<&str> = check_graph(&g).iter().map(|v| v.rule).collect();
        assert_eq!(broken, vec![TEST_HOOKS; 4]);
    }

    #[test]
    fn rust_version_must_cover_the_dependencies() {
        let mut g = graph(&[("outpost-core", "crates/core", &[], &[])]);
        assert!(check_graph(&g).is_empty());
        g.deps_rust_version = Some(("1.96".into(), "rusqlite".into()));
        assert_eq!(check_graph(&g)[0].rule, RUST_VERSION);
        g.rust_version.insert("outpost-core".into(), None);
        assert!(check_graph(&g)[0]
            .detail
            .contains("declares no rust-version"));
    }

    #[test]
    fn clippy_must_list_every_wall_clock_call() {
        let all = r#"disallowed-methods = [
            { path = "chrono::Utc::now", reason = "r" },
            { path = "chrono::Local::now", reason = "r" },
            { path = "std::time::SystemTime::now", reason = "r" },
        ]"#;
        assert!(check_clippy_config(all).is_empty());
        let v = check_clippy_config(&all.replace("chrono::Local::now", "x"));
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("chrono::Local::now"));
    }

    #[test]
    fn test_files_are_told_from_product_files() {
        for p in [
            "tests/src/lib.rs",
            "crates/server/tests/sync.rs",
            "crates/store/benches/a.rs",
            "crates/protocol/src/merge/tests.rs",
            "xtask/src/tidy.rs",
        ] {
            assert!(is_test_file(Path::new(p)), "{p}");
        }
        for p in [
            "crates/store/src/db.rs",
            "src-tauri/src/main.rs",
            "crates/protocol/src/merge/mod.rs",
        ] {
            assert!(!is_test_file(Path::new(p)), "{p}");
        }
    }
}
