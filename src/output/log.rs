//! The log on stderr. By default plain lines: the message and its fields, `warning:` / `error:`
//! before the serious ones, no timestamp and no module path. With `-v` (or `RUST_LOG`) the
//! detailed format: timestamps, levels, targets. Colour only when the [`Style`](super::Style)
//! allows; while the live display runs, each line is written above it.

use std::fmt::{self, Write as _};
use std::io;

use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::{Display, Hue, Paint, one_line};

/// The plain format of the default level.
#[derive(Debug, Clone, Copy)]
pub struct Plain {
    pub paint: Paint,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let prefix = if level == Level::ERROR {
            format!("{} ", self.paint.hue(Hue::Red, "error:"))
        } else if level == Level::WARN {
            format!("{} ", self.paint.hue(Hue::Yellow, "warning:"))
        } else {
            String::new()
        };
        let rest = if fields.rest.is_empty() {
            String::new()
        } else {
            self.paint.hue(Hue::Dim, &one_line(&fields.rest))
        };
        writeln!(writer, "{prefix}{}{rest}", one_line(&fields.message))
    }
}

/// An event's message, and its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

/// Writes log lines to stderr, above the live display while it shows.
#[derive(Clone)]
pub struct Stderr {
    display: Arc<Display>,
}

impl Stderr {
    /// Lines go above `display` while it shows.
    pub fn new(display: Arc<Display>) -> Self {
        Stderr { display }
    }
}

/// One event's bytes, written at once.
pub struct Line<'a>(&'a Stderr);

impl io::Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .display
            .above(|| io::Write::write_all(&mut io::stderr().lock(), buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(paint: Paint, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let sink = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(Plain { paint })
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_lines_have_no_timestamp_no_target_and_no_escapes() {
        let text = logged(Paint(false), || {
            tracing::info!(path = "out/account.pem", n = 3, "new account key written");
            tracing::warn!(error = %"boom", "the CA asks to slow down");
            tracing::error!("a \x1b[31mred\x1b[0m message\nover two lines");
        });
        assert_eq!(
            text,
            "new account key written path=out/account.pem n=3\n\
             warning: the CA asks to slow down error=boom\n\
             error: a \\u{1b}[31mred\\u{1b}[0m message over two lines\n"
        );
    }

    #[test]
    fn colour_marks_the_level_and_dims_the_fields() {
        let text = logged(Paint(true), || tracing::warn!(k = 1, "slow"));
        assert_eq!(text, "\x1b[33mwarning:\x1b[0m slow\x1b[2m k=1\x1b[0m\n");
    }
}
