//! Build script: puts the git commit the binary is built from into `--version` through the
//! `ACME_CLIENT_VERSION` variable, as `0.1.0 (1a2b3c4)`, or `0.1.0 (1a2b3c4-dirty)` when the files
//! the binary is built from (src/, build.rs, Cargo.toml, Cargo.lock) differ from that commit.
//! Outside a git checkout of this package, or without git, it is the package version alone: this
//! script never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files whose changes make the binary differ from its commit; also watched for reruns.
const SOURCES: &[&str] = &["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let full = match commit(&dir) {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=ACME_CLIENT_VERSION={full}");
    // Without this, a build outside git would rerun on any change in the package.
    println!("cargo:rerun-if-changed=build.rs");
}

/// The short hash of HEAD, with `-dirty` when a source differs from it; None when `dir` is not
/// the top of a git work tree (a crate unpacked inside some other repository, say).
fn commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    watch(dir);
    let hash = git(dir, &["rev-parse", "--short", "HEAD"])?;
    // --no-optional-locks: a status run from a build must not rewrite the index.
    let mut status = vec![
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
    ];
    status.extend_from_slice(SOURCES);
    let dirty = git(dir, &status).is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// Reruns this script when HEAD moves (checkout, commit, reset: HEAD, its reflog, the branch's
/// ref, loose or packed) or a source changes. `--git-path` finds them in a linked worktree too.
/// Only existing files are named: Cargo reruns every time for a missing one.
fn watch(dir: &Path) {
    let mut paths: Vec<PathBuf> = SOURCES.iter().map(|s| dir.join(s)).collect();
    let mut refs = vec!["HEAD".to_owned(), "logs/HEAD".into(), "packed-refs".into()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        refs.push(branch);
    }
    for name in refs {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            paths.push(dir.join(path));
        }
    }
    for path in paths.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Runs git in `dir`; its trimmed stdout, or None if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}
