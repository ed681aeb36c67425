//! Build script: puts the git commit into `--version` and the metrics' `build_info`.
//!
//! `git rev-parse --short HEAD` when the source is a git checkout with git installed; a
//! tarball or a container build without `.git` gets the crate version alone. It never fails
//! the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = env!("CARGO_PKG_VERSION");
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            println!("cargo:rustc-env=CMDB_RECONCILE_GIT_COMMIT={commit}");
            println!("cargo:rustc-env=CMDB_RECONCILE_VERSION={version} ({commit})");
            // Build again when HEAD moves: HEAD itself (a checkout) and the branch it names
            // (a commit). Only paths that exist: a missing one would rerun every build.
            let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(git(&["rev-parse", "--git-path", &branch]));
            }
            watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
            for path in watched.into_iter().flatten() {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
        None => println!("cargo:rustc-env=CMDB_RECONCILE_VERSION={version}"),
    }
}
