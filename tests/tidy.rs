//! Tidy checks on the source tree (rust-analyzer's habit): rules a compiler cannot enforce.

use std::path::Path;

/// Design invariant 1: `src/reconcile/` is pure. No async runtime, no HTTP, no file system,
/// no sockets, no clock, no environment: data in, plan out.
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
    let mut offences = Vec::new();
    let mut files = 0;
    // Walk sub-folders too: a module split into a folder (`mapping/`) stays under the rule.
    let mut stack = vec![dir.clone()];
    let mut paths = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                paths.push(path);
            }
        }
    }
    for path in paths {
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
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
    assert!(files >= 5, "no sources found under {}", dir.display());
    assert!(
        offences.is_empty(),
        "the pure core must do no I/O:\n{}",
        offences.join("\n")
    );
}

/// Every module says what it owns in a `//!` comment on its first line.
#[test]
fn every_module_has_a_doc_comment() {
    let mut missing = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a `//!` doc comment: {missing:?}"
    );
}
