//! Tidy checks on the source tree (rust-analyzer's habit): rules a compiler cannot enforce.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, at any depth, sorted (so offences are listed in a stable
/// order).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading `{}`: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Design invariant 1: `src/reconcile/` is pure. No async runtime, no HTTP, no file system,
/// no sockets, no clock, no environment: data in, plan out. Every subfolder counts too
/// (`mapping/` and whatever follows).
#[test]
fn reconcile_core_does_no_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/reconcile");
    let forbidden = [
        "tokio",
        "reqwest",
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "Utc::now",
        "Local::now",
        "SystemTime",
        "Instant::now",
        "async fn",
        ".await",
    ];
    let files = rust_files(&dir);
    // Eight files today (diff, identity, mapping, mapping_tests, mod, plan, planner, record):
    // fewer means the walk lost some, and the check would pass on nothing.
    assert!(
        files.len() >= 8,
        "found only {} sources under {}: {files:?}",
        files.len(),
        dir.display()
    );
    let mut offences = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in forbidden {
                if line.contains(word) {
                    offences.push(format!(
                        "{}:{}: `{word}`: {}",
                        path.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the pure core must do no I/O:\n{}",
        offences.join("\n")
    );
}

/// Every module says what it owns in a `//!` comment on its first line.
#[test]
fn every_module_has_a_doc_comment() {
    let files = rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        files.len() >= 20,
        "found only {} sources: {files:?}",
        files.len()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` doc comment: {missing:?}"
    );
}

/// The walk the checks above rely on reaches files in nested folders and only `.rs` files.
#[test]
fn the_walk_reaches_every_depth() {
    let root = tempfile::tempdir().unwrap();
    let deep = root.path().join("mapping/eval");
    std::fs::create_dir_all(&deep).unwrap();
    for file in [
        "top.rs",
        "mapping/mod.rs",
        "mapping/eval/path.rs",
        "mapping/notes.md",
    ] {
        std::fs::write(root.path().join(file), "//! x\n").unwrap();
    }
    let found: Vec<String> = rust_files(root.path())
        .iter()
        .map(|p| {
            p.strip_prefix(root.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(found, ["mapping/eval/path.rs", "mapping/mod.rs", "top.rs"]);
}
