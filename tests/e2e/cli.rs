//! The command line's conveniences, through the real binary: `--version` with the git commit.

use std::process::{Command, Output};

use crate::harness::repo;

fn acme_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acme-client"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = acme_client(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_commit() {
    let version = stdout_of(&["--version"]);
    assert_eq!(stdout_of(&["-V"]), version);
    let line = version.trim_end();
    assert_eq!(version.lines().count(), 1, "{version:?}");
    let rest = line
        .strip_prefix(&format!("acme-client {}", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line:?}"));
    let commit = rest
        .strip_prefix(" (")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no (commit) in {line:?}"));
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{line:?}"
    );
    // Built from this checkout: the commit is HEAD's.
    let head = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert!(head.starts_with(hash), "{line:?} is not HEAD {head}");
}
