//! Tests of the command line: parsing, validation and the messages of refused values.

use super::config::*;
use super::presets::*;
use super::*;
use crate::error::{Error, Result};
use crate::names::normalize_name;

#[test]
fn names_are_normalised() {
    assert_eq!(normalize_name("Example.TEST.").unwrap(), "example.test");
    assert_eq!(normalize_name("*.example.test").unwrap(), "*.example.test");
    assert_eq!(
        normalize_name("xn--bcher-kva.example").unwrap(),
        "xn--bcher-kva.example"
    );
    // Internationalised names become A-labels (UTS 46 maps case too).
    assert_eq!(
        normalize_name("Bücher.example").unwrap(),
        "xn--bcher-kva.example"
    );
    assert_eq!(
        normalize_name("*.bücher.example.").unwrap(),
        "*.xn--bcher-kva.example"
    );
}

#[test]
fn bad_names_are_refused_with_a_reason() {
    for (name, why) in [
        ("", "empty"),
        ("localhost", "single label"),
        ("a..b", "empty label"),
        ("-a.test", "hyphen"),
        ("a_b.test", "'_'"),
        ("a.*.test", "whole first label"),
        ("**.test", "whole first label"),
        ("127.0.0.1", "IP address"),
        ("1.2.3.4.5", "all digits"),
        ("bü_cher.example", "internationalised"),
    ] {
        let err = normalize_name(name).unwrap_err();
        assert!(err.contains(why), "{name}: {err}");
    }
    assert!(normalize_name(&format!("{}.test", "a".repeat(64))).is_err());
    let long = vec!["a".repeat(60); 5].join(".");
    assert!(normalize_name(&long).unwrap_err().contains("253"));
}

fn cli(args: &[&str]) -> Result<Config> {
    let mut argv = vec!["acme-client"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().validate()? {
        Action::Issue(config) => Ok(*config),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wildcards_only_with_dns01() {
    let base = [
        "--dir",
        "https://127.0.0.1:14000/dir",
        "--record",
        "127.0.0.1",
    ];
    let mut http = vec!["http01"];
    http.extend(base);
    http.extend(["--domain", "*.example.test"]);
    assert!(matches!(cli(&http), Err(Error::Usage(m)) if m.contains("wildcard")));
    let mut dns = vec!["dns01"];
    dns.extend(base);
    dns.extend([
        "--domain",
        "*.example.test",
        "--domain",
        "EXAMPLE.test",
        "--domain",
        "example.test.",
    ]);
    let config = cli(&dns).unwrap();
    assert_eq!(config.names, ["*.example.test", "example.test"]);
}

#[test]
fn directory_presets_map_to_the_real_urls() {
    for (name, url) in [
        (
            "letsencrypt",
            "https://acme-v02.api.letsencrypt.org/directory",
        ),
        (
            "letsencrypt-staging",
            "https://acme-staging-v02.api.letsencrypt.org/directory",
        ),
        ("zerossl", "https://acme.zerossl.com/v2/DV90"),
        ("buypass", "https://api.buypass.com/acme/directory"),
        (
            "buypass-test",
            "https://api.test4.buypass.no/acme/directory",
        ),
        ("google", "https://dv.acme-v02.api.pki.goog/directory"),
        (
            "google-test",
            "https://dv.acme-v02.test-api.pki.goog/directory",
        ),
        ("pebble", "https://localhost:14000/dir"),
    ] {
        assert_eq!(validate_dir(name).unwrap(), url, "{name}");
    }
    assert_eq!(DIRECTORY_PRESETS.len(), 8);
    // Every preset is named in --help.
    for (name, _) in DIRECTORY_PRESETS {
        assert!(DIR_HELP.contains(name), "{name} missing from --help");
    }
    assert!(validate_dir("letsencrypt2").is_err());
}

#[test]
fn ip_identifiers_rfc8738() {
    let base = ["--dir", "pebble", "--record", "127.0.0.1"];
    let mut http = vec!["http01"];
    http.extend(base);
    http.extend([
        "--domain",
        "127.0.0.1",
        "--domain",
        "2001:DB8::0:1",
        "--domain",
        "a.test",
    ]);
    assert_eq!(
        cli(&http).unwrap().names,
        ["127.0.0.1", "2001:db8::1", "a.test"]
    );
    let mut dns = vec!["dns01"];
    dns.extend(base);
    dns.extend(["--domain", "127.0.0.1"]);
    assert!(matches!(cli(&dns), Err(Error::Usage(m)) if m.contains("RFC 8738")));
}

#[test]
fn eab_and_contacts_are_checked() {
    let base = [
        "http01",
        "--dir",
        "pebble",
        "--record",
        "127.0.0.1",
        "--domain",
        "a.test",
    ];
    let with = |more: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(more);
        cli(&v)
    };
    let ok = with(&[
        "--eab-kid",
        "kid-1",
        "--eab-hmac-key",
        "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    ])
    .unwrap();
    assert_eq!(ok.eab.unwrap().hmac_key.len(), 48);
    assert!(matches!(
        with(&["--eab-kid", "k", "--eab-hmac-key", "not base64!"]),
        Err(Error::Usage(_))
    ));
    assert!(
        matches!(with(&["--contact", "admin@example.com"]), Err(Error::Usage(m)) if m.contains("mailto:"))
    );
    assert_eq!(
        with(&["--contact", "mailto:a@b.test"]).unwrap().contacts,
        ["mailto:a@b.test"]
    );
}

#[test]
fn short_d_is_domain_on_every_issuing_command() {
    let config = cli(&[
        "http01", "--dir", "pebble", "-d", "a.test", "--domain", "b.test", "-d", "c.test",
    ])
    .unwrap();
    assert_eq!(config.names, ["a.test", "b.test", "c.test"]);
    // Every command that takes names (those added later too) takes -d, and every one that
    // takes --contact takes --email.
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut issuing = 0;
    for sub in cmd.get_subcommands() {
        let arg = |id: &str| sub.get_arguments().find(|a| a.get_id() == id);
        if let Some(domains) = arg("domains") {
            issuing += 1;
            assert_eq!(domains.get_short(), Some('d'), "{}", sub.get_name());
            assert_eq!(domains.get_long(), Some("domain"), "{}", sub.get_name());
        }
        if arg("contact").is_some() {
            assert!(arg("email").is_some(), "{} lacks --email", sub.get_name());
        }
    }
    assert!(issuing >= 3);
}

#[test]
fn email_is_a_mailto_contact() {
    let config = cli(&[
        "http01",
        "--dir",
        "pebble",
        "-d",
        "a.test",
        "--contact",
        "mailto:a@example.test",
        "--email",
        "b@example.test",
        "--email",
        "c.d+tag@sub.example.test",
    ])
    .unwrap();
    assert_eq!(
        config.contacts,
        [
            "mailto:a@example.test",
            "mailto:b@example.test",
            "mailto:c.d+tag@sub.example.test"
        ]
    );
    let account = |more: &[&str]| {
        let mut argv = vec!["acme-client", "account", "--dir", "pebble"];
        argv.extend_from_slice(more);
        Cli::try_parse_from(argv).unwrap().validate()
    };
    match account(&["--email", "ops@example.test"]).unwrap() {
        Action::Account(config) => assert_eq!(config.contacts, ["mailto:ops@example.test"]),
        other => panic!("{other:?}"),
    }
    for (bad, why) in [
        ("admin", "one @"),
        ("admin@", "one @"),
        ("@example.test", "one @"),
        ("a@b@example.test", "one @"),
        ("admin@.example.test", "one @"),
        ("admin @example.test", "a space"),
        ("a@example.test,b@example.test", "a list separator"),
        ("a@example.test;b@example.test", "a list separator"),
        ("a@example.test?subject=x", "'?'"),
        ("mailto:a@example.test", "is a URL"),
        ("", "one @"),
    ] {
        for err in [
            cli(&["http01", "--dir", "pebble", "-d", "a.test", "--email", bad]).map(|_| ()),
            account(&["--email", bad]).map(|_| ()),
        ] {
            match err {
                Err(Error::Usage(m)) => {
                    assert!(m.starts_with(&format!("--email {bad:?} ")), "{m}");
                    assert!(m.contains(why), "{bad:?}: {m}");
                    assert!(!m.contains('\n'), "{m}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn misspelled_presets_get_the_closest_one() {
    for (typo, preset) in [
        ("letsencrypt-stagign", "letsencrypt-staging"),
        ("letsencrypt_staging", "letsencrypt-staging"),
        ("lets-encrypt-staging", "letsencrypt-staging"),
        ("letsencrypt-stage", "letsencrypt-staging"),
        ("LetsEncrypt", "letsencrypt"),
        ("letsencrypt2", "letsencrypt"),
        ("letsencript", "letsencrypt"),
        ("pebbel", "pebble"),
        ("zerosl", "zerossl"),
        ("googel-test", "google-test"),
        ("buypass-tst", "buypass-test"),
    ] {
        let err = validate_dir(typo).unwrap_err().to_string();
        assert!(
            err.contains(&format!("did you mean `{preset}`?")),
            "{typo}: {err}"
        );
    }
    // What looks like a host gets the scheme it lacks.
    for (raw, url) in [
        ("localhost:14000/dir", "https://localhost:14000/dir"),
        (
            "acme.example.test/directory",
            "https://acme.example.test/directory",
        ),
    ] {
        let err = validate_dir(raw).unwrap_err().to_string();
        assert!(
            err.contains(&format!("did you mean {url}?")),
            "{raw}: {err}"
        );
    }
    // Anything else is told what is accepted.
    for raw in ["nonsense", "staging", "", "-"] {
        let err = validate_dir(raw).unwrap_err().to_string();
        assert!(
            err.contains("neither a URL nor a preset name"),
            "{raw}: {err}"
        );
        for (name, _) in DIRECTORY_PRESETS {
            assert!(err.contains(name), "{raw}: {err}");
        }
        assert!(!err.contains("relative URL"), "{err}");
    }
}

#[test]
fn dir_must_be_https() {
    for dir in ["http://127.0.0.1:14000/dir", "not a url", "ftp://x/dir"] {
        let err = cli(&[
            "http01",
            "--dir",
            dir,
            "--record",
            "127.0.0.1",
            "--domain",
            "a.test",
        ]);
        assert!(matches!(err, Err(Error::Usage(_))), "{dir}");
    }
}

#[test]
fn clashing_ports_are_refused() {
    let err = cli(&[
        "http01",
        "--dir",
        "https://ca/dir",
        "--record",
        "127.0.0.1",
        "--domain",
        "a.test",
        "--http-port",
        "5001",
    ]);
    assert!(matches!(err, Err(Error::Usage(m)) if m.contains("--http-port and --https-port")));
}
