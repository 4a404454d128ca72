//! The workspace's layout, read from its sources: no module imports another that
//! imports it back, no shared crate depends on a service, and no source file grows
//! past what one reader takes in.
//!
//! One file: reading the module tree and judging it are one check.
//!
//! Modules and their imports are read from the text (no compiler): each `.rs` file
//! under a crate's `src/` is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`), and it
//! imports every module that a `crate::`, `super::` or `self::` path in it names, or a
//! path starting with one of its own child modules (in `use` trees too: `use
//! super::{a, b::c}` imports `a` and `b::c`). A path names the longest module prefix
//! it has; an item of a module (`crate::Event` in `lib.rs`) is an import of that
//! module. Comments and inline test modules are left out.
//!
//! "Imports it back" is checked at every level of the module tree: among a module and
//! its children, each child standing for everything below it, no set of them imports
//! in a circle. So `a` importing `b::x` and `b::y` importing `a` is a cycle, and so is
//! a parent importing its child while the child imports an item of the parent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace's crates: each directory under `crates/`, `services/` and `tests/`
/// with a `src/`.
fn crate_sources() -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for group in ["crates", "services", "tests"] {
        let Ok(entries) = std::fs::read_dir(workspace().join(group)) else {
            continue;
        };
        for entry in entries {
            let src = entry.unwrap().path().join("src");
            if src.is_dir() {
                sources.push(src);
            }
        }
    }
    sources.sort();
    sources
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

type Module = Vec<String>;

/// The module a file of `src` is, or `None` for a binary's root (`main.rs`,
/// `bin/*.rs`), which is a crate of its own.
fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || parts == ["main"] {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    Some(parts)
}

/// The code of a file without comments, string and character literals and inline test
/// modules.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
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
            // A character literal (`'"'`, `'\''`), not a lifetime: skipped, so a quote in
            // it does not open a string.
            '\'' if chars.peek() == Some(&'\\') => {
                chars.next();
                chars.next();
                chars.by_ref().find(|c| *c == '\'');
            }
            '\'' if chars.clone().nth(1) == Some('\'') => {
                chars.nth(1);
            }
            '"' => {
                // A string: skipped whole (escapes included); raw strings hold no `"#`
                // that matters here.
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
            _ => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path of two or more segments in `code`, with `use` trees expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    // `use` trees: `use a::{b, c::{d, e}};`
    for statement in code.split(';') {
        let statement = statement.trim();
        let tree = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
            .or_else(|| statement.strip_prefix("pub(super) use "))
            .or_else(|| statement.rsplit_once("\nuse ").map(|(_, t)| t))
            .or_else(|| statement.strip_prefix("use "));
        if let Some(tree) = tree {
            expand(&mut Vec::new(), tree, &mut found);
        }
    }
    // Paths in code: `a::b::c`.
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut segments = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segments.push(chars[start..j].iter().collect::<String>());
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && is_ident(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segments.len() > 1 {
                found.push(segments);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// Expands a `use` tree below `prefix` into its paths.
fn expand(prefix: &mut Vec<String>, tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::").trim();
        let depth = prefix.len();
        prefix.extend(
            head.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut level = 0;
        let mut start = 0;
        for (at, c) in inner.char_indices() {
            match c {
                '{' => level += 1,
                '}' => level -= 1,
                ',' if level == 0 => {
                    expand(prefix, &inner[start..at], out);
                    start = at + 1;
                }
                _ => {}
            }
        }
        expand(prefix, &inner[start..], out);
        prefix.truncate(depth);
    } else {
        let path = tree.split(" as ").next().unwrap_or_default().trim();
        if path.is_empty() {
            return;
        }
        let mut full = prefix.clone();
        full.extend(path.split("::").map(|s| s.trim().to_owned()));
        if full.last().is_some_and(|s| s == "self" || s == "*") {
            full.pop();
        }
        out.push(full);
    }
}

/// The module `path`, written in `module`, names, if any of this crate's.
fn resolve(modules: &BTreeSet<Module>, module: &Module, path: &[String]) -> Option<Module> {
    let (mut base, rest): (Module, &[String]) = match path[0].as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (module.clone(), &path[1..]),
        "super" => {
            let mut base = module.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        child => {
            let mut base = module.clone();
            base.push(child.to_owned());
            if !modules.contains(&base) {
                return None;
            }
            base.pop();
            (base, path)
        }
    };
    let mut named = base.clone();
    for segment in rest {
        base.push(segment.clone());
        if modules.contains(&base) {
            named = base.clone();
        } else {
            break;
        }
    }
    Some(named)
}

/// Each module of the crate at `src` and the modules it imports.
fn imports(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let files: Vec<(Module, PathBuf)> = files
        .into_iter()
        .filter_map(|file| module_of(src, &file).map(|module| (module, file)))
        .collect();
    let modules: BTreeSet<Module> = files.iter().map(|(m, _)| m.clone()).collect();
    files
        .iter()
        .map(|(module, file)| {
            let code = code(&std::fs::read_to_string(file).unwrap());
            let imported = paths(&code)
                .iter()
                .filter_map(|path| resolve(&modules, module, path))
                .filter(|target| target != module)
                .collect();
            (module.clone(), imported)
        })
        .collect()
}

/// The circles among `nodes` under `edges` (strongly connected components of two or
/// more), by Tarjan's algorithm.
fn circles(nodes: &[String], edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeSet<(String, String)>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        found: Vec<Vec<String>>,
    }
    fn visit(state: &mut State<'_>, node: &str) {
        let index = state.index.len();
        state.index.insert(node.to_owned(), index);
        state.low.insert(node.to_owned(), index);
        state.stack.push(node.to_owned());
        let next: Vec<String> = state
            .edges
            .iter()
            .filter(|(from, _)| from == node)
            .map(|(_, to)| to.clone())
            .collect();
        for to in next {
            if !state.index.contains_key(&to) {
                visit(state, &to);
                let low = state.low[node].min(state.low[&to]);
                state.low.insert(node.to_owned(), low);
            } else if state.stack.contains(&to) {
                let low = state.low[node].min(state.index[&to]);
                state.low.insert(node.to_owned(), low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                let done = member == node;
                component.push(member);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in nodes {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The import circles of one crate, at every level of its module tree.
fn crate_circles(src: &Path) -> Vec<String> {
    let imports = imports(src);
    let mut parents: BTreeSet<Module> = BTreeSet::new();
    for module in imports.keys() {
        for depth in 0..module.len() {
            parents.insert(module[..depth].to_vec());
        }
    }
    let mut found = Vec::new();
    for parent in parents {
        // Below `parent`: the parent's own file, and each child for its whole subtree.
        let stand_for = |module: &Module| -> Option<String> {
            if !module.starts_with(&parent) {
                return None;
            }
            Some(match module.get(parent.len()) {
                None => "(itself)".to_owned(),
                Some(child) => child.clone(),
            })
        };
        let mut nodes = BTreeSet::new();
        let mut edges = BTreeSet::new();
        for (module, imported) in &imports {
            let Some(from) = stand_for(module) else {
                continue;
            };
            nodes.insert(from.clone());
            for target in imported {
                if let Some(to) = stand_for(target)
                    && to != from
                {
                    edges.insert((from.clone(), to));
                }
            }
        }
        let nodes: Vec<String> = nodes.into_iter().collect();
        for circle in circles(&nodes, &edges) {
            let at = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            found.push(format!(
                "{}: in {at}: {}",
                src.display(),
                circle.join(" <-> ")
            ));
        }
    }
    found
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let found: Vec<String> = crate_sources()
        .iter()
        .flat_map(|src| crate_circles(src))
        .collect();
    assert!(
        found.is_empty(),
        "modules importing each other:\n{}",
        found.join("\n")
    );
}

/// Every package's manifest directory and the directories of its path dependencies
/// (those used to build it or its tests' support: dev-dependencies excluded), from
/// `cargo metadata`.
fn path_dependencies() -> Vec<(PathBuf, Vec<(String, PathBuf)>)> {
    let output = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let metadata: serde_json::Value = serde_json::from_slice(&output).unwrap();
    let packages = metadata["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|package| {
            let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
            let dependencies = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dependency| dependency["kind"] != "dev")
                .filter_map(|dependency| {
                    let path = dependency["path"].as_str()?;
                    let name = dependency["name"].as_str().unwrap().to_owned();
                    Some((name, PathBuf::from(path)))
                })
                .collect();
            (manifest.parent().unwrap().to_path_buf(), dependencies)
        })
        .collect()
}

/// What `cargo tree` prints of the workspace's resolved packages and features, over
/// the dependency `edges` it names.
fn resolved(edges: &str) -> String {
    let args = [
        "tree",
        "--workspace",
        "--offline",
        "--prefix",
        "none",
        "--edges",
    ];
    String::from_utf8(cargo(&[&args[..], &[edges]].concat())).unwrap()
}

/// The standard output of cargo run with `args` in the workspace; it must succeed.
fn cargo(args: &[&str]) -> Vec<u8> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn no_service_binary_links_the_contract_checks() {
    // `contracts::reads` and `event_bus::envelope::decoding` are test code: only
    // dev-dependencies turn their `contract-tests` features on, so the images'
    // `--workspace --bins` build resolves without them.
    let feature = "feature \"contract-tests\"";
    let built = resolved("normal,build,features");
    let on: Vec<&str> = built.lines().filter(|l| l.contains(feature)).collect();
    assert!(
        on.is_empty(),
        "a dependency the binaries build with turns the contract checks on (`cargo tree \
         -e features -i contracts` says which):\n{}",
        on.join("\n")
    );
    // The check reads real features: with the tests' dependencies, they are on.
    assert!(resolved("normal,build,dev,features").contains(feature));
}

#[test]
fn no_shared_crate_depends_on_a_service() {
    let services = workspace().join("services").canonicalize().unwrap();
    let crates = workspace().join("crates").canonicalize().unwrap();
    let mut upward = Vec::new();
    for (dir, dependencies) in path_dependencies() {
        if !dir.starts_with(&crates) {
            continue;
        }
        for (name, path) in dependencies {
            if path.starts_with(&services) {
                upward.push(format!("{} -> {name}", dir.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "a crate under crates/ depends on a service (services build on crates, not the \
         reverse):\n{}",
        upward.join("\n")
    );
    // The check reads real dependencies: the kit is found under the bus.
    let bus = crates.join("event-bus");
    let (_, bus_dependencies) = path_dependencies()
        .into_iter()
        .find(|(dir, _)| *dir == bus)
        .expect("event-bus is a package");
    assert!(
        bus_dependencies
            .iter()
            .any(|(name, _)| name == "service-kit")
    );
}

#[test]
fn the_reader_finds_a_circle_through_a_use_tree_and_a_parents_item() {
    let dir = tempfile_dir();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub struct Item;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "mod x;\nuse crate::{b::f, Item};\npub struct Thing;\nfn g() { x::h() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/x.rs"),
        "// crate::b, in a comment\nuse super::Thing;\npub fn h() {}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub fn quote() -> char { '\"' }\npub fn f() { super::a::x::h() }\n",
    )
    .unwrap();
    let found = crate_circles(&src);
    // `a` imports `b` (in a use tree), `b` imports `a` (below it, after a quote in a
    // character literal): a circle in the
    // crate, whatever the root's own item `a` imports too. `a` imports its child `x`,
    // which imports `a`'s own item: a circle in `a`.
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].ends_with("in crate: b <-> a"), "{found:?}");
    assert!(found[1].ends_with("in a: x <-> (itself)"), "{found:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("layout-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Most lines a source file may have; past [`EXPLAINED`], its first lines say why it
/// is one file.
const MOST_LINES: usize = 600;
const EXPLAINED: usize = 400;

#[test]
fn no_source_file_is_too_long_to_read_and_a_long_one_says_why_it_is_one() {
    let mut files = Vec::new();
    for group in ["crates", "services", "tests"] {
        rust_files(&workspace().join(group), &mut files);
    }
    assert!(files.len() > 100, "the workspace's sources were not found");
    let mut wrong = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        let says_why = text
            .lines()
            .take(12)
            .any(|line| line.to_lowercase().contains("one file"));
        if lines > MOST_LINES {
            wrong.push(format!("{}: {lines} lines", file.display()));
        } else if lines > EXPLAINED && !says_why {
            wrong.push(format!(
                "{}: {lines} lines and no word in its first lines of why it is one file",
                file.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
