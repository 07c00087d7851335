//! What `--help` shows beyond the flags, and what is generated from the command line's
//! definition: the examples each command's help ends with, the shell completion scripts
//! (clap_complete) and the manual page (clap_mangen).

use std::io::{self, Write};

use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::Man;

use super::{Cli, VERSION};

/// One example: what it does (may be empty), then the command, whose lines after the first
/// continue it.
pub(super) struct Example {
    what: &'static str,
    command: &'static [&'static str],
}

// The examples use the test CA that `pebble/start` runs (from the repository root), so that each
// one works as it stands, in the order given. A unit test parses and validates every
// acme-client command in them.

pub(super) const TOP: &[Example] = &[
    Example {
        what: "Start a local test CA (Pebble), from the repository root",
        command: &["pebble/start"],
    },
    Example {
        what: "Obtain a certificate with http-01, write it into /tmp/acme-demo and exit",
        command: &[
            "acme-client http01 --dir pebble --ca-bundle pebble/certs/ca.pem --record 127.0.0.1",
            "-d demo.example.test --email admin@example.test --out /tmp/acme-demo --no-serve",
        ],
    },
    Example {
        what: "Revoke it",
        command: &[
            "acme-client revoke --dir pebble --ca-bundle pebble/certs/ca.pem",
            "--cert /tmp/acme-demo/cert.pem",
        ],
    },
    Example {
        what: "Complete commands and flags in this bash; read the manual",
        command: &["source <(acme-client completions bash)"],
    },
    Example {
        what: "",
        command: &["acme-client manpage | man -l -"],
    },
];

pub(super) const HTTP01: &[Example] = &[
    Example {
        what: "With the test CA of pebble/start: obtain a certificate, write it into /tmp/acme-demo \
               and exit",
        command: &[
            "acme-client http01 --dir pebble --ca-bundle pebble/certs/ca.pem --record 127.0.0.1",
            "-d demo.example.test --email admin@example.test --out /tmp/acme-demo --no-serve",
        ],
    },
    Example {
        what: "Serve it over HTTPS on port 5001, renewing it when due, until \
               curl http://localhost:5003/shutdown",
        command: &[
            "acme-client http01 --dir pebble --ca-bundle pebble/certs/ca.pem --record 127.0.0.1",
            "-d demo.example.test --out /tmp/acme-demo",
        ],
    },
];

pub(super) const DNS01: &[Example] = &[
    Example {
        what: "With the test CA of pebble/start: a name and its wildcard (Pebble asks our DNS \
               server on port 10053)",
        command: &[
            "acme-client dns01 --dir pebble --ca-bundle pebble/certs/ca.pem",
            "-d example.test -d '*.example.test' --out /tmp/acme-demo --no-serve",
        ],
    },
    Example {
        what: "Names whose DNS lives elsewhere: answer inside a delegated zone (the CNAMEs to \
               create are named, and checked before ordering)",
        command: &[
            "acme-client dns01 --dir letsencrypt-staging --dns-zone acme.example.net",
            "-d example.com -d '*.example.com' --out /tmp/acme-demo",
        ],
    },
];

pub(super) const DNSACCOUNT01: &[Example] = &[
    Example {
        what: "Print this account's label: its records are at _LABEL._acme-challenge.NAME",
        command: &["acme-client account --dir letsencrypt-staging --out /tmp/acme-demo --create"],
    },
    Example {
        what: "Against a CA that offers dns-account-01 (the current Pebble, listening like \
               pebble/start's; Debian's Pebble 2.4 does not offer it)",
        command: &[
            "acme-client dnsaccount01 --dir pebble --ca-bundle pebble/certs/ca.pem",
            "-d example.test -d '*.example.test' --out /tmp/acme-demo --no-serve",
        ],
    },
    Example {
        what: "Answer inside a delegated zone: create the CNAMEs it names once, then run again",
        command: &[
            "acme-client dnsaccount01 --dir letsencrypt-staging --dns-zone acme.example.net",
            "-d example.com --out /tmp/acme-demo",
        ],
    },
];

pub(super) const DNSPERSIST01: &[Example] = &[
    Example {
        what: "DNS hosted elsewhere: print the record to create once (the account is registered \
               if needed)",
        command: &[
            "acme-client account --dir letsencrypt-staging --out /tmp/acme-demo --create",
            "--persist '*.example.com'",
        ],
    },
    Example {
        what: "Then, now and at every renewal, with that record alone",
        command: &[
            "acme-client dnspersist01 --dir letsencrypt-staging --out /tmp/acme-demo",
            "-d example.com -d '*.example.com'",
        ],
    },
];

pub(super) const TLSALPN01: &[Example] = &[Example {
    what: "With the test CA of pebble/start (Pebble connects to port 5001)",
    command: &[
        "acme-client tlsalpn01 --dir pebble --ca-bundle pebble/certs/ca.pem --record 127.0.0.1",
        "-d alpn.example.test --out /tmp/acme-demo --no-serve",
    ],
}];

pub(super) const REVOKE: &[Example] = &[
    Example {
        what: "With the test CA of pebble/start, after acme-client http01 ... --out /tmp/acme-demo: \
               sign with the account key (account.pem beside the certificate)",
        command: &[
            "acme-client revoke --dir pebble --ca-bundle pebble/certs/ca.pem",
            "--cert /tmp/acme-demo/cert.pem --reason superseded",
        ],
    },
    Example {
        what: "Or sign with the certificate's own key, which works without the account",
        command: &[
            "acme-client revoke --dir pebble --ca-bundle pebble/certs/ca.pem",
            "--cert /tmp/acme-demo/cert.pem --key /tmp/acme-demo/key.pem --reason keyCompromise",
        ],
    },
];

pub(super) const ACCOUNT: &[Example] = &[
    Example {
        what: "With the test CA of pebble/start: show the account whose key is \
               /tmp/acme-demo/account.pem",
        command: &[
            "acme-client account --dir pebble --ca-bundle pebble/certs/ca.pem --out /tmp/acme-demo",
        ],
    },
    Example {
        what: "Set its contacts",
        command: &[
            "acme-client account --dir pebble --ca-bundle pebble/certs/ca.pem --out /tmp/acme-demo",
            "--email ops@example.test --email admin@example.test",
        ],
    },
    Example {
        what: "Roll it over to a new key (created in /tmp/acme-demo/new-account.pem)",
        command: &[
            "acme-client account --dir pebble --ca-bundle pebble/certs/ca.pem --out /tmp/acme-demo",
            "--rollover /tmp/acme-demo/new-account.pem",
        ],
    },
];

pub(super) const COMPLETIONS: &[Example] = &[
    Example {
        what: "Bash, in the running shell",
        command: &["source <(acme-client completions bash)"],
    },
    Example {
        what: "Bash, for good (bash-completion loads it when acme-client is first completed)",
        command: &["mkdir -p ~/.local/share/bash-completion/completions"],
    },
    Example {
        what: "",
        command: &[
            "acme-client completions bash > ~/.local/share/bash-completion/completions/acme-client",
        ],
    },
    Example {
        what: "Zsh: a directory early in $fpath (fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc)",
        command: &["mkdir -p ~/.zfunc && acme-client completions zsh > ~/.zfunc/_acme-client"],
    },
    Example {
        what: "Fish",
        command: &[
            "mkdir -p ~/.config/fish/completions &&",
            "acme-client completions fish > ~/.config/fish/completions/acme-client.fish",
        ],
    },
];

pub(super) const MANPAGE: &[Example] = &[
    Example {
        what: "Read it",
        command: &["acme-client manpage | man -l -"],
    },
    Example {
        what: "Install it for man acme-client (man finds ~/.local/share/man when ~/.local/bin is \
               in PATH)",
        command: &["mkdir -p ~/.local/share/man/man1"],
    },
    Example {
        what: "",
        command: &["acme-client manpage > ~/.local/share/man/man1/acme-client.1"],
    },
];

/// The examples as `--help` ends with them: a styled heading, each one's line of explanation as
/// a shell comment, and its command with continuation lines.
pub(super) fn examples(list: &[Example]) -> String {
    let heading = *clap::builder::Styles::default().get_header();
    let mut text = format!("{heading}Examples:{heading:#}\n");
    for example in list {
        for line in wrap(example.what, 96) {
            text.push_str(&format!("  # {line}\n"));
        }
        text.push_str(&format!("  {}\n", example.command.join(" \\\n      ")));
    }
    text
}

/// `text` in lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// The completion script for `shell`, generated from the command line's definition.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "acme-client", &mut script);
    if shell == Shell::Bash {
        // clap_complete (4.6.12) spells the bash states of a hyphenated name one way where it
        // finds the command and another where it completes it, so nothing after the command
        // would complete (clap-rs/clap#6421). One spelling; a no-op once that is fixed.
        return String::from_utf8_lossy(&script)
            .replace("acme__subcmd__client", "acme__client")
            .into_bytes();
    }
    script
}

/// The manual page (roff), generated from the command line's definition: one page with the top
/// command's sections, then a section for each command (synopsis, description, flags in their
/// groups, examples), so that `man acme-client` has it all.
pub fn manpage() -> io::Result<Vec<u8>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let top = Man::new(cmd.clone());
    let mut page = roff::Roff::new().render();
    // No date, so that a build always prints the same page: the version says which build.
    // Flags and URLs read better unhyphenated and left-aligned.
    page += &format!(
        ".TH ACME-CLIENT 1 \"\" \"acme-client {VERSION}\" \"User Commands\"\n.nh\n.ad l\n"
    );
    page += &piece(|w| top.render_name_section(w))?;
    page += &piece(|w| top.render_synopsis_section(w))?;
    page += &piece(|w| top.render_description_section(w))?;
    page += &piece(|w| top.render_options_section(w))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // -h, -v and -q are the same everywhere: described once, above.
        let man = Man::new(sub.clone().mut_args(|arg| {
            let help = matches!(
                arg.get_action(),
                clap::ArgAction::Help | clap::ArgAction::HelpShort | clap::ArgAction::HelpLong
            );
            let everywhere = help || arg.is_global_set();
            arg.hide(everywhere)
        }));
        let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
        page += &format!(".SH \"{}\"\n", name.to_uppercase());
        // The synopsis and the description open the command's section without headings;
        // its groups of flags and its examples are subsections.
        page += without_heading(&piece(|w| man.render_synopsis_section(w))?);
        page += ".PP\n";
        page += without_heading(&piece(|w| man.render_description_section(w))?);
        for line in piece(|w| man.render_options_section(w))?.lines() {
            match line.strip_prefix(".SH ") {
                Some(group) => page += &format!(".SS {group}\n"),
                None => page += &format!("{line}\n"),
            }
        }
        page += &examples_roff(sub, "SS")?;
    }
    page += &examples_roff(&cmd, "SH")?;
    page += &piece(|w| top.render_version_section(w))?;
    Ok(page.into_bytes())
}

/// One rendered piece of the page, without the preamble (the apostrophe string) that each
/// piece starts with: the page has it once, at the top.
fn piece(render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<String> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let preamble = roff::Roff::new().render();
    Ok(text.strip_prefix(&preamble).unwrap_or(&text).to_owned())
}

/// A rendered section without its `.SH` line.
fn without_heading(section: &str) -> &str {
    match section.strip_prefix(".SH ") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body),
        None => section,
    }
}

/// A command's examples (its `--help` ends with them) as a section of the page: the lines as
/// they are, in no-fill mode, so that the commands keep their lines and can be copied.
fn examples_roff(cmd: &clap::Command, heading: &str) -> io::Result<String> {
    let Some(text) = cmd.get_after_help().map(ToString::to_string) else {
        return Ok(String::new());
    };
    let mut roff = roff::Roff::new();
    roff.control(heading, ["EXAMPLES"])
        .control("PP", [])
        .control("nf", [])
        .control("RS", ["4"]);
    for line in text.lines().skip_while(|l| l.trim() == "Examples:") {
        roff.text([roff::roman(line.strip_prefix("  ").unwrap_or(line))]);
    }
    roff.control("RE", []).control("fi", []);
    piece(|w| roff.to_writer(w))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// Every acme-client command in the examples, as its arguments: comments skipped,
    /// continuation lines joined, cut at a pipe, a redirection or a closing parenthesis, quotes
    /// removed.
    fn example_commands(cmd: &clap::Command) -> Vec<Vec<String>> {
        let text = cmd
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        let joined = text.replace(" \\\n", " ");
        joined
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.find("acme-client ").map(|at| &line[at..]))
            .map(|command| {
                let end = command.find(['|', '>', ')', '&']).unwrap_or(command.len());
                command[..end]
                    .split_whitespace()
                    .map(|word| word.trim_matches('\'').to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_command_has_examples_that_parse_and_validate() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut commands = example_commands(&cmd);
        assert!(!commands.is_empty(), "the top --help has no examples");
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let found = example_commands(sub);
            assert!(
                found
                    .iter()
                    .any(|argv| argv.get(1).map(String::as_str) == Some(sub.get_name())),
                "acme-client {} --help has no example of it",
                sub.get_name()
            );
            commands.extend(found);
        }
        // Validation reads --ca-bundle pebble/certs/ca.pem: tests run in the package root.
        for argv in commands {
            let parsed =
                Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
            if let Err(e) = parsed.validate() {
                panic!("{}: {e}", argv.join(" "));
            }
        }
    }

    #[test]
    fn the_manual_has_every_command_and_its_examples() {
        let page = String::from_utf8(manpage().unwrap()).unwrap();
        assert!(page.contains("\n.TH ACME-CLIENT 1 "), "{page}");
        let cmd = Cli::command();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let heading = format!("\n.SH \"ACME-CLIENT {}\"\n", sub.get_name().to_uppercase());
            assert!(page.contains(&heading), "no {heading:?}");
        }
        assert!(page.contains("\\-\\-email"));
        assert!(page.contains("pebble/start"));
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble");
    }
}
