//! The tidy test: the codebase checked against its own rules, on every `cargo test`.
//!
//! - **Crate arrows.** The "Crate arrows" block of the root `ARCHITECTURE.md` lists which
//!   workspace crate may depend on which; every `Cargo.toml` of the workspace is read through
//!   `cargo metadata` and must match it both ways (an arrow the manifests lack is stale, a
//!   dependency the block lacks is undeclared). Some arrows are forbidden whatever the block
//!   says (the hub to the lines or the box, the box to the hub, the lines to anything above
//!   them, a sans-IO crate to I/O or OS randomness, the panel to anything needing `std`).
//! - **Module docs.** Every `.rs` file under a crate's `src/` starts with a `//!` sentence.
//! - **No ignored tests.** No `#[ignore]` (plain, with a reason, or in a `cfg_attr`) in any
//!   Rust source of the repository: a test that never runs cannot fail.
//! - **No banned crates.** No `bincode` and no `sip-codec` in any manifest.
//! - **Test tools stay out of products.** A `test-utils` feature is enabled only by
//!   dev-dependencies or by the test-only `tests` crate, and no default feature reaches one.
//!
//! Every objection names its file and line. The rules walk directories and read manifests
//! rather than listing files, so crates and modules added later are held to them too. Each
//! checker is a pure function over text or parsed manifests, and the `checker_*` tests below
//! feed it small inputs that break each rule, so a rule that silently stopped matching would
//! fail here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Crates that do no I/O: time and randomness come in as arguments.
const SANS_IO: &[&str] = &["sync-protocol", "sip-core", "dialer"];
/// External crates a sans-IO crate must not name: async runtimes, sockets, databases, OS
/// entropy. Matched on the package name (a rename does not hide one).
const IO_CRATES: &[&str] = &["tokio", "tokio-util", "tokio-stream", "quinn", "quinn-proto", "rusqlite", "mio", "socket2", "getrandom"];
/// Generator crates whose features can reach the OS's entropy.
const RAND_CRATES: &[&str] = &["rand", "rand_core", "rand_chacha", "rand_pcg", "rand_xoshiro"];
/// Features of those crates that draw on the OS (`rand::rng()`, `OsRng`, `from_os_rng`).
const OS_RANDOM_FEATURES: &[&str] = &["os_rng", "thread_rng", "getrandom"];
/// The `no_std` front panel.
const FIRMWARE: &str = "firmware";
/// Crates that exist only to test the others, which may enable test tools in normal
/// dependencies.
const TEST_ONLY: &[&str] = &["tests"];
/// Crates no manifest may name.
const BANNED: &[(&str, &str)] = &[
    ("bincode", "the wire is postcard behind sync-protocol's framing; bincode is not to be used"),
    ("sip-codec", "SIP is parsed by the project's own sip-core; sip-codec is not to be used"),
];
/// The heading of the arrows section in `ARCHITECTURE.md`.
const ARROWS_HEADING: &str = "## Crate arrows";

// ---------------------------------------------------------------------------------------
// Findings

/// One objection: where, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    file: PathBuf,
    line: usize,
    message: String,
}

impl Finding {
    fn new(file: &Path, line: usize, message: impl Into<String>) -> Finding {
        Finding { file: file.to_path_buf(), line, message: message.into() }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Fails the test with every finding, one per line, paths relative to the workspace root.
fn assert_clean(rule: &str, findings: Vec<Finding>) {
    if findings.is_empty() {
        return;
    }
    let root = workspace_root();
    let lines: Vec<String> = findings
        .iter()
        .map(|f| {
            let file = f.file.strip_prefix(&root).unwrap_or(&f.file);
            format!("  {}:{}: {}", file.display(), f.line, f.message)
        })
        .collect();
    panic!("{rule}: {} finding(s)\n{}", findings.len(), lines.join("\n"));
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate sits in the workspace").to_path_buf()
}

// ---------------------------------------------------------------------------------------
// Manifests

/// Which table of a manifest a dependency sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Dev,
    Build,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Normal => "dependencies",
            Kind::Dev => "dev-dependencies",
            Kind::Build => "build-dependencies",
        }
    }
}

/// One dependency of a workspace crate, as `cargo metadata` resolved it.
#[derive(Debug, Clone)]
struct Dep {
    /// The package depended on.
    name: String,
    /// The key in the manifest (the rename, if any).
    key: String,
    kind: Kind,
    default_features: bool,
    features: Vec<String>,
    /// A workspace member.
    internal: bool,
}

/// A workspace crate's manifest: its text (for line numbers) and its resolved dependencies.
#[derive(Debug, Clone)]
struct Manifest {
    name: String,
    path: PathBuf,
    text: String,
    deps: Vec<Dep>,
    features: BTreeMap<String, Vec<String>>,
}

impl Manifest {
    /// The line declaring `dep`, found in the manifest's text; 1 if it cannot be placed.
    fn line_of(&self, dep: &Dep) -> usize {
        manifest_dep_lines(&self.text)
            .into_iter()
            .find(|d| d.kind == dep.kind && d.key == dep.key)
            .or_else(|| manifest_dep_lines(&self.text).into_iter().find(|d| d.key == dep.key))
            .map_or(1, |d| d.line)
    }

    /// The line of `[features]` entry `feature`; 1 if it cannot be placed.
    fn feature_line(&self, feature: &str) -> usize {
        let mut in_features = false;
        for (i, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                in_features = t == "[features]";
            } else if in_features && key_of(t).as_deref() == Some(feature) {
                return i + 1;
            }
        }
        1
    }
}

/// The workspace's crates, read with `cargo metadata --no-deps`.
fn workspace_manifests() -> Vec<Manifest> {
    let metadata = cargo_metadata(&["--no-deps"]);
    let members: BTreeSet<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let path = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| {
                    let name = d["name"].as_str().expect("dependency name").to_owned();
                    Dep {
                        key: d["rename"].as_str().unwrap_or(&name).to_owned(),
                        kind: match d["kind"].as_str() {
                            Some("dev") => Kind::Dev,
                            Some("build") => Kind::Build,
                            _ => Kind::Normal,
                        },
                        default_features: d["uses_default_features"].as_bool().unwrap_or(true),
                        features: strings(&d["features"]),
                        internal: d["path"].is_string() && members.contains(&name),
                        name,
                    }
                })
                .collect();
            let features = p["features"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
                .unwrap_or_default();
            Manifest { name: p["name"].as_str().expect("name").to_owned(), path, text, deps, features }
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn cargo_metadata(extra: &[&str]) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        // `--locked`: reading the workspace must never rewrite its Cargo.lock (`cargo test`
        // has already brought the lock up to date before this runs).
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(extra)
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// A dependency as written in a manifest's text: where, in which table, under which key,
/// and the package it names if renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DepLine {
    line: usize,
    kind: Kind,
    key: String,
    package: Option<String>,
}

/// Every dependency a manifest's text declares, in any dependency table: `[dependencies]`,
/// `[dev-dependencies]`, `[build-dependencies]`, their `[target.'…'.…]` forms,
/// `[workspace.dependencies]`, and the `[dependencies.name]` table form.
fn manifest_dep_lines(text: &str) -> Vec<DepLine> {
    let mut found = Vec::new();
    // The table the following lines belong to: a dependency list, or one dependency.
    let mut list: Option<Kind> = None;
    let mut single: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_toml_comment(raw);
        let t = line.trim();
        if t.starts_with('[') {
            list = None;
            single = None;
            let header = t.trim_start_matches('[').trim_end_matches(']');
            let parts = split_dotted(header);
            let kind_at = |n: usize| parts.len().checked_sub(n).and_then(|j| table_kind(&parts[j]));
            if let Some(kind) = kind_at(1) {
                list = Some(kind);
            } else if let Some(kind) = kind_at(2) {
                let key = unquote(parts.last().expect("two parts"));
                found.push(DepLine { line: i + 1, kind, key, package: None });
                single = Some(found.len() - 1);
            }
            continue;
        }
        let Some(key) = key_of(t) else { continue };
        if let Some(kind) = list {
            found.push(DepLine { line: i + 1, kind, key, package: inline_package(t) });
        } else if let (Some(at), "package") = (single, key.as_str()) {
            found[at].package = t.split_once('=').map(|(_, v)| unquote(v.trim()));
        }
    }
    found
}

fn table_kind(segment: &str) -> Option<Kind> {
    match unquote(segment).as_str() {
        "dependencies" => Some(Kind::Normal),
        "dev-dependencies" | "dev_dependencies" => Some(Kind::Dev),
        "build-dependencies" | "build_dependencies" => Some(Kind::Build),
        _ => None,
    }
}

/// The key of a `key = value` or `key.sub = value` line, unquoted.
fn key_of(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let first = split_dotted(key.trim()).into_iter().next()?;
    let key = unquote(&first);
    (!key.is_empty()).then_some(key)
}

/// `package = "…"` inside an inline table on the line, if any.
fn inline_package(line: &str) -> Option<String> {
    let (_, value) = line.split_once('=')?;
    let inner = value.trim().strip_prefix('{')?;
    inner.split(',').find_map(|field| {
        let (k, v) = field.split_once('=')?;
        (k.trim() == "package").then(|| unquote(v.trim().trim_end_matches('}').trim()))
    })
}

/// Splits `a.'b.c'."d"` on the dots outside quotes.
fn split_dotted(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (None, '.') => parts.push(String::new()),
            (None, '"' | '\'') => {
                quote = Some(c);
                parts.last_mut().expect("one part").push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                parts.last_mut().expect("one part").push(c);
            }
            _ => parts.last_mut().expect("one part").push(c),
        }
    }
    parts.into_iter().map(|p| p.trim().to_owned()).collect()
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned()
}

/// The line without a trailing `# comment` (a `#` inside a string is kept).
fn strip_toml_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

// ---------------------------------------------------------------------------------------
// The arrows block of ARCHITECTURE.md

/// What an arrow of the block allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// `a -> b`: in any dependency table.
    Any,
    /// `a -> b (dev)`: for tests, examples and benches only.
    Dev,
    /// `a -> OS randomness (pending)`: a known breach of the sans-IO rule, tolerated until
    /// it is fixed, and then reported as stale so the line goes.
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Arrow {
    from: String,
    to: String,
    tag: Tag,
    line: usize,
}

/// The pseudo-target of a pending randomness breach.
const OS_RANDOMNESS: &str = "OS randomness";

/// Reads the first fenced block after the `## Crate arrows` heading: `from -> to` lines,
/// optionally tagged `(dev)` or `(pending)`; `#` starts a comment.
fn parse_arrows(doc: &Path, text: &str) -> Result<Vec<Arrow>, Vec<Finding>> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(heading) = lines.iter().position(|l| l.trim() == ARROWS_HEADING) else {
        return Err(vec![Finding::new(doc, 1, format!("no `{ARROWS_HEADING}` section: the tidy test reads the allowed crate arrows there"))]);
    };
    let Some(open) = (heading + 1..lines.len()).find(|&i| lines[i].trim_start().starts_with("```")) else {
        return Err(vec![Finding::new(doc, heading + 1, "the crate arrows section has no fenced block")]);
    };
    let mut arrows = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in lines.iter().enumerate().skip(open + 1) {
        let t = raw.split('#').next().unwrap_or("").trim();
        if raw.trim_start().starts_with("```") {
            return if errors.is_empty() { Ok(arrows) } else { Err(errors) };
        }
        if t.is_empty() {
            continue;
        }
        let Some((from, rest)) = t.split_once("->") else {
            errors.push(Finding::new(doc, i + 1, format!("`{t}` is not an arrow: write `crate -> dependency`, optionally followed by `(dev)` or `(pending)`")));
            continue;
        };
        let (to, tag) = match rest.trim().rsplit_once('(') {
            Some((to, "dev)")) => (to.trim(), Tag::Dev),
            Some((to, "pending)")) => (to.trim(), Tag::Pending),
            Some((_, other)) => {
                errors.push(Finding::new(doc, i + 1, format!("unknown tag `({other}`: the tags are `(dev)` and `(pending)`")));
                continue;
            }
            None => (rest.trim(), Tag::Any),
        };
        if tag == Tag::Pending && to != OS_RANDOMNESS {
            errors.push(Finding::new(doc, i + 1, format!("only `crate -> {OS_RANDOMNESS} (pending)` may be pending")));
            continue;
        }
        arrows.push(Arrow { from: from.trim().to_owned(), to: to.to_owned(), tag, line: i + 1 });
    }
    errors.push(Finding::new(doc, open + 1, "the crate arrows block is not closed"));
    Err(errors)
}

// ---------------------------------------------------------------------------------------
// Arrow rules

/// Why `from` may never depend on the workspace crate `to`, whatever the document says.
fn forbidden_arrow(from: &str, to: &str) -> Option<&'static str> {
    let above_lines = ["appliance", "hq-hub", "dialer", "sync-protocol", "sync-link", "demo", "tests"];
    match (from, to) {
        ("hq-hub", "hardware" | "appliance") => {
            Some("the hub places no calls and is no site: it reaches boxes only over the sync link")
        }
        ("appliance", "hq-hub") => Some("the box reaches HQ on no path but the sync link"),
        ("hardware", to) if above_lines.contains(&to) => {
            Some("hardware knows nothing above the lines (no projects, batches, pacing or sync)")
        }
        (FIRMWARE, _) => Some("firmware is no_std, and every other workspace crate needs std"),
        (from, to) if SANS_IO.contains(&from) && !SANS_IO.contains(&to) => {
            Some("a sans-IO crate depends only on other sans-IO crates")
        }
        (from, "tests") if from != "tests" => Some("nothing depends on the end-to-end test crate"),
        (from, "demo") if !TEST_ONLY.contains(&from) => Some("only the end-to-end tests may drive the demo"),
        _ => None,
    }
}

/// Why a sans-IO crate's dependency `dep` is I/O or OS randomness.
fn sans_io_breach(dep: &Dep) -> Option<String> {
    if IO_CRATES.contains(&dep.name.as_str()) {
        return Some(format!("`{}` does I/O or reads OS entropy; a sans-IO crate takes time and bytes as arguments", dep.name));
    }
    if RAND_CRATES.contains(&dep.name.as_str()) {
        if let Some(f) = dep.features.iter().find(|f| OS_RANDOM_FEATURES.contains(&f.as_str())) {
            return Some(format!("`{}` with feature `{f}` draws on OS randomness; take a seeded or injected generator", dep.name));
        }
        if dep.name == "rand" && dep.default_features {
            return Some(
                "`rand` with default features brings `rand::rng()` and the OS generator; use `default-features = false` (with `std_rng` or `small_rng`) and seed or inject the generator"
                    .to_owned(),
            );
        }
    }
    None
}

/// Holds the manifests against the arrows: forbidden arrows, undeclared and stale ones, and
/// the sans-IO and firmware rules on external dependencies. `random_sources` are the OS
/// randomness uses found in each sans-IO crate's sources, so that a pending breach can be
/// told stale once both its manifest and its sources are clean.
fn check_arrows(doc: &Path, arrows: &[Arrow], manifests: &[Manifest], random_sources: &BTreeMap<String, Vec<Finding>>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let members: BTreeSet<&str> = manifests.iter().map(|m| m.name.as_str()).collect();
    let by_name: BTreeMap<&str, &Manifest> = manifests.iter().map(|m| (m.name.as_str(), m)).collect();

    // The document's side: every arrow names real crates, breaks no rule, and is in use.
    for arrow in arrows {
        let Some(manifest) = by_name.get(arrow.from.as_str()) else {
            findings.push(Finding::new(doc, arrow.line, format!("`{}` is not a workspace crate", arrow.from)));
            continue;
        };
        if arrow.tag == Tag::Pending {
            continue;
        }
        let internal = members.contains(arrow.to.as_str());
        if internal {
            if let Some(why) = forbidden_arrow(&arrow.from, &arrow.to) {
                findings.push(Finding::new(doc, arrow.line, format!("`{} -> {}` is forbidden: {why}", arrow.from, arrow.to)));
                continue;
            }
        } else if arrow.from != FIRMWARE {
            findings.push(Finding::new(
                doc,
                arrow.line,
                format!("`{}` is not a workspace crate; only firmware's external dependencies are listed", arrow.to),
            ));
            continue;
        }
        let used = manifest.deps.iter().any(|d| d.name == arrow.to && (arrow.tag == Tag::Any || d.kind == Kind::Dev));
        if !used {
            findings.push(Finding::new(
                doc,
                arrow.line,
                format!("stale arrow `{} -> {}`: {} has no such dependency; delete the line", arrow.from, arrow.to, manifest.path.display()),
            ));
        }
    }

    // The manifests' side.
    for manifest in manifests {
        let allowed = |to: &str, kind: Kind| {
            arrows.iter().any(|a| a.from == manifest.name && a.to == to && (a.tag == Tag::Any || (a.tag == Tag::Dev && kind == Kind::Dev)))
        };
        for dep in &manifest.deps {
            let at = |message: String| Finding::new(&manifest.path, manifest.line_of(dep), message);
            if dep.internal && dep.name != manifest.name {
                if let Some(why) = forbidden_arrow(&manifest.name, &dep.name) {
                    findings.push(at(format!("`{} -> {}` is forbidden: {why}", manifest.name, dep.name)));
                } else if !allowed(&dep.name, dep.kind) && allowed(&dep.name, Kind::Dev) {
                    findings.push(at(format!(
                        "`{} -> {}` ({}): ARCHITECTURE.md allows this arrow for tests only; move it to dev-dependencies or change the arrow",
                        manifest.name,
                        dep.name,
                        dep.kind.table()
                    )));
                } else if !allowed(&dep.name, dep.kind) {
                    findings.push(at(format!(
                        "`{} -> {}` ({}) is not among the crate arrows of ARCHITECTURE.md; add it there if it belongs",
                        manifest.name,
                        dep.name,
                        dep.kind.table()
                    )));
                }
            }
            if manifest.name == FIRMWARE && dep.kind != Kind::Dev && !dep.internal && !allowed(&dep.name, dep.kind) {
                findings.push(at(format!(
                    "firmware's dependency `{}` is not listed in ARCHITECTURE.md's crate arrows; list it there once it is known to be no_std",
                    dep.name
                )));
            }
        }
    }

    // Sans-IO crates: no I/O, no OS randomness, except a breach listed as pending.
    for name in SANS_IO {
        let Some(manifest) = by_name.get(name) else { continue };
        let mut random = Vec::new();
        for dep in &manifest.deps {
            let Some(why) = sans_io_breach(dep) else { continue };
            let finding = Finding::new(&manifest.path, manifest.line_of(dep), format!("{name}: {why}"));
            if RAND_CRATES.contains(&dep.name.as_str()) || dep.name == "getrandom" {
                random.push(finding);
            } else {
                findings.push(finding);
            }
        }
        random.extend(random_sources.get(*name).cloned().unwrap_or_default());
        let pending = arrows.iter().find(|a| a.from == *name && a.tag == Tag::Pending);
        match (pending, random.is_empty()) {
            (Some(arrow), true) => findings.push(Finding::new(
                doc,
                arrow.line,
                format!("stale pending breach: {name} no longer uses OS randomness; delete this line"),
            )),
            (Some(_), false) => {
                for f in &random {
                    eprintln!("tidy: pending (listed in ARCHITECTURE.md): {f}");
                }
            }
            (None, _) => findings.extend(random),
        }
    }
    findings
}

/// Uses of OS randomness in Rust source: the thread-local or OS generators and the
/// functions that seed from the OS. Comment lines are skipped.
fn os_randomness_uses(file: &Path, src: &str) -> Vec<Finding> {
    const NAMES: &[&str] = &["thread_rng", "ThreadRng", "OsRng", "from_entropy", "from_os_rng", "getrandom"];
    const PATHS: &[&str] = &["rand::rng(", "rand::random", "rand::rngs::ThreadRng"];
    let mut found = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let code = line.trim();
        if code.starts_with("//") {
            continue;
        }
        let idents = identifiers(code);
        let hit = NAMES.iter().find(|n| idents.iter().any(|i| i == *n)).map(|n| (*n).to_owned()).or_else(|| {
            PATHS.iter().find(|p| code.contains(*p)).map(|p| (*p).trim_end_matches('(').to_owned())
        });
        // `use rand::{random, rng}` imports the same functions under their bare names.
        let imported = code.starts_with("use rand::{") && idents.iter().any(|i| i == "rng" || i == "random");
        if let Some(what) = hit.or_else(|| imported.then(|| "rand::{rng, random}".to_owned())) {
            found.push(Finding::new(file, i + 1, format!("`{what}` draws on OS randomness; take a seeded or injected generator")));
        }
    }
    found
}

/// The identifiers of a line of Rust, string literals left out.
fn identifiers(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in code.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        in_string = c == '"';
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Firmware

/// Whether a crate root declares `no_std`, unconditionally or under a `cfg_attr`.
fn declares_no_std(src: &str) -> bool {
    src.lines().map(str::trim).any(|l| l.starts_with("#![") && identifiers(l).iter().any(|i| i == "no_std"))
}

/// Firmware's own root must be `#![no_std]` outright, and bring in `std` only for tests.
fn firmware_root_findings(file: &Path, src: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let lines: Vec<&str> = src.lines().collect();
    if !lines.iter().any(|l| l.trim() == "#![no_std]") {
        findings.push(Finding::new(file, 1, "firmware's crate root must say `#![no_std]` outright"));
    }
    for (i, line) in lines.iter().enumerate() {
        if line.trim().starts_with("extern crate std") {
            let guarded = i > 0 && lines[i - 1].trim() == "#[cfg(test)]";
            if !guarded {
                findings.push(Finding::new(file, i + 1, "`extern crate std` outside `#[cfg(test)]`: firmware runs without std"));
            }
        }
    }
    findings
}

/// Every crate firmware links (normal dependencies, transitively) must declare `no_std`.
/// Reads the full `cargo metadata` resolve; a crate is named with the chain that brings it.
fn firmware_closure_findings(metadata: &Value, firmware: &Manifest) -> Vec<Finding> {
    let packages: BTreeMap<&str, &Value> =
        metadata["packages"].as_array().expect("packages").iter().map(|p| (p["id"].as_str().expect("id"), p)).collect();
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let Some(start) = packages.iter().find(|(_, p)| p["name"] == FIRMWARE && p["manifest_path"] == firmware.path.to_str().unwrap_or("")) else {
        return vec![Finding::new(&firmware.path, 1, "firmware is missing from cargo metadata's resolve")];
    };
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<(&str, Vec<String>)> = vec![(start.0, vec![FIRMWARE.to_owned()])];
    while let Some((id, chain)) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"].as_array().expect("dep_kinds").iter().any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().expect("pkg");
            if !normal || !seen.insert(pkg) {
                continue;
            }
            let package = packages[pkg];
            let name = package["name"].as_str().expect("name").to_owned();
            let mut next = chain.clone();
            next.push(name.clone());
            let root = package["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .find(|t| strings(&t["kind"]).iter().any(|k| k == "lib" || k == "rlib"))
                .and_then(|t| t["src_path"].as_str());
            let no_std = root.and_then(|r| std::fs::read_to_string(r).ok()).is_some_and(|src| declares_no_std(&src));
            if !no_std {
                let direct = &next[1];
                let line = firmware.deps.iter().find(|d| &d.name == direct).map_or(1, |d| firmware.line_of(d));
                findings.push(Finding::new(
                    &firmware.path,
                    line,
                    format!("{} needs std (its crate root declares no `no_std`): firmware must link only no_std crates", next.join(" -> ")),
                ));
            }
            todo.push((pkg, next));
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------
// Features

/// `test-utils` features stay out of product builds: enabled only in dev-dependencies or by
/// test-only crates, and never reachable from a crate's `default` feature.
fn test_utils_findings(manifest: &Manifest) -> Vec<Finding> {
    let mut findings = Vec::new();
    if TEST_ONLY.contains(&manifest.name.as_str()) {
        return findings;
    }
    for dep in &manifest.deps {
        if dep.kind != Kind::Dev && dep.features.iter().any(|f| f == "test-utils") {
            findings.push(Finding::new(
                &manifest.path,
                manifest.line_of(dep),
                format!("`{}` enables `{}`'s test-utils outside dev-dependencies: test tools would be built into the product", manifest.name, dep.name),
            ));
        }
    }
    // Walk the default feature's closure within this manifest.
    let mut todo = vec!["default".to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(feature) = todo.pop() {
        if !seen.insert(feature.clone()) {
            continue;
        }
        for enabled in manifest.features.get(&feature).into_iter().flatten() {
            let reaches = enabled == "test-utils" || enabled.ends_with("/test-utils");
            if reaches {
                findings.push(Finding::new(
                    &manifest.path,
                    manifest.feature_line(&feature),
                    format!("feature `{feature}` (reached from `default`) enables `{enabled}`: test tools must not be on by default"),
                ));
            } else if manifest.features.contains_key(enabled.as_str()) {
                todo.push(enabled.clone());
            }
        }
    }
    findings
}

// ---------------------------------------------------------------------------------------
// Sources

/// A file must open with a `//!` line that says something.
fn module_doc_finding(file: &Path, src: &str) -> Option<Finding> {
    let (index, first) = src.lines().enumerate().find(|(_, l)| !l.trim().is_empty()).unwrap_or((0, ""));
    match first.trim().strip_prefix("//!") {
        Some(text) if !text.trim().is_empty() => None,
        Some(_) => Some(Finding::new(file, index + 1, "the module doc's first line is empty: start with the sentence saying what the module is for")),
        None => Some(Finding::new(file, index + 1, "the module does not start with a `//!` doc saying what it is for")),
    }
}

/// `#[ignore]` attributes: plain, with a reason, or inside a `cfg_attr`.
fn ignore_attribute_lines(file: &Path, src: &str) -> Vec<Finding> {
    src.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            if !t.starts_with("#[") {
                return false;
            }
            // `#[ignore]` itself, or a `cfg_attr` that yields it; `ignore` as an argument of
            // another attribute (`#[schema(ignore)]`) skips a field, not a test.
            let names = identifiers(t);
            match names.first().map(String::as_str) {
                Some("ignore") => true,
                Some("cfg_attr") => names.iter().any(|i| i == "ignore"),
                _ => false,
            }
        })
        .map(|(i, _)| {
            Finding::new(file, i + 1, "an ignored test never runs and so cannot fail: make it run, or delete it if it is dead")
        })
        .collect()
}

/// Banned crates named in a manifest's text, as a key or as a renamed package.
fn banned_crate_lines(file: &Path, text: &str) -> Vec<Finding> {
    manifest_dep_lines(text)
        .into_iter()
        .filter_map(|d| {
            let package = d.package.clone().unwrap_or_else(|| d.key.clone());
            BANNED.iter().find(|(name, _)| *name == package).map(|(name, why)| Finding::new(file, d.line, format!("`{name}`: {why}")))
        })
        .collect()
}

/// Files under `dir` (recursively) whose name ends with `suffix`, skipping build output and
/// hidden directories.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                // Cargo marks every target directory, whatever its name, with CACHEDIR.TAG.
                let build_output = name == "target" || path.join("CACHEDIR.TAG").exists();
                if !build_output && !name.starts_with('.') {
                    todo.push(path);
                }
            } else if name.ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn src_dir(manifest: &Manifest) -> PathBuf {
    manifest.path.parent().expect("manifest in a directory").join("src")
}

// ---------------------------------------------------------------------------------------
// The checks on the workspace

#[test]
fn crate_arrows_match_architecture_md() {
    let doc = workspace_root().join("ARCHITECTURE.md");
    let arrows = match parse_arrows(&doc, &read(&doc)) {
        Ok(arrows) => arrows,
        Err(findings) => return assert_clean("ARCHITECTURE.md's crate arrows", findings),
    };
    let manifests = workspace_manifests();
    let mut random_sources = BTreeMap::new();
    for manifest in manifests.iter().filter(|m| SANS_IO.contains(&m.name.as_str())) {
        let uses: Vec<Finding> = files_under(&src_dir(manifest), ".rs").iter().flat_map(|f| os_randomness_uses(f, &read(f))).collect();
        random_sources.insert(manifest.name.clone(), uses);
    }
    assert_clean("crate arrows", check_arrows(&doc, &arrows, &manifests, &random_sources));
}

#[test]
fn firmware_links_only_no_std_crates() {
    let manifests = workspace_manifests();
    let firmware = manifests.iter().find(|m| m.name == FIRMWARE).expect("the workspace has the firmware crate");
    let root = src_dir(firmware).join("lib.rs");
    let mut findings = firmware_root_findings(&root, &read(&root));
    findings.extend(firmware_closure_findings(&cargo_metadata(&[]), firmware));
    assert_clean("firmware is no_std", findings);
}

#[test]
fn test_utils_stay_out_of_product_builds() {
    let findings = workspace_manifests().iter().flat_map(test_utils_findings).collect();
    assert_clean("test-utils features", findings);
}

#[test]
fn every_module_starts_with_a_doc() {
    let findings = workspace_manifests()
        .iter()
        .flat_map(|m| files_under(&src_dir(m), ".rs"))
        .filter_map(|f| module_doc_finding(&f, &read(&f)))
        .collect();
    assert_clean("module docs", findings);
}

#[test]
fn no_test_is_ignored() {
    let files = files_under(&workspace_root(), ".rs");
    assert!(files.len() > 100, "the walk found only {} Rust files: is the workspace root right?", files.len());
    let findings = files.iter().flat_map(|f| ignore_attribute_lines(f, &read(f))).collect();
    assert_clean("#[ignore]", findings);
}

#[test]
fn no_manifest_names_a_banned_crate() {
    let manifests = files_under(&workspace_root(), "Cargo.toml");
    assert!(manifests.len() > 5, "the walk found only {} manifests", manifests.len());
    let findings = manifests.iter().flat_map(|f| banned_crate_lines(f, &read(f))).collect();
    assert_clean("banned crates", findings);
}

// ---------------------------------------------------------------------------------------
// Each checker, on small inputs that break its rule (and some that must pass).

mod checkers {
    use super::*;

    fn doc() -> PathBuf {
        PathBuf::from("ARCHITECTURE.md")
    }

    fn dep(name: &str, kind: Kind, internal: bool) -> Dep {
        Dep { name: name.to_owned(), key: name.to_owned(), kind, default_features: true, features: Vec::new(), internal }
    }

    fn manifest(name: &str, text: &str, deps: Vec<Dep>) -> Manifest {
        Manifest { name: name.to_owned(), path: PathBuf::from(format!("{name}/Cargo.toml")), text: text.to_owned(), deps, features: BTreeMap::new() }
    }

    fn arrows(block: &str) -> Vec<Arrow> {
        parse_arrows(&doc(), &format!("# Architecture\n\n{ARROWS_HEADING}\n\n```text\n{block}```\n")).expect("parses")
    }

    fn lines(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(ToString::to_string).collect()
    }

    /// A small workspace that keeps every rule.
    fn clean_workspace() -> Vec<Manifest> {
        vec![
            manifest("sync-protocol", "[dependencies]\nserde = \"1\"\n", vec![dep("serde", Kind::Normal, false)]),
            manifest("sip-core", "[dependencies]\nrand = { version = \"0.9\", default-features = false }\n", vec![Dep {
                default_features: false,
                features: vec!["std_rng".to_owned()],
                ..dep("rand", Kind::Normal, false)
            }]),
            manifest("hardware", "[dependencies]\nsip-core.workspace = true\n", vec![dep("sip-core", Kind::Normal, true)]),
            manifest(
                "hq-hub",
                "[dependencies]\nsync-protocol.workspace = true\n\n[dev-dependencies]\nsip-core.workspace = true\n",
                vec![dep("sync-protocol", Kind::Normal, true), dep("sip-core", Kind::Dev, true)],
            ),
            manifest("firmware", "[dependencies]\nembedded-graphics = \"0.8\"\n", vec![dep("embedded-graphics", Kind::Normal, false)]),
        ]
    }

    const CLEAN_ARROWS: &str = "# comment\nhardware -> sip-core\nhq-hub -> sync-protocol\nhq-hub -> sip-core (dev)\nfirmware -> embedded-graphics\n";

    fn check(arrows_block: &str, manifests: &[Manifest]) -> Vec<String> {
        lines(&check_arrows(&doc(), &arrows(arrows_block), manifests, &BTreeMap::new()))
    }

    #[test]
    fn checker_arrows_pass_a_clean_workspace() {
        assert_eq!(check(CLEAN_ARROWS, &clean_workspace()), Vec::<String>::new());
    }

    #[test]
    fn checker_arrows_parse_tags_and_reject_nonsense() {
        let parsed = arrows("a -> b\nc -> d (dev)   # why\ne -> OS randomness (pending)\n");
        assert_eq!(parsed.iter().map(|a| (a.from.as_str(), a.to.as_str(), a.tag, a.line)).collect::<Vec<_>>(), vec![
            ("a", "b", Tag::Any, 6),
            ("c", "d", Tag::Dev, 7),
            ("e", OS_RANDOMNESS, Tag::Pending, 8)
        ]);
        let bad = parse_arrows(&doc(), &format!("{ARROWS_HEADING}\n```\na => b\nc -> d (maybe)\ne -> f (pending)\n```\n")).unwrap_err();
        assert_eq!(lines(&bad), vec![
            "ARCHITECTURE.md:3: `a => b` is not an arrow: write `crate -> dependency`, optionally followed by `(dev)` or `(pending)`",
            "ARCHITECTURE.md:4: unknown tag `(maybe)`: the tags are `(dev)` and `(pending)`",
            "ARCHITECTURE.md:5: only `crate -> OS randomness (pending)` may be pending",
        ]);
        assert!(parse_arrows(&doc(), "# Architecture\n").is_err());
        assert!(parse_arrows(&doc(), &format!("{ARROWS_HEADING}\n```\na -> b\n")).is_err());
    }

    #[test]
    fn checker_arrows_reject_the_forbidden_ones_in_manifests_and_in_the_document() {
        let mut ws = clean_workspace();
        ws.push(manifest("appliance", "[package]\nname = \"appliance\"\n", vec![]));
        ws.push(manifest("dialer", "", vec![]));
        ws.push(manifest("sync-link", "", vec![]));
        ws[3] = manifest(
            "hq-hub",
            "[dependencies]\nsync-protocol.workspace = true\nhardware = { path = \"../hardware\" }\n\n[dev-dependencies]\nsip-core.workspace = true\nappliance.workspace = true\n",
            vec![
                dep("sync-protocol", Kind::Normal, true),
                dep("hardware", Kind::Normal, true),
                dep("sip-core", Kind::Dev, true),
                dep("appliance", Kind::Dev, true),
            ],
        );
        ws[2] = manifest("hardware", "[dependencies]\nsip-core.workspace = true\ndialer.workspace = true\n", vec![
            dep("sip-core", Kind::Normal, true),
            dep("dialer", Kind::Normal, true),
        ]);
        ws[0] = manifest("sync-protocol", "[dependencies]\nsync-link.workspace = true\n", vec![dep("sync-link", Kind::Normal, true)]);
        let block = format!("{CLEAN_ARROWS}hq-hub -> hardware\nappliance -> hq-hub\n");
        let found = check(&block, &ws);
        let expect = [
            "ARCHITECTURE.md:11: `hq-hub -> hardware` is forbidden: the hub places no calls",
            "ARCHITECTURE.md:12: `appliance -> hq-hub` is forbidden: the box reaches HQ",
            "sync-protocol/Cargo.toml:2: `sync-protocol -> sync-link` is forbidden: a sans-IO crate",
            "hardware/Cargo.toml:3: `hardware -> dialer` is forbidden: hardware knows nothing above",
            "hq-hub/Cargo.toml:3: `hq-hub -> hardware` is forbidden",
            "hq-hub/Cargo.toml:7: `hq-hub -> appliance` is forbidden",
        ];
        for e in expect {
            assert!(found.iter().any(|f| f.starts_with(e)), "expected `{e}…` among {found:#?}");
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }

    #[test]
    fn checker_arrows_catch_undeclared_stale_and_dev_only_arrows() {
        let mut ws = clean_workspace();
        // hq-hub uses sip-core in normal code though the document allows it for tests only,
        // and hardware's arrow to sip-core is gone from its manifest.
        ws[3] = manifest("hq-hub", "[dependencies]\nsync-protocol.workspace = true\nsip-core.workspace = true\n", vec![
            dep("sync-protocol", Kind::Normal, true),
            dep("sip-core", Kind::Normal, true),
        ]);
        ws[2] = manifest("hardware", "[dependencies]\n", vec![]);
        // firmware gained a dependency the document does not list.
        ws[4] = manifest("firmware", "[dependencies]\nembedded-graphics = \"0.8\"\nheapless = \"0.8\"\n", vec![
            dep("embedded-graphics", Kind::Normal, false),
            dep("heapless", Kind::Normal, false),
        ]);
        assert_eq!(check(CLEAN_ARROWS, &ws), vec![
            "ARCHITECTURE.md:7: stale arrow `hardware -> sip-core`: hardware/Cargo.toml has no such dependency; delete the line",
            "ARCHITECTURE.md:9: stale arrow `hq-hub -> sip-core`: hq-hub/Cargo.toml has no such dependency; delete the line",
            "hq-hub/Cargo.toml:3: `hq-hub -> sip-core` (dependencies): ARCHITECTURE.md allows this arrow for tests only; move it to dev-dependencies or change the arrow",
            "firmware/Cargo.toml:3: firmware's dependency `heapless` is not listed in ARCHITECTURE.md's crate arrows; list it there once it is known to be no_std",
        ]);
        // A document arrow for a crate that does not exist, or to an external crate
        // outside firmware.
        let found = check(&format!("{CLEAN_ARROWS}ghost -> sip-core\nhardware -> tokio\n"), &clean_workspace());
        assert_eq!(found, vec![
            "ARCHITECTURE.md:11: `ghost` is not a workspace crate",
            "ARCHITECTURE.md:12: `tokio` is not a workspace crate; only firmware's external dependencies are listed",
        ]);
    }

    #[test]
    fn checker_arrows_hold_sans_io_crates_to_no_io_and_no_os_randomness() {
        let mut ws = clean_workspace();
        ws[0] = manifest(
            "sync-protocol",
            "[dependencies]\nserde = \"1\"\n\n[dev-dependencies]\nio = { package = \"tokio\", version = \"1\" }\n",
            vec![dep("serde", Kind::Normal, false), Dep { key: "io".to_owned(), ..dep("tokio", Kind::Dev, false) }],
        );
        ws[1] = manifest("sip-core", "[dependencies]\nrand.workspace = true\n\n[dependencies.rand_core]\nfeatures = [\"os_rng\"]\n", vec![
            dep("rand", Kind::Normal, false),
            Dep { features: vec!["os_rng".to_owned()], default_features: false, ..dep("rand_core", Kind::Normal, false) },
        ]);
        let found = check(CLEAN_ARROWS, &ws);
        assert_eq!(found, vec![
            "sync-protocol/Cargo.toml:5: sync-protocol: `tokio` does I/O or reads OS entropy; a sans-IO crate takes time and bytes as arguments",
            "sip-core/Cargo.toml:2: sip-core: `rand` with default features brings `rand::rng()` and the OS generator; use `default-features = false` (with `std_rng` or `small_rng`) and seed or inject the generator",
            "sip-core/Cargo.toml:4: sip-core: `rand_core` with feature `os_rng` draws on OS randomness; take a seeded or injected generator",
        ]);

        // Sources: a pending line tolerates them, and is stale once they are gone.
        let src = "//! Doc.\nuse rand::Rng as _;\nfn f() -> u8 {\n    // rand::rng() is not used here\n    let mut rng = rand::rng();\n    rng.random()\n}\n";
        let uses = os_randomness_uses(Path::new("sip-core/src/t.rs"), src);
        assert_eq!(lines(&uses), vec!["sip-core/src/t.rs:5: `rand::rng` draws on OS randomness; take a seeded or injected generator"]);
        let sources = BTreeMap::from([("sip-core".to_owned(), uses)]);
        let without = lines(&check_arrows(&doc(), &arrows(CLEAN_ARROWS), &clean_workspace(), &sources));
        assert_eq!(without, vec!["sip-core/src/t.rs:5: `rand::rng` draws on OS randomness; take a seeded or injected generator"]);
        let pending = format!("{CLEAN_ARROWS}sip-core -> OS randomness (pending)\n");
        assert_eq!(lines(&check_arrows(&doc(), &arrows(&pending), &clean_workspace(), &sources)), Vec::<String>::new());
        assert_eq!(lines(&check_arrows(&doc(), &arrows(&pending), &clean_workspace(), &BTreeMap::new())), vec![
            "ARCHITECTURE.md:11: stale pending breach: sip-core no longer uses OS randomness; delete this line"
        ]);
    }

    #[test]
    fn checker_os_randomness_finds_each_entry_point() {
        let file = Path::new("x.rs");
        let found = |src: &str| os_randomness_uses(file, src).iter().map(|f| f.line).collect::<Vec<_>>();
        assert_eq!(found("let a = rand::thread_rng();\nlet b: u64 = rand::random();\nlet c = OsRng;\nlet d = StdRng::from_os_rng();\nuse rand::{Rng, rng};\nlet e = SmallRng::from_entropy();\n"), vec![
            1, 2, 3, 4, 5, 6
        ]);
        assert_eq!(found("let rng = StdRng::seed_from_u64(7);\nlet x: f64 = rng.random();\n// thread_rng in a comment\nlet s = \"OsRng\";\n"), Vec::<usize>::new());
    }

    #[test]
    fn checker_firmware_root_must_be_no_std() {
        let file = Path::new("firmware/src/lib.rs");
        assert_eq!(firmware_root_findings(file, "//! Panel.\n#![no_std]\n#[cfg(test)]\nextern crate std;\n"), vec![]);
        assert_eq!(lines(&firmware_root_findings(file, "//! Panel.\n#![cfg_attr(not(test), no_std)]\nextern crate std;\n")), vec![
            "firmware/src/lib.rs:1: firmware's crate root must say `#![no_std]` outright",
            "firmware/src/lib.rs:3: `extern crate std` outside `#[cfg(test)]`: firmware runs without std",
        ]);
        assert!(declares_no_std("//! x\n#![cfg_attr(not(feature = \"std\"), no_std)]\n"));
        assert!(declares_no_std("#![no_std]\n"));
        assert!(!declares_no_std("//! Works without no_std? No.\nuse std::io;\n"));
    }

    #[test]
    fn checker_firmware_closure_names_a_std_crate_and_its_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, src: &str| {
            let path = dir.path().join(format!("{name}.rs"));
            std::fs::write(&path, src).expect("write");
            path.to_str().expect("utf-8").to_owned()
        };
        let (fw, eg, byteorder, tokio) =
            (write("fw", "#![no_std]\n"), write("eg", "#![no_std]\n"), write("bo", "#![cfg_attr(not(feature = \"std\"), no_std)]\n"), write("tk", "//! Tokio.\n"));
        let package = |id: &str, name: &str, src: &str, manifest: &str| {
            serde_json::json!({"id": id, "name": name, "manifest_path": manifest, "targets": [{"kind": ["lib"], "src_path": src}]})
        };
        let normal = |pkg: &str| serde_json::json!({"pkg": pkg, "dep_kinds": [{"kind": null}]});
        let dev = |pkg: &str| serde_json::json!({"pkg": pkg, "dep_kinds": [{"kind": "dev"}]});
        let metadata = serde_json::json!({
            "packages": [
                package("fw", "firmware", &fw, "firmware/Cargo.toml"),
                package("eg", "embedded-graphics", &eg, "x"),
                package("bo", "byteorder", &byteorder, "x"),
                package("tk", "tokio", &tokio, "x"),
                package("png", "png", &tokio, "x"),
            ],
            "resolve": {"nodes": [
                {"id": "fw", "deps": [normal("eg"), dev("png")]},
                {"id": "eg", "deps": [normal("bo"), normal("tk")]},
                {"id": "bo", "deps": []},
                {"id": "tk", "deps": []},
                {"id": "png", "deps": []},
            ]}
        });
        let firmware = manifest("firmware", "[dependencies]\nembedded-graphics = \"0.8\"\n\n[dev-dependencies]\npng = \"0.18\"\n", vec![
            dep("embedded-graphics", Kind::Normal, false),
            dep("png", Kind::Dev, false),
        ]);
        assert_eq!(lines(&firmware_closure_findings(&metadata, &firmware)), vec![
            "firmware/Cargo.toml:2: firmware -> embedded-graphics -> tokio needs std (its crate root declares no `no_std`): firmware must link only no_std crates"
        ]);
    }

    #[test]
    fn checker_test_utils_stay_in_dev_dependencies_and_off_by_default() {
        let text = "[features]\ndefault = [\"extra\"]\nextra = [\"sync-link/test-utils\"]\n\n[dependencies]\nsync-link = { workspace = true, features = [\"test-utils\"] }\n\n[dev-dependencies]\nsync-link = { workspace = true, features = [\"test-utils\"] }\n";
        let with = |kind| Dep { features: vec!["test-utils".to_owned()], ..dep("sync-link", kind, true) };
        let mut m = manifest("appliance", text, vec![with(Kind::Normal), with(Kind::Dev)]);
        m.features = BTreeMap::from([
            ("default".to_owned(), vec!["extra".to_owned()]),
            ("extra".to_owned(), vec!["sync-link/test-utils".to_owned()]),
        ]);
        assert_eq!(lines(&test_utils_findings(&m)), vec![
            "appliance/Cargo.toml:6: `appliance` enables `sync-link`'s test-utils outside dev-dependencies: test tools would be built into the product",
            "appliance/Cargo.toml:3: feature `extra` (reached from `default`) enables `sync-link/test-utils`: test tools must not be on by default",
        ]);
        m.name = "tests".to_owned();
        assert_eq!(test_utils_findings(&m), vec![]);
    }

    #[test]
    fn checker_module_doc_wants_a_sentence_first() {
        let file = Path::new("a/src/m.rs");
        assert_eq!(module_doc_finding(file, "//! The module.\nuse std::fmt;\n"), None);
        assert_eq!(module_doc_finding(file, "\n//! After a blank line.\n"), None);
        assert_eq!(lines(&[module_doc_finding(file, "use std::fmt;\n//! Late.\n").expect("finding")]), vec![
            "a/src/m.rs:1: the module does not start with a `//!` doc saying what it is for"
        ]);
        assert_eq!(lines(&[module_doc_finding(file, "\n//!\n//! Text.\n").expect("finding")]), vec![
            "a/src/m.rs:2: the module doc's first line is empty: start with the sentence saying what the module is for"
        ]);
        assert!(module_doc_finding(file, "/// An item doc is not a module doc.\nfn f() {}\n").is_some());
        assert!(module_doc_finding(file, "").is_some());
    }

    #[test]
    fn checker_ignore_finds_every_form() {
        let file = Path::new("t.rs");
        let attr = |inner: &str| format!("#[{inner}]");
        let src = [
            attr("test"),
            attr("ignore"),
            "fn a() {}".to_owned(),
            format!("    {}", attr("ignore = \"needs a modem\"")),
            attr("cfg_attr(miri, ignore)"),
            attr("arg(ignore_case = true)"),
            attr("doc = \"ignore me\""),
            attr("schema(ignore)"),
            "// #[ignore] in a comment is not an attribute".to_owned(),
        ]
        .join("\n");
        assert_eq!(ignore_attribute_lines(file, &src).iter().map(|f| f.line).collect::<Vec<_>>(), vec![2, 4, 5]);
    }

    #[test]
    fn checker_banned_crates_in_any_table_and_under_any_name() {
        let file = Path::new("x/Cargo.toml");
        let text = concat!(
            "[package]\nname = \"bincode-free\"\n\n",
            "[dependencies]\nserde = \"1\" # not bincode\nbincode = \"1\"\n",
            "codec = { package = \"sip-codec\", version = \"0.1\" }\n\n",
            "[target.'cfg(unix)'.dev-dependencies]\n\"bincode\" = \"2\"\n\n",
            "[workspace.dependencies]\nsip-codec = \"0.1\"\n\n",
            "[build-dependencies.wire]\nversion = \"2\"\npackage = \"bincode\"\n",
        );
        assert_eq!(banned_crate_lines(file, text).iter().map(|f| f.line).collect::<Vec<_>>(), vec![6, 7, 10, 13, 15]);
        assert_eq!(banned_crate_lines(file, "[dependencies]\npostcard = \"1\"\n"), vec![]);
    }

    #[test]
    fn checker_manifest_lines_place_each_dependency() {
        let text = "[dependencies]\na = \"1\"\nb.workspace = true\n\n[dev-dependencies]\na = { version = \"1\" }\n\n[dependencies.c]\nversion = \"1\"\n";
        let m = manifest("m", text, vec![]);
        assert_eq!(m.line_of(&dep("a", Kind::Normal, false)), 2);
        assert_eq!(m.line_of(&dep("b", Kind::Normal, false)), 3);
        assert_eq!(m.line_of(&dep("a", Kind::Dev, false)), 6);
        assert_eq!(m.line_of(&dep("c", Kind::Normal, false)), 8);
    }
}
