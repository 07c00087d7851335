//! The `acme-client` binary: parse the command line, set up logging, run, and turn the outcome
//! into one clear message and an exit code (documented in README.md).

use std::process::ExitCode;

use acme_client::cli::{self, Action, Cli};
use acme_client::error::exit;
use clap::Parser as _;
use clap::error::ErrorKind;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    acme_client::install_crypto_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "acme-client: {} (see acme-client --help)",
                one_line(&e.to_string())
            );
            return ExitCode::from(exit::USAGE);
        }
    };
    init_logging(&cli);

    let action = match cli.validate() {
        Ok(action) => action,
        Err(e) => {
            eprintln!("acme-client: {e}");
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
            eprintln!("acme-client: cannot start the async runtime: {e}");
            return ExitCode::from(exit::LOCAL);
        }
    };
    let outcome = runtime.block_on(async {
        match action {
            Action::Issue(config) => acme_client::app::run(*config).await,
            Action::Revoke(config) => acme_client::commands::revoke(config).await,
            Action::Account(config) => acme_client::commands::account(config).await,
            // Printed above.
            Action::Completions(_) | Action::Manpage => Ok(()),
        }
    });
    // Every server has stopped and every file is synced: no need to wait for idle threads.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acme-client: error: {e}");
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

/// Logs to stderr: `RUST_LOG` when set (EnvFilter), else the level from `-v`/`-q` through the
/// plain `Targets` filter, which starts faster (no directive regexes to compile).
fn init_logging(cli: &Cli) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => {
            let filter = EnvFilter::try_new(&directives)
                .unwrap_or_else(|_| EnvFilter::new(cli.log_filter()));
            let _ = tracing_subscriber::registry()
                .with(fmt)
                .with(filter)
                .try_init();
        }
        _ => {
            let _ = tracing_subscriber::registry()
                .with(fmt)
                .with(cli.log_targets())
                .try_init();
        }
    }
}

/// Folds clap's multi-line message into one line, without its usage and help hints.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}
