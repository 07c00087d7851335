//! The progress display, fed by the ACME machine's [`Progress`] events. On a terminal (live): a
//! line per authorization with its name, challenge type, state and elapsed time, and lines for
//! the order, finalize and the certificate, redrawn in place by indicatif. Elsewhere (plain): a
//! few lines as phases end. Both say every few seconds what is awaited while the CA is slow;
//! [`Display::finish`] ends it before the summary or the error is printed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Hue, Paint, one_line};
use crate::acme::progress::{AuthzState, Observer, Phase, Progress, Reporter, names};

/// How often a slow wait is told.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often the live lines are redrawn (spinners, elapsed times).
const TICK: Duration = Duration::from_millis(120);
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
/// Names listed in a plain line before "and N more".
const LISTED: usize = 5;

/// Where the display goes.
enum Mode {
    /// `-q`: nothing.
    Off,
    /// Lines as phases end.
    Plain,
    /// Redrawn in place on a terminal.
    Live(MultiProgress),
}

/// The progress display; an [`Observer`] of the machine.
pub struct Display {
    mode: Mode,
    paint: Paint,
    /// The live display is on screen: from the machine's first use until finished.
    showing: AtomicBool,
    state: Mutex<State>,
    /// Set once finished; the ticker thread waits on it.
    stop: Arc<(Mutex<bool>, Condvar)>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

/// How a line stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Running,
    Ok,
    Failed,
    Stopped,
}

/// One line: an authorization, or a phase of the order.
struct Line {
    label: String,
    /// The challenge type, for an authorization.
    challenge: &'static str,
    state: String,
    mark: Mark,
    started: Instant,
    ended: Option<Instant>,
    bar: Option<ProgressBar>,
    /// For an authorization: its state.
    authz: Option<AuthzState>,
    reused: bool,
}

impl Line {
    fn new(label: String, challenge: &'static str, state: &str) -> Self {
        Line {
            label,
            challenge,
            state: state.to_owned(),
            mark: Mark::Running,
            started: Instant::now(),
            ended: None,
            bar: None,
            authz: None,
            reused: false,
        }
    }

    fn elapsed(&self, now: Instant) -> Duration {
        self.ended
            .unwrap_or(now)
            .saturating_duration_since(self.started)
    }

    fn end(&mut self, mark: Mark, state: &str) {
        self.mark = mark;
        self.state = state.to_owned();
        self.ended.get_or_insert_with(Instant::now);
    }
}

#[derive(Default)]
struct State {
    finished: bool,
    phase: Option<Phase>,
    awaiting: String,
    since: Option<Instant>,
    /// Heartbeats told for the current wait.
    beats: u64,
    /// Directory, account and order: one line.
    setup: Option<Line>,
    authz: Vec<Line>,
    /// Finalize, certificate, revoke.
    steps: Vec<Line>,
    /// The live "waiting for ..." line.
    waiting: Option<ProgressBar>,
    frame: usize,
    /// The widest name the run asked for, so that the lines printed before the authorizations
    /// are known (the order) line up with theirs.
    names_width: usize,
}

impl State {
    fn width(&self) -> usize {
        self.authz
            .iter()
            .map(|l| l.label.chars().count())
            .chain([11, self.names_width])
            .max()
            .unwrap_or(11)
            .min(40)
    }

    /// What is awaited now: during the authorizations, the names the CA has not decided.
    fn awaiting(&self) -> String {
        if self.phase == Some(Phase::Authorizations) && !self.authz.is_empty() {
            let open = self
                .authz
                .iter()
                .filter(|l| !l.authz.is_some_and(AuthzState::is_final))
                .count();
            return format!("the CA to validate {}", names(open));
        }
        self.awaiting.clone()
    }
}

impl Display {
    /// A display for stderr: live when `live` (a terminal), plain lines otherwise, nothing when
    /// `off` (`-q`).
    pub fn new(live: bool, off: bool, paint: Paint) -> Arc<Self> {
        let mode = if off {
            Mode::Off
        } else if live {
            Mode::Live(MultiProgress::with_draw_target(
                ProgressDrawTarget::stderr_with_hz(20),
            ))
        } else {
            Mode::Plain
        };
        Arc::new(Display {
            mode,
            paint,
            showing: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            ticker: Mutex::new(None),
        })
    }

    /// A display that shows nothing.
    pub fn off() -> Arc<Self> {
        Self::new(false, true, Paint(false))
    }

    /// The machine's handle on this display; the display shows from now on.
    pub fn reporter(self: &Arc<Self>) -> Reporter {
        match self.mode {
            Mode::Off => Reporter::none(),
            Mode::Plain => {
                self.start_ticker();
                Reporter::new(self.clone())
            }
            Mode::Live(_) => {
                self.showing.store(true, Ordering::SeqCst);
                self.start_ticker();
                Reporter::new(self.clone())
            }
        }
    }

    /// The names the run asks for (wildcards with their `*.`): every line is as wide as the
    /// widest, from the first.
    pub fn expect_names(&self, names: &[String]) {
        let widest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        self.lock().names_width = widest;
    }

    /// Whether the live display is on screen now (what it shows need not be logged too).
    pub fn showing(&self) -> bool {
        self.showing.load(Ordering::SeqCst)
    }

    /// Runs `write` (a log line) above the live display while it shows, else as it is. Once
    /// finished the display is never redrawn: what was printed below it stays intact.
    pub fn above<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.mode {
            Mode::Live(multi) if self.showing() => multi.suspend(write),
            _ => write(),
        }
    }

    /// Ends the display: open lines are closed (as failed when `ok` is false), the ticker
    /// stops. Whatever is printed next comes below it. Safe to call more than once.
    pub fn finish(&self, ok: bool) {
        {
            let mut state = self.lock();
            if !state.finished {
                state.finished = true;
                let mark = if ok { Mark::Ok } else { Mark::Failed };
                if let Some(mut line) = state.setup.take() {
                    if line.mark == Mark::Running {
                        line.end(mark, if ok { "done" } else { "failed" });
                    }
                    self.close(&line, state.width());
                }
                for i in 0..state.authz.len() {
                    let line = &mut state.authz[i];
                    if line.mark == Mark::Running {
                        line.mark = Mark::Stopped;
                        line.ended = Some(Instant::now());
                    }
                }
                for i in 0..state.steps.len() {
                    let line = &mut state.steps[i];
                    if line.mark == Mark::Running {
                        line.end(mark, if ok { "done" } else { "failed" });
                    }
                }
                let width = state.width();
                for line in state.authz.iter().chain(&state.steps) {
                    self.finish_bar(line, width);
                }
                if let Some(bar) = state.waiting.take() {
                    bar.finish_and_clear();
                }
            }
        }
        self.showing.store(false, Ordering::SeqCst);
        let (lock, wake) = &*self.stop;
        *crate::sync::lock(lock) = true;
        wake.notify_all();
        let ticker = crate::sync::lock(&self.ticker).take();
        if let Some(ticker) = ticker {
            let _ = ticker.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The guard is never held across an `.await` (everything here is synchronous).
        crate::sync::lock(&self.state)
    }

    fn start_ticker(self: &Arc<Self>) {
        let mut ticker = crate::sync::lock(&self.ticker);
        if ticker.is_some() {
            return;
        }
        let display = Arc::downgrade(self);
        let stop = self.stop.clone();
        let every = match self.mode {
            Mode::Live(_) => TICK,
            _ => Duration::from_millis(250),
        };
        *ticker = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let (lock, wake) = &*stop;
                let mut stopped = crate::sync::lock(lock);
                while !*stopped {
                    stopped = match wake.wait_timeout(stopped, every) {
                        Ok((guard, _)) => guard,
                        Err(p) => p.into_inner().0,
                    };
                    if *stopped {
                        break;
                    }
                    let Some(display) = display.upgrade() else {
                        break;
                    };
                    drop(stopped);
                    display.tick(Instant::now());
                    stopped = crate::sync::lock(lock);
                }
            })
            .ok();
    }

    /// Redraws the live lines and tells a slow wait.
    fn tick(&self, now: Instant) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.frame = state.frame.wrapping_add(1);
        let waited = state
            .since
            .map(|s| now.saturating_duration_since(s))
            .unwrap_or_default();
        let due = waited.as_secs() / HEARTBEAT.as_secs();
        let slow = state.phase.is_some_and(|p| p != Phase::Done) && due >= 1;
        let text = format!("waiting for {} ({} s)", state.awaiting(), waited.as_secs());
        match &self.mode {
            Mode::Off => {}
            Mode::Plain => {
                if slow && due > state.beats {
                    state.beats = due;
                    eprintln!("{text}");
                }
            }
            Mode::Live(multi) => {
                let width = state.width();
                let frame = state.frame;
                for line in state.setup.iter().chain(&state.authz).chain(&state.steps) {
                    if let Some(bar) = &line.bar {
                        bar.set_message(self.render(line, width, frame, now));
                    }
                }
                if slow {
                    let bar = state.waiting.get_or_insert_with(|| {
                        multi.add(ProgressBar::new_spinner().with_style(plain_style()))
                    });
                    bar.set_message(format!("  {}", self.paint.hue(Hue::Yellow, &text)));
                }
            }
        }
    }

    fn render(&self, line: &Line, width: usize, frame: usize, now: Instant) -> String {
        let p = self.paint;
        let mark = match line.mark {
            Mark::Running => p.hue(Hue::Cyan, SPINNER[frame % SPINNER.len()]),
            Mark::Ok => p.hue(Hue::Green, "✓"),
            Mark::Failed => p.hue(Hue::Red, "✗"),
            Mark::Stopped => p.hue(Hue::Dim, "-"),
        };
        let state = format!("{:<10}", line.state);
        let state = match (line.mark, line.authz) {
            (Mark::Failed, _) | (_, Some(AuthzState::Invalid)) => p.hue(Hue::Red, &state),
            (Mark::Ok, _) => p.hue(Hue::Green, &state),
            _ => p.hue(Hue::Yellow, &state),
        };
        let reused = if line.reused { " (reused)" } else { "" };
        format!(
            "{mark} {:<width$} {:<11} {state} {:>8}{reused}",
            one_line(&line.label),
            line.challenge,
            p.hue(Hue::Dim, &seconds(line.elapsed(now))),
        )
    }

    /// Adds a live bar for `line`.
    fn show(&self, line: &mut Line, state_waiting: &mut Option<ProgressBar>) {
        if let Mode::Live(multi) = &self.mode {
            // A new line goes above the "waiting for" line: drop that, the ticker adds it again.
            if let Some(waiting) = state_waiting.take() {
                waiting.finish_and_clear();
                multi.remove(&waiting);
            }
            let bar = multi.add(ProgressBar::new_spinner().with_style(plain_style()));
            line.bar = Some(bar);
        }
    }

    fn finish_bar(&self, line: &Line, width: usize) {
        if let Some(bar) = &line.bar
            && !bar.is_finished()
        {
            bar.finish_with_message(self.render(line, width, 0, Instant::now()));
        }
    }

    /// Closes the setup line: shown finished live, nothing in plain lines.
    fn close(&self, line: &Line, width: usize) {
        if let Some(bar) = &line.bar {
            if line.mark == Mark::Ok && line.state == "done" {
                // No order was placed (the certificate was kept): the summary says so.
                bar.finish_and_clear();
            } else {
                bar.finish_with_message(self.render(line, width, 0, Instant::now()));
            }
        }
    }

    fn phase(&self, state: &mut State, phase: Phase, awaiting: &str) {
        let now = Instant::now();
        let previous = state.phase.replace(phase);
        state.awaiting = awaiting.to_owned();
        state.since = Some(now);
        state.beats = 0;
        if let Some(bar) = state.waiting.take() {
            bar.finish_and_clear();
            if let Mode::Live(multi) = &self.mode {
                multi.remove(&bar);
            }
        }
        let setup = |p: Phase| {
            matches!(
                p,
                Phase::Directory
                    | Phase::Review
                    | Phase::Nonce
                    | Phase::Account
                    | Phase::Prepare
                    | Phase::Order
            )
        };
        // The lines of the phase that ended.
        match previous {
            Some(p) if setup(p) && !setup(phase) => {
                if let Some(mut line) = state.setup.take() {
                    let ordered = p == Phase::Order;
                    line.end(Mark::Ok, if ordered { "created" } else { "done" });
                    if ordered {
                        self.plain(format!("order created ({})", seconds(line.elapsed(now))));
                    }
                    self.close(&line, state.width());
                }
            }
            Some(Phase::Authorizations) => {
                let valid: Vec<&Line> = state
                    .authz
                    .iter()
                    .filter(|l| l.authz == Some(AuthzState::Valid))
                    .collect();
                if !valid.is_empty() && valid.len() == state.authz.len() {
                    let reused = valid.iter().filter(|l| l.reused).count();
                    let listed: Vec<String> = valid.iter().map(|l| one_line(&l.label)).collect();
                    let mut text = format!(
                        "{} {} by {}: {}",
                        names(valid.len()),
                        self.paint.hue(Hue::Green, "valid"),
                        valid[0].challenge,
                        listed
                            .iter()
                            .take(LISTED)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    if listed.len() > LISTED {
                        text.push_str(&format!(" and {} more", listed.len() - LISTED));
                    }
                    let took = state
                        .authz
                        .iter()
                        .map(|l| l.elapsed(now))
                        .max()
                        .unwrap_or_default();
                    text.push_str(&format!(" ({}", seconds(took)));
                    if reused > 0 {
                        text.push_str(&format!(", {reused} reused"));
                    }
                    text.push(')');
                    self.plain(text);
                }
            }
            Some(Phase::Finalize | Phase::Certificate | Phase::Revoke) => {
                let done = match previous {
                    Some(Phase::Finalize) => "valid",
                    Some(Phase::Certificate) => "downloaded",
                    _ => "sent",
                };
                let width = state.width();
                if let Some(line) = state.steps.last_mut() {
                    line.end(Mark::Ok, done);
                    if previous == Some(Phase::Certificate) {
                        let took = state
                            .steps
                            .iter()
                            .map(|l| l.elapsed(now))
                            .fold(Duration::ZERO, |a, b| a + b);
                        self.plain(format!("certificate issued ({})", seconds(took)));
                    }
                }
                if let Some(line) = state.steps.last() {
                    self.finish_bar(line, width);
                }
            }
            _ => {}
        }
        // The line of the phase that starts.
        let (label, doing) = match phase {
            p if setup(p) => {
                if let Some(line) = &mut state.setup {
                    line.state = p.doing().to_owned();
                } else {
                    let mut line = Line::new("order".into(), "", p.doing());
                    self.show(&mut line, &mut state.waiting);
                    state.setup = Some(line);
                }
                return;
            }
            Phase::Finalize => ("finalize", "processing"),
            Phase::Certificate => ("certificate", "downloading"),
            Phase::Revoke => ("revoke", "revoking"),
            _ => return,
        };
        let mut line = Line::new(label.into(), "", doing);
        self.show(&mut line, &mut state.waiting);
        state.steps.push(line);
    }

    fn authorization(
        &self,
        state: &mut State,
        name: &str,
        challenge: &'static str,
        new: AuthzState,
        reused: bool,
    ) {
        let at = match state.authz.iter().position(|l| l.label == name) {
            Some(at) => at,
            None => {
                let mut line = Line::new(name.to_owned(), challenge, new.word());
                self.show(&mut line, &mut state.waiting);
                state.authz.push(line);
                state.authz.len() - 1
            }
        };
        let width = state.width();
        let line = &mut state.authz[at];
        line.authz = Some(new);
        line.reused |= reused;
        match new {
            AuthzState::Valid => line.end(Mark::Ok, new.word()),
            AuthzState::Invalid => line.end(Mark::Failed, new.word()),
            AuthzState::Pending | AuthzState::Answered => line.state = new.word().to_owned(),
        }
        if new.is_final() {
            self.finish_bar(&state.authz[at], width);
        }
    }

    /// A line in plain mode.
    fn plain(&self, text: String) {
        if let Mode::Plain = self.mode {
            eprintln!("{text}");
        }
    }
}

impl Observer for Display {
    fn notify(&self, event: &Progress) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        match event {
            Progress::Phase { phase, awaiting } => self.phase(&mut state, *phase, awaiting),
            Progress::Authorization {
                name,
                challenge,
                state: new,
                reused,
            } => self.authorization(&mut state, name, challenge, *new, *reused),
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *crate::sync::lock(lock) = true;
        wake.notify_all();
    }
}

/// A bar that shows only its message (the line is rendered here).
fn plain_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// "0.4 s", "12 s", "2 min 5 s".
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 60.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(seconds(Duration::from_millis(420)), "0.4 s");
        assert_eq!(seconds(Duration::from_secs(12)), "12 s");
        assert_eq!(seconds(Duration::from_secs(125)), "2 min 5 s");
    }

    fn authz(name: &str, state: AuthzState) -> Progress {
        Progress::Authorization {
            name: name.into(),
            challenge: "dns-01",
            state,
            reused: false,
        }
    }

    #[test]
    fn the_awaited_names_are_those_the_ca_has_not_decided() {
        let display = Display::new(false, false, Paint(false));
        display.notify(&Progress::Phase {
            phase: Phase::Authorizations,
            awaiting: "the CA to validate 3 names".into(),
        });
        display.notify(&authz("a.test", AuthzState::Pending));
        display.notify(&authz("*.a.test", AuthzState::Answered));
        display.notify(&authz("b.test", AuthzState::Valid));
        let state = display.lock();
        assert_eq!(state.awaiting(), "the CA to validate 2 names");
        assert_eq!(state.authz[1].label, "*.a.test");
        assert_eq!(state.authz[2].mark, Mark::Ok);
    }

    #[test]
    fn a_finished_display_ignores_late_events() {
        let display = Display::new(false, false, Paint(false));
        display.notify(&authz("a.test", AuthzState::Answered));
        display.finish(false);
        display.finish(false);
        display.notify(&authz("b.test", AuthzState::Pending));
        let state = display.lock();
        assert_eq!(state.authz.len(), 1);
        assert_eq!(state.authz[0].mark, Mark::Stopped);
    }

    #[test]
    fn a_live_line_holds_name_challenge_state_and_time() {
        let display = Display::new(false, false, Paint(false));
        let mut line = Line::new("*.a.test".into(), "dns-01", "answered");
        let now = line.started + Duration::from_millis(1500);
        assert_eq!(
            display.render(&line, 11, 0, now),
            "⠋ *.a.test    dns-01      answered      1.5 s"
        );
        line.end(Mark::Ok, "valid");
        assert!(display.render(&line, 11, 0, now).starts_with("✓ *.a.test"));
    }
}
