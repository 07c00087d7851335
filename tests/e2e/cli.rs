//! The command line's conveniences, through the real binary: the examples in `--help`, shell
//! completions, the manual page and `--version` with the git commit. (Its usage errors, `-d`,
//! `--email` and misspelled `--dir` presets among them, are in usage.rs.)

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::harness::repo;

const COMMANDS: [&str; 7] = [
    "http01",
    "dns01",
    "tlsalpn01",
    "revoke",
    "account",
    "completions",
    "manpage",
];

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

/// Runs `program` with `args` and `input` on stdin; None if the program is not installed.
fn pipe(program: &str, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Option<Output> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(input).unwrap();
    Some(child.wait_with_output().unwrap())
}

#[test]
fn help_ends_with_examples() {
    let top = stdout_of(&["--help"]);
    assert!(top.contains("\nExamples:\n"), "{top}");
    for command in COMMANDS {
        let help = stdout_of(&[command, "--help"]);
        let examples = help
            .split_once("\nExamples:\n")
            .unwrap_or_else(|| panic!("{command} --help has no examples:\n{help}"))
            .1;
        assert!(
            examples.contains(&format!("acme-client {command} ")),
            "{command}: {examples}"
        );
        // The short help has them too.
        assert!(stdout_of(&[command, "-h"]).contains("\nExamples:\n"));
    }
    assert!(stdout_of(&["http01", "--help"]).contains("-d, --domain <NAME>"));
}

#[test]
fn bash_completions_load_and_complete() {
    let script = stdout_of(&["completions", "bash"]);
    for command in COMMANDS {
        assert!(script.contains(command), "completions lack {command}");
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &script).unwrap();
    let path = file.path().to_str().unwrap();
    let syntax = Command::new("bash").args(["-n", path]).output().unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // What bash offers after TAB, past the command too: the function `complete` registered,
    // called as bash calls it (command, word, previous word).
    let offered = |words: &str| {
        let probe = format!(
            r#"source {path}
            function=$(complete -p acme-client | sed -E 's/.* -F ([^ ]+) .*/\1/')
            COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
            "$function" acme-client "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
            echo "${{COMPREPLY[@]}}""#
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let top = offered("acme-client ''");
    for command in COMMANDS {
        assert!(top.split_whitespace().any(|w| w == command), "{top}");
    }
    assert_eq!(offered("acme-client http01 --dom").trim(), "--domain");
    assert_eq!(offered("acme-client account --ema").trim(), "--email");
    let shells = offered("acme-client completions ''");
    for shell in ["bash", "elvish", "fish", "powershell", "zsh"] {
        assert!(shells.split_whitespace().any(|w| w == shell), "{shells}");
    }
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("tlsalpn01"), "{shell}");
        assert!(script.contains("--email"), "{shell}");
    }
    let out = acme_client(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = crate::harness::error_line(&stderr);
    assert!(
        error.contains("possible values: bash, elvish, fish, powershell, zsh"),
        "{stderr}"
    );
}

#[test]
fn manual_page_renders() {
    let page = stdout_of(&["manpage"]);
    assert!(page.contains("\n.TH ACME-CLIENT 1 "), "{page}");
    for command in COMMANDS {
        let heading = format!("\n.SH \"ACME-CLIENT {}\"\n", command.to_uppercase());
        assert!(page.contains(&heading), "no {heading:?}");
    }
    // Without warnings (-ww: all of them), where groff is installed.
    match pipe(
        "groff",
        &["-man", "-Tutf8", "-ww", "-z"],
        &[],
        page.as_bytes(),
    ) {
        Some(out) => {
            assert!(out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warns");
        }
        None => eprintln!("groff is not installed: the page was not rendered"),
    }
    // As a reader sees it, where man is installed (plain text when not on a terminal).
    let env = [("MANWIDTH", "100"), ("MANPAGER", "cat"), ("PAGER", "cat")];
    match pipe("man", &["-l", "-"], &env, page.as_bytes()) {
        Some(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for expect in [
                "ACME-CLIENT(1)",
                "ACME-CLIENT HTTP01",
                "-d, --domain <NAME>",
                "--email <ADDR>",
                "acme-client completions bash",
            ] {
                assert!(text.contains(expect), "man shows no {expect:?}:\n{text}");
            }
        }
        None => eprintln!("man is not installed: the page was not shown"),
    }
}

#[test]
fn version_names_the_commit() {
    let version = stdout_of(&["--version"]);
    assert_eq!(stdout_of(&["-V"]), version);
    assert_eq!(version.lines().count(), 1, "{version:?}");
    let line = version.trim_end();
    let rest = line
        .strip_prefix(&format!("acme-client {}", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line:?}"));
    // Built from this checkout (the build ran git as this test does): the commit is HEAD's.
    // Without git, or outside a checkout, the version stands alone.
    let head = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["rev-parse", "--show-toplevel", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8(out.stdout).unwrap())
        .and_then(|out| {
            let (top, head) = out.trim().split_once('\n')?;
            let here = std::fs::canonicalize(repo()).ok()?;
            (std::fs::canonicalize(top).ok()? == here).then(|| head.to_owned())
        });
    let Some(head) = head else {
        assert_eq!(rest, "", "{line:?} names a commit outside a git checkout");
        return;
    };
    let commit = rest
        .strip_prefix(" (")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no (commit) in {line:?}, built in a git checkout"));
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{line:?}"
    );
    assert!(head.starts_with(hash), "{line:?} is not HEAD {head}");
}
