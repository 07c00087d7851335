//! The `acme-client` binary: parse the command line, set up stderr (colour, log format, progress
//! display), run, and turn the outcome into an exit code (documented in README.md) and, on
//! failure, `acme-client: error: <one line>` with at most one `hint: <fix>` line.

use std::process::ExitCode;
use std::sync::Arc;

use acme_client::cli::{self, Action, Cli};
use acme_client::error::exit;
use acme_client::output::{ColorChoice, Display, Style, Terminal, error_lines, log};
use clap::Parser as _;
use clap::ValueEnum as _;
use clap::error::ErrorKind;
use tracing_subscriber::layer::Layer;
use tracing_subscriber::{EnvFilter, Registry};

fn main() -> ExitCode {
    acme_client::install_crypto_provider();
    let term = Terminal::detect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let paint = Style::choose(color_in_args(), term).paint();
            let (message, hint) = clap_lines(&e.to_string());
            eprint!("{}", error_lines(&message, Some(&hint), paint));
            return ExitCode::from(exit::USAGE);
        }
    };
    let style = Style::choose(cli.color, term);
    let paint = style.paint();
    let display = Display::new(style.live, cli.quiet > 0, paint);
    init_logging(&cli, style, &display);

    let action = match cli.validate() {
        Ok(action) => action,
        Err(e) => {
            eprint!(
                "{}",
                error_lines(&e.to_string(), e.hint().as_deref(), paint)
            );
            return ExitCode::from(e.exit_code());
        }
    };
    // Generated text needs no runtime.
    let action = match action {
        Action::Completions(shell) => return print(Ok(cli::completions(shell))),
        Action::Manpage => return print(cli::manpage()),
        action => action,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            eprint!("{}", error_lines(&message, None, paint));
            return ExitCode::from(exit::LOCAL);
        }
    };
    let outcome = runtime.block_on(async {
        match action {
            Action::Issue(config) => acme_client::app::run(*config, display.clone()).await,
            Action::Revoke(config) => acme_client::commands::revoke(config).await,
            Action::Account(config) => acme_client::commands::account(config).await,
            // Printed above.
            Action::Completions(_) | Action::Manpage => Ok(()),
        }
    });
    // Every server has stopped and every file is synced: no need to wait for idle threads.
    runtime.shutdown_background();
    display.finish(outcome.is_ok());
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!(
                "{}",
                error_lines(&e.to_string(), e.hint().as_deref(), paint)
            );
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes generated text (a completion script, the manual page) to stdout.
fn print(text: std::io::Result<Vec<u8>>) -> ExitCode {
    use std::io::Write as _;
    let written = text.and_then(|text| {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&text)?;
        stdout.flush()
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // `acme-client manpage | head` is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acme-client: error: writing to stdout: {e}");
            ExitCode::from(exit::LOCAL)
        }
    }
}

/// Logs to stderr, above the live display when it shows. The level: `RUST_LOG` when set
/// (EnvFilter), else `-v`/`-q` through the plain `Targets` filter, which starts faster (no
/// directive regexes to compile); at the default level, info lines are left out while the live
/// display shows (it says what they would). The format: plain lines by default; timestamps, levels and
/// targets with `-v` or `RUST_LOG`.
fn init_logging(cli: &Cli, style: Style, display: &Arc<Display>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let writer = log::Stderr::new(display.clone());
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.is_empty());
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if cli.verbose > 0 || rust_log.is_some() {
        tracing_subscriber::fmt::layer()
            .with_ansi(style.color)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .event_format(log::Plain {
                paint: style.paint(),
            })
            .with_writer(writer)
            .boxed()
    };
    match rust_log {
        Some(directives) => {
            let filter = EnvFilter::try_new(&directives)
                .unwrap_or_else(|_| EnvFilter::new(cli.log_filter()));
            let _ = tracing_subscriber::registry()
                .with(fmt)
                .with(filter)
                .try_init();
        }
        None => {
            let default_level = cli.verbose == 0 && cli.quiet == 0;
            let display = display.clone();
            // Dynamic: asked at every event, never cached per callsite.
            let hide = tracing_subscriber::filter::dynamic_filter_fn(move |meta, _| {
                !(default_level && *meta.level() == tracing::Level::INFO && display.showing())
            });
            let _ = tracing_subscriber::registry()
                .with(fmt)
                .with(cli.log_targets())
                .with(hide)
                .try_init();
        }
    }
}

/// `--color WHEN` from the raw arguments, for a command line clap refused (so no `Cli`).
fn color_in_args() -> ColorChoice {
    let args: Vec<String> = std::env::args().collect();
    let value = args.iter().enumerate().find_map(|(i, a)| match a.as_str() {
        "--color" => args.get(i + 1).map(String::as_str),
        a => a.strip_prefix("--color="),
    });
    value
        .and_then(|v| ColorChoice::from_str(v, true).ok())
        .unwrap_or_default()
}

/// Clap's message on one line, and its tip (or where to read more) as the hint.
fn clap_lines(rendered: &str) -> (String, String) {
    let mut message = Vec::new();
    let mut tips = Vec::new();
    for line in rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
    {
        match line.strip_prefix("tip:") {
            Some(tip) => tips.push(tip.trim().to_owned()),
            None => message.push(line.trim_start_matches("error: ").to_owned()),
        }
    }
    let hint = if tips.is_empty() {
        "see acme-client --help".to_owned()
    } else {
        tips.join("; ")
    };
    (message.join(" "), hint)
}
