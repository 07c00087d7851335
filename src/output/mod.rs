//! What acme-client writes on stderr for people: whether it may use colour and a live display
//! (a terminal, `NO_COLOR`, `TERM=dumb`, `--color`), the log format ([`log`]), the progress
//! display fed by the ACME machine's events ([`display`]), and the final `error:` / `hint:`
//! lines. stdout (the summary, `--json`) never carries escape codes.

pub mod display;
pub mod log;

use std::io::IsTerminal as _;

pub use display::Display;

/// `--color`: when stderr may carry colour (and, on a terminal, the live display).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// Colour and the live display on a terminal, unless NO_COLOR is set or TERM=dumb
    #[default]
    Auto,
    /// Colour even into a file or a pipe
    Always,
    /// No colour and no live display
    Never,
}

/// What the environment says about stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// stderr is a terminal.
    pub tty: bool,
    /// `NO_COLOR` is set to a non-empty value (no-color.org).
    pub no_color: bool,
    /// `TERM=dumb`: no colour and no cursor movement.
    pub dumb: bool,
}

impl Terminal {
    /// Reads the process's environment and stderr.
    pub fn detect() -> Self {
        Terminal {
            tty: std::io::stderr().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            dumb: std::env::var_os("TERM").is_some_and(|v| v == "dumb"),
        }
    }
}

/// How stderr is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Escape codes for colour may be written.
    pub color: bool,
    /// The live progress display (cursor movement) is shown.
    pub live: bool,
}

impl Style {
    /// `--color always` forces colour, `never` forbids it; `auto` colours a terminal unless
    /// NO_COLOR or TERM=dumb. The live display needs a terminal that is not dumb, and colour.
    pub fn choose(choice: ColorChoice, term: Terminal) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => term.tty && !term.no_color && !term.dumb,
        };
        Style {
            color,
            live: color && term.tty && !term.dumb,
        }
    }

    /// The painter for this style.
    pub fn paint(self) -> Paint {
        Paint(self.color)
    }
}

/// Colours text when colour is on; passes it through unchanged otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint(pub bool);

/// The colours used on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hue {
    /// Errors, failures.
    Red,
    /// Success.
    Green,
    /// Warnings, what is still open.
    Yellow,
    /// Hints, the spinner.
    Cyan,
    /// Details (fields, times).
    Dim,
}

impl Paint {
    /// `text` in `hue` (SGR codes) when colour is on.
    pub fn hue(self, hue: Hue, text: &str) -> String {
        let code = match hue {
            Hue::Red => "1;31",
            Hue::Green => "32",
            Hue::Yellow => "33",
            Hue::Cyan => "1;36",
            Hue::Dim => "2",
        };
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// `text` on one line with no control characters: what a CA or a file sent can neither break
/// the line nor smuggle escape codes onto the terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out.trim_end().to_owned()
}

/// The lines stderr ends with when a run fails: `acme-client: error: <one line>`, and at most one
/// `hint: <fix>` line.
pub fn error_lines(message: &str, hint: Option<&str>, paint: Paint) -> String {
    let mut out = format!(
        "acme-client: {} {}\n",
        paint.hue(Hue::Red, "error:"),
        one_line(message)
    );
    if let Some(hint) = hint {
        out.push_str(&format!(
            "{} {}\n",
            paint.hue(Hue::Cyan, "hint:"),
            one_line(hint)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTY: Terminal = Terminal {
        tty: true,
        no_color: false,
        dumb: false,
    };

    #[test]
    fn colour_and_the_live_display_follow_the_terminal_and_the_flags() {
        let pipe = Terminal { tty: false, ..TTY };
        let no_color = Terminal {
            no_color: true,
            ..TTY
        };
        let dumb = Terminal { dumb: true, ..TTY };
        let on = Style {
            color: true,
            live: true,
        };
        let off = Style {
            color: false,
            live: false,
        };
        assert_eq!(Style::choose(ColorChoice::Auto, TTY), on);
        for term in [pipe, no_color, dumb] {
            assert_eq!(Style::choose(ColorChoice::Auto, term), off, "{term:?}");
            assert_eq!(Style::choose(ColorChoice::Never, term), off, "{term:?}");
        }
        assert_eq!(Style::choose(ColorChoice::Never, TTY), off);
        // always: colour even into a pipe, but a live display only on a real terminal.
        let coloured = Style {
            color: true,
            live: false,
        };
        assert_eq!(Style::choose(ColorChoice::Always, pipe), coloured);
        assert_eq!(Style::choose(ColorChoice::Always, dumb), coloured);
        assert_eq!(Style::choose(ColorChoice::Always, no_color), on);
    }

    #[test]
    fn no_paint_no_escapes() {
        for hue in [Hue::Red, Hue::Green, Hue::Yellow, Hue::Cyan, Hue::Dim] {
            assert_eq!(Paint(false).hue(hue, "x"), "x");
        }
        assert_eq!(Paint(true).hue(Hue::Green, "x"), "\x1b[32mx\x1b[0m");
    }

    #[test]
    fn error_lines_are_one_line_and_one_hint() {
        let text = error_lines("bad\nthing \x1b[31mred", Some("do\nthis"), Paint(false));
        assert_eq!(
            text,
            "acme-client: error: bad thing \\u{1b}[31mred\nhint: do this\n"
        );
        assert_eq!(
            error_lines("x", None, Paint(false)),
            "acme-client: error: x\n"
        );
    }
}
