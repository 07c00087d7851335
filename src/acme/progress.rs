//! How the exchange is going, told as it happens: the phase the machine is in (and what it waits
//! on the CA for), and the state of each authorization. The machine emits these through the
//! [`Reporter`] in its `Runtime`; whoever shows progress (a terminal display, plain lines, nothing)
//! implements [`Observer`]. The protocol knows nothing of how they are shown.

use std::fmt;
use std::sync::Arc;

/// One phase of the exchange, in the order the machine goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Directory,
    Review,
    Nonce,
    Account,
    Prepare,
    Order,
    Authorizations,
    Finalize,
    Certificate,
    Revoke,
    Schedule,
    Done,
}

impl Phase {
    /// What the machine is doing in this phase, for logs and error messages.
    pub fn doing(self) -> &'static str {
        match self {
            Phase::Directory => "reading the directory",
            Phase::Review => "checking whether the certificate is due",
            Phase::Nonce => "getting a nonce",
            Phase::Account => "finding or creating the account",
            Phase::Prepare => "checking the challenges' setup",
            Phase::Order => "creating the order",
            Phase::Authorizations => "validating the authorizations",
            Phase::Finalize => "finalizing the order",
            Phase::Certificate => "downloading the certificate",
            Phase::Revoke => "revoking the certificate",
            Phase::Schedule => "finding when to renew",
            Phase::Done => "done",
        }
    }
}

/// Where one authorization stands, in the protocol's words (RFC 8555 §7.1.6) plus `answered`:
/// its challenge was sent and the CA has not decided yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzState {
    Pending,
    Answered,
    Valid,
    Invalid,
}

impl AuthzState {
    /// The word shown for the state.
    pub fn word(self) -> &'static str {
        match self {
            AuthzState::Pending => "pending",
            AuthzState::Answered => "answered",
            AuthzState::Valid => "valid",
            AuthzState::Invalid => "invalid",
        }
    }

    /// Whether the CA has decided.
    pub fn is_final(self) -> bool {
        matches!(self, AuthzState::Valid | AuthzState::Invalid)
    }
}

impl fmt::Display for AuthzState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The machine entered `phase`; until the next event it waits for `awaiting` (words that
    /// follow "waiting for", e.g. "the CA to create the order").
    Phase { phase: Phase, awaiting: String },
    /// An authorization changed state. `name` carries `*.` for a wildcard's authorization.
    Authorization {
        name: String,
        challenge: &'static str,
        state: AuthzState,
        /// Valid already when first fetched: the CA reused an earlier validation.
        reused: bool,
    },
}

/// Something that wants to know how the exchange is going.
pub trait Observer: Send + Sync {
    /// Called for every event, in order, from the machine's tasks; must not block for long.
    fn notify(&self, event: &Progress);
}

/// The machine's handle on its observer; cheap to clone. [`Reporter::none`] tells no one.
#[derive(Clone, Default)]
pub struct Reporter(Option<Arc<dyn Observer>>);

impl Reporter {
    /// A reporter telling `observer`.
    pub fn new(observer: Arc<dyn Observer>) -> Self {
        Reporter(Some(observer))
    }

    /// A reporter telling no one (renewals in the background, the `account` command).
    pub fn none() -> Self {
        Reporter(None)
    }

    /// Tells the observer, if there is one.
    pub fn emit(&self, event: Progress) {
        if let Some(observer) = &self.0 {
            observer.notify(&event);
        }
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Reporter(observer)"
        } else {
            "Reporter(none)"
        })
    }
}

/// "1 name", "3 names".
pub fn names(n: usize) -> String {
    if n == 1 {
        "1 name".to_owned()
    } else {
        format!("{n} names")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Log(Mutex<Vec<Progress>>);

    impl Observer for Log {
        fn notify(&self, event: &Progress) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn a_reporter_tells_its_observer_and_none_tells_no_one() {
        let log = Arc::new(Log(Mutex::new(Vec::new())));
        let event = Progress::Phase {
            phase: Phase::Order,
            awaiting: "the CA to create the order".into(),
        };
        Reporter::none().emit(event.clone());
        Reporter::new(log.clone()).emit(event.clone());
        assert_eq!(*log.0.lock().unwrap(), vec![event]);
    }

    #[test]
    fn states_are_the_protocol_words_rfc8555_7_1_6() {
        let words: Vec<&str> = [
            AuthzState::Pending,
            AuthzState::Answered,
            AuthzState::Valid,
            AuthzState::Invalid,
        ]
        .iter()
        .map(|s| s.word())
        .collect();
        assert_eq!(words, ["pending", "answered", "valid", "invalid"]);
        assert_eq!(names(1), "1 name");
        assert_eq!(names(3), "3 names");
    }
}
