//! What a person sees on stderr, run as a person runs it: under a real terminal (tmux, its
//! screen read with `capture-pane`, its raw bytes with `pipe-pane`) the live progress display and
//! then the summary; through a pipe, a few plain lines and no escape code at all; NO_COLOR,
//! TERM=dumb and `--color never` keep escapes off even on the terminal, `--color always` puts
//! colour into a pipe. A CA that is slow (a challenge answer held by the proxy) gets told about.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::harness::*;
use crate::proxy::{Fault, Proxy, Rule};

/// tmux on PATH; its absence is a failure with the install hint.
fn tmux_bin() -> PathBuf {
    installed(
        "tmux",
        "the terminal tests need it: run `apt-get install -y tmux` (Debian), or scripts/test, \
         which installs it",
    )
}

/// `arg` quoted for sh.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// acme-client in a tmux pane of its own server (150x50), started once its output is piped to
/// a file; the server is killed on drop.
struct Terminal {
    dir: tempfile::TempDir,
}

impl Terminal {
    /// Runs the binary with `args` and `env` (`NAME=value`; NO_COLOR and RUST_LOG are unset
    /// first) in `cwd`.
    fn start(args: &[String], env: &[&str], cwd: &Path) -> Terminal {
        let dir = tempfile::tempdir().unwrap();
        let mut line = String::from("env -u NO_COLOR -u RUST_LOG");
        for e in env {
            line.push(' ');
            line.push_str(&quote(e));
        }
        line.push(' ');
        line.push_str(&quote(env!("CARGO_BIN_EXE_acme-client")));
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        // The shell writes the exit code to a file: tmux does not always record a pane's exit
        // status (it may see the terminal close and never the process's status).
        let status = dir.path().join("status");
        let script = format!(
            "#!/bin/sh\n# Waits for the go (Enter) so that pipe-pane sees every byte.\nread go\ncd {}\n{line}\necho $? > {}.tmp && mv {}.tmp {}\n",
            quote(&cwd.display().to_string()),
            quote(&status.display().to_string()),
            quote(&status.display().to_string()),
            quote(&status.display().to_string()),
        );
        let run = dir.path().join("run.sh");
        std::fs::write(&run, script).unwrap();
        let term = Terminal { dir };
        term.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "150",
            "-y",
            "50",
            &format!("sh {}", quote(&run.display().to_string())),
        ]);
        term.tmux(&["set-option", "-t", "t", "remain-on-exit", "on"]);
        let raw = term.dir.path().join("raw");
        term.tmux(&[
            "pipe-pane",
            "-t",
            "t",
            "-o",
            &format!("cat >> {}", quote(&raw.display().to_string())),
        ]);
        term.tmux(&["send-keys", "-t", "t", "Enter"]);
        term
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new(tmux_bin())
            .arg("-S")
            .arg(self.dir.path().join("sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the terminal shows now.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// The exit code, once the program has ended.
    fn exit_code(&self) -> Option<i32> {
        let status = std::fs::read_to_string(self.dir.path().join("status")).ok()?;
        Some(status.trim().parse().unwrap_or(-1))
    }

    /// Every byte the program wrote to the terminal.
    fn raw(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("raw")).unwrap_or_default())
            .into_owned()
    }

    /// Reads the screen every 100 ms until the program ends (at most `limit`), calling
    /// `each` with every screen; returns the screens and the exit code.
    async fn run(&self, limit: Duration, mut each: impl FnMut(&str)) -> (Vec<String>, i32) {
        let deadline = Instant::now() + limit;
        let mut screens = Vec::new();
        loop {
            let code = self.exit_code();
            let screen = self.screen();
            each(&screen);
            screens.push(screen);
            if let Some(code) = code {
                // The bytes of the end reach the pipe-pane file a moment after.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return (screens, code);
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}:\n{}",
                screens.last().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // Never panics (tmux may be missing: the failure has been told already).
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("sock"))
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

/// The screen's line that shows `name` (trimmed), if any.
fn line_of<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().nth(1) == Some(name))
}

/// The arguments of a run through `proxy` for `names` by dns-01 into `out`, without serving.
fn args(pebble: &Pebble, dir_url: &str, names: &[&str], out: &Path, extra: &[&str]) -> Vec<String> {
    let mut extra = extra.to_vec();
    let out = out.display().to_string();
    extra.extend(["--no-serve", "--out", &out]);
    Client::args(pebble, dir_url, "dns01", names, &extra)
}

/// A Pebble behind a proxy that holds the first challenge answer until released: the CA is
/// slow for one name.
async fn slow_ca() -> (Pebble, Proxy) {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![Rule::first("/chalZ/", 1, Fault::Hold)]).await;
    (pebble, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_shows_each_authorization_live_then_the_summary() {
    let (pebble, proxy) = slow_ca().await;
    let out = tempfile::tempdir().unwrap();
    let names = ["live.test", "*.live.test"];
    // Serving, so that lines are logged after the summary too; stopped by GET /shutdown.
    let shutdown_port = free_port();
    let run = Client::args(
        &pebble,
        &proxy.dir_url(),
        "dns01",
        &names,
        &[
            "--out",
            &out.path().display().to_string(),
            "--shutdown-port",
            &shutdown_port.to_string(),
        ],
    );
    let term = Terminal::start(&run, &["TERM=xterm-256color"], out.path());
    let (mut released, mut stopped) = (false, false);
    let (screens, code) = term
        .run(Duration::from_secs(60), |screen| {
            // Released only once the display has said what it waits for.
            if !released && screen.contains("waiting for the CA to validate 2 names (5 s)") {
                proxy.release();
                released = true;
            }
            if !stopped && screen.contains("serving the certificate") {
                let mut tcp = std::net::TcpStream::connect(("127.0.0.1", shutdown_port)).unwrap();
                std::io::Write::write_all(&mut tcp, b"GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                stopped = true;
            }
        })
        .await;
    let last = screens.last().unwrap();
    assert_eq!(code, 0, "{last}\n--- pebble\n{}", pebble.log());
    assert!(released, "no 'waiting for' line on the terminal:\n{last}");

    // While the answer was held: one name pending, the other answered, each with its
    // challenge type and a running time.
    let held = screens.iter().find(|s| {
        names
            .iter()
            .any(|n| line_of(s, n).is_some_and(|l| l.contains("pending")))
            && names
                .iter()
                .any(|n| line_of(s, n).is_some_and(|l| l.contains("answered")))
    });
    let held = held.unwrap_or_else(|| {
        panic!(
            "no screen with pending and answered:\n{}",
            screens.join("\n----\n")
        )
    });
    for name in names {
        let line = line_of(held, name).unwrap();
        assert!(line.contains("dns-01") && line.ends_with(" s"), "{line}");
    }

    // At the end: every line final, then the summary below the display.
    let lines: Vec<&str> = last.lines().map(str::trim_end).collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{last}"))
    };
    for name in names {
        let line = lines[at(&format!("✓ {name} "))];
        assert!(line.contains("dns-01") && line.contains("valid"), "{line}");
    }
    assert!(lines[at("✓ order ")].contains("created"), "{last}");
    assert!(lines[at("✓ finalize ")].contains("valid"), "{last}");
    assert!(lines[at("✓ certificate ")].contains("downloaded"), "{last}");
    let summary = at("certificate for ");
    assert!(
        summary > at("✓ certificate "),
        "the summary must follow the display:\n{last}"
    );
    // Lines logged after the summary come below it; the display is never drawn again.
    assert!(at("serving the certificate") > summary, "{last}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("✓ finalize "))
            .count(),
        1,
        "the display was drawn again:\n{last}"
    );
    assert!(
        !last.contains("waiting for"),
        "the waiting line must go:\n{last}"
    );
    for chatter in ["step done", "INFO", "acme_client::"] {
        assert!(
            !last.contains(chatter),
            "{chatter:?} on the terminal:\n{last}"
        );
    }
    // A live display is drawn with escape codes (colour, cursor movement).
    assert!(term.raw().contains('\x1b'), "no escape code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_color_term_dumb_and_color_never_write_no_escape_even_on_a_terminal() {
    let pebble = Pebble::start(&[]).await;
    for (env, extra) in [
        (&["TERM=xterm-256color", "NO_COLOR=1"][..], &[][..]),
        (&["TERM=dumb"][..], &[][..]),
        (&["TERM=xterm-256color"][..], &["--color", "never"][..]),
    ] {
        let out = tempfile::tempdir().unwrap();
        let term = Terminal::start(
            &args(
                &pebble,
                &pebble.dir_url(),
                &["plain.test"],
                out.path(),
                extra,
            ),
            env,
            out.path(),
        );
        let (screens, code) = term.run(Duration::from_secs(60), |_| {}).await;
        let last = screens.last().unwrap();
        assert_eq!(code, 0, "{env:?} {extra:?}:\n{last}");
        let raw = term.raw();
        assert!(
            !raw.contains('\x1b'),
            "{env:?} {extra:?}: escape codes on the terminal:\n{raw:?}"
        );
        // The plain lines, then the summary.
        for want in [
            "order created",
            "1 name valid by dns-01: plain.test",
            "certificate issued",
            "certificate for plain.test",
        ] {
            assert!(
                last.contains(want),
                "{env:?} {extra:?}: {want:?} missing:\n{last}"
            );
        }
    }
}

/// Whether `line` holds an RFC 3339 date-time such as `2026-11-30T17:07:28`.
fn has_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    let digits = |r: std::ops::Range<usize>, w: &[u8]| w[r].iter().all(u8::is_ascii_digit);
    b.windows(11).any(|w| {
        digits(0..4, w)
            && w[4] == b'-'
            && digits(5..7, w)
            && w[7] == b'-'
            && digits(8..10, w)
            && w[10] == b'T'
    })
}

/// Runs the binary with `args` through pipes (NO_COLOR and RUST_LOG unset, TERM a colour
/// terminal's), calling `on_line` with each stderr line as it comes; returns the exit code,
/// stdout and stderr.
async fn through_pipes(
    args: &[String],
    mut on_line: impl FnMut(&str),
) -> (Option<i32>, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_acme-client"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let read_stdout = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let run = async {
        while let Ok(Some(line)) = lines.next_line().await {
            on_line(&line);
            stderr.push_str(&line);
            stderr.push('\n');
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("still running after 60 s");
    (status.code(), read_stdout.await.unwrap(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_gets_a_few_plain_lines_and_no_escape_and_color_always_colours_it() {
    let (pebble, proxy) = slow_ca().await;
    let out = tempfile::tempdir().unwrap();
    let names = ["pipe.test", "*.pipe.test"];
    let run = args(&pebble, &proxy.dir_url(), &names, out.path(), &[]);
    let (code, stdout, stderr) = through_pipes(&run, |line| {
        if line == "waiting for the CA to validate 2 names (5 s)" {
            proxy.release();
        }
    })
    .await;
    assert_eq!(code, Some(0), "{stderr}\n--- pebble\n{}", pebble.log());
    assert!(
        !stderr.contains('\x1b') && !stdout.contains('\x1b'),
        "escape codes in a pipe:\n{stderr:?}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == "waiting for the CA to validate 2 names (5 s)"),
        "the slow CA was not told about:\n{stderr}"
    );
    for want in [
        "order created (",
        "2 names valid by dns-01: ",
        "*.pipe.test",
        "certificate issued (",
    ] {
        assert!(stderr.contains(want), "{want:?} missing:\n{stderr}");
    }
    // Concise: a handful of lines, none with a timestamp, a module path or step chatter.
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 12, "{} lines:\n{stderr}", lines.len());
    for line in &lines {
        assert!(
            !has_timestamp(line)
                && !line.contains("acme_client::")
                && !line.contains("INFO")
                && !line.contains("step done"),
            "not a plain line: {line}"
        );
    }
    assert!(stdout.starts_with("certificate for "), "{stdout}");

    // --color always: colour even into the pipe (stdout, for scripts, stays plain).
    let out = tempfile::tempdir().unwrap();
    let run = args(
        &pebble,
        &pebble.dir_url(),
        &["pipe.test"],
        out.path(),
        &["--color", "always"],
    );
    let (code, stdout, stderr) = through_pipes(&run, |_| {}).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("\x1b["),
        "--color always wrote no colour:\n{stderr}"
    );
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
}
