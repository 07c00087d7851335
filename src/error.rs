//! The one error type of the crate, and the exit code each kind of failure maps to.
//!
//! ACME failures keep the CA's RFC 7807 problem document intact so the message a user sees carries
//! its type, detail and subproblems.

use std::path::PathBuf;

use crate::acme::types::Problem;

/// Exit codes, documented in README.md.
pub mod exit {
    /// The certificate was obtained (and served until shutdown, or written with `--no-serve`).
    pub const OK: u8 = 0;
    /// A local failure: files, keys, or an unexpected internal error.
    pub const LOCAL: u8 = 1;
    /// The command line was refused before any network traffic.
    pub const USAGE: u8 = 2;
    /// The ACME server could not be reached, or its TLS certificate is not trusted.
    pub const CONNECT: u8 = 3;
    /// The CA refused: a problem document, an invalid authorization or order, or a malformed answer.
    pub const CA: u8 = 4;
    /// `--timeout` ran out before the certificate was obtained.
    pub const TIMEOUT: u8 = 5;
    /// A listening port could not be bound.
    pub const BIND: u8 = 6;
    /// The deploy hook failed (the new files are in place).
    pub const HOOK: u8 = 7;
    /// Something outside acme-client that the run depends on is not in place (`--dns-zone`'s
    /// CNAME records).
    pub const SETUP: u8 = 8;
    /// Shut down (signal or `GET /shutdown`) before the certificate was obtained.
    pub const INTERRUPTED: u8 = 130;
}

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value that cannot work; refused before any network traffic.
    #[error("{0}")]
    Usage(String),

    /// A listener could not be bound.
    #[error("cannot listen on {proto} {addr} ({what}): {}", io_words(source))]
    Bind {
        what: &'static str,
        proto: &'static str,
        addr: std::net::SocketAddr,
        flag: &'static str,
        source: std::io::Error,
    },

    /// The ACME server's TLS certificate did not verify. Never retried.
    #[error("the ACME server's TLS certificate at {url} is not trusted {by}: {detail}")]
    Trust {
        url: String,
        by: String,
        detail: String,
    },

    /// The ACME server could not be reached (after a few quick attempts).
    #[error("cannot reach the ACME server at {url}: {detail}")]
    Connect { url: String, detail: String },

    /// `--dir` answered, but not with an ACME directory (RFC 8555 §7.1.1): a 4xx, not JSON, or
    /// JSON without the directory's fields.
    #[error("{url} is not an ACME directory: {detail}")]
    NotDirectory { url: String, detail: String },

    /// The CA answered with an RFC 7807 problem document (RFC 8555 §6.7).
    #[error("the CA refused: {problem}")]
    Acme { problem: Problem },

    /// An authorization or order the CA declared invalid (RFC 8555 §7.1.6).
    #[error("{what} is invalid: {problem}")]
    Invalid { what: String, problem: Problem },

    /// An answer from the CA that does not follow RFC 8555 (bad JSON, missing header, not PEM).
    #[error("unexpected answer from the CA at {url}: {detail}")]
    Protocol { url: String, detail: String },

    /// The overall deadline (`--timeout`) ran out.
    #[error("gave up after {secs} s (--timeout) waiting for {awaited}")]
    Timeout {
        secs: u64,
        /// What was awaited: the words after "waiting for".
        awaited: String,
    },

    /// The CA asked to wait (429/503 with `Retry-After`) until after the deadline.
    #[error(
        "the CA asks to wait before {url} is tried again (Retry-After: {retry_after}, that is {wait}, until {until}), which is past --timeout {timeout_secs} s"
    )]
    RetryLater {
        url: String,
        retry_after: String,
        wait: String,
        until: String,
        timeout_secs: u64,
        /// The wait itself, for a caller that may come back later (the renewal loop).
        after: std::time::Duration,
    },

    /// A request with an effect was sent but its answer never came: it may or may not have
    /// been processed. The state machine reads the resource's state to find out.
    #[error("the answer from {url} never came ({detail}); it may have been processed")]
    AnswerLost { url: String, detail: String },

    /// The deploy hook exited non-zero or could not run.
    #[error("the deploy hook `{command}` failed: {status}")]
    Hook { command: String, status: String },

    /// Something outside acme-client that the run depends on is not in place.
    #[error("{0}")]
    Setup(String),

    /// Shutdown was requested before the certificate was obtained.
    #[error("shut down before the certificate was obtained")]
    Interrupted,

    /// A file or directory operation failed.
    #[error("cannot {action} {}: {}", path.display(), io_words(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// A failure inside one step of the ACME exchange.
    #[error("{step}: {source}")]
    Step {
        step: &'static str,
        source: Box<Error>,
    },

    /// Anything else local (key generation, TLS configuration, a server task).
    #[error("{0}")]
    Local(String),

    /// An error with the fix for it in this situation, shown as its `hint:` line.
    #[error("{error}")]
    Hinted { error: Box<Error>, hint: String },
}

impl Error {
    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Bind { .. } => exit::BIND,
            Error::Trust { .. } | Error::Connect { .. } | Error::AnswerLost { .. } => exit::CONNECT,
            Error::Acme { .. }
            | Error::Invalid { .. }
            | Error::Protocol { .. }
            | Error::NotDirectory { .. } => exit::CA,
            Error::Timeout { .. } | Error::RetryLater { .. } => exit::TIMEOUT,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Hook { .. } => exit::HOOK,
            Error::Setup(_) => exit::SETUP,
            Error::Io { .. } | Error::Local(_) => exit::LOCAL,
            Error::Step { source, .. } => source.exit_code(),
            Error::Hinted { error, .. } => error.exit_code(),
        }
    }

    /// What to do about it, when there is something to say: the `hint:` line under the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Hinted { hint, .. } => Some(hint.clone()),
            Error::Step { source, .. } => source.hint(),
            Error::Bind {
                source, addr, flag, ..
            } => Some(bind_fix(source, *addr, flag)),
            Error::Trust { .. } => Some("pass the CA that signed it with --ca-bundle FILE".into()),
            Error::Connect { .. } => Some("check --dir and that the CA is running".into()),
            Error::NotDirectory { .. } => Some(DIR_HINT.into()),
            Error::Acme { problem } | Error::Invalid { problem, .. } => {
                problem.hint().map(str::to_owned)
            }
            Error::Timeout { awaited, .. } => Some(timeout_fix(awaited).into()),
            Error::RetryLater { .. } => {
                Some("run again after that time, or give a larger --timeout".into())
            }
            Error::Hook { .. } => {
                Some("the new files are in place: fix the hook and run it by hand".into())
            }
            _ => None,
        }
    }

    /// The same error with `hint` as its fix.
    pub fn with_hint(self, hint: impl Into<String>) -> Error {
        Error::Hinted {
            error: Box::new(self),
            hint: hint.into(),
        }
    }

    /// The error under any hint and step wrapping.
    pub fn root(&self) -> &Error {
        match self {
            Error::Step { source, .. } => source.root(),
            Error::Hinted { error, .. } => error.root(),
            e => e,
        }
    }

    /// Wraps the error with the ACME step it happened in (a timeout already names what it
    /// waited for).
    pub fn during(self, step: &'static str) -> Error {
        match self {
            e @ (Error::Timeout { .. }
            | Error::Step { .. }
            | Error::Interrupted
            | Error::Setup(_)
            | Error::NotDirectory { .. }) => e,
            e => Error::Step {
                step,
                source: Box::new(e),
            },
        }
    }

    /// How long the CA asked to wait, when it did (through any step wrapping).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self.root() {
            Error::RetryLater { after, .. } => Some(*after),
            _ => None,
        }
    }

    /// Whether this is the CA's `badNonce` problem (RFC 8555 §6.5), which is always retried.
    pub fn is_bad_nonce(&self) -> bool {
        matches!(self, Error::Acme { problem } if problem.is_type("badNonce"))
    }
}

/// What to do about a port that cannot be bound.
fn bind_fix(source: &std::io::Error, addr: std::net::SocketAddr, flag: &str) -> String {
    if source.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 {
        format!(
            "ports below 1024 need root or CAP_NET_BIND_SERVICE (sudo setcap cap_net_bind_service=+ep \"$(command -v acme-client)\"), or choose a port of 1024 or more with {flag} and forward port {} to it",
            addr.port()
        )
    } else {
        format!("free the port or choose another with {flag}")
    }
}

/// The hint for a `--dir` that is not a directory.
pub const DIR_HINT: &str = "check --dir; it must be the CA's directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory (or a name: letsencrypt, pebble, ...)";

/// What to do when `--timeout` ran out while waiting for `awaited`.
fn timeout_fix(awaited: &str) -> &'static str {
    if awaited.contains("to validate") {
        "the CA did not decide in time: check that it can reach acme-client's responders (the ports in the `listening on` lines, where it validates); a larger --timeout helps only a slow CA"
    } else {
        "the CA did not answer in time: check that it is up and answering at --dir; a larger --timeout helps only a slow CA, not one that hangs"
    }
}

/// An I/O error in words, without the "(os error N)" the OS adds.
pub fn io_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an [`Error::Io`] mapper: `.map_err(io_err("write", &path))`.
pub fn io_err(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}
