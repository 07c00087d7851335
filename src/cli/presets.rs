//! `--dir` by name: the well-known ACME directories, and what a value that is neither a preset
//! nor a URL most likely meant ("did you mean").

use crate::error::{Error, Result};

/// Well-known ACME directories, usable by name with `--dir`.
pub const DIRECTORY_PRESETS: &[(&str, &str)] = &[
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
];

/// The public CA preset whose directory `dir` is, if any (Pebble is not public).
pub fn public_ca(dir: &str) -> Option<&'static str> {
    DIRECTORY_PRESETS
        .iter()
        .find(|(name, url)| *url == dir && *name != "pebble")
        .map(|(name, _)| *name)
}

/// `--dir` as a directory URL: a preset's, or an https URL. A value that is neither gets the
/// likeliest meaning in its message: the closest preset name, or the URL it lacks a scheme for.
pub(super) fn validate_dir(raw: &str) -> Result<String> {
    if let Some((_, url)) = DIRECTORY_PRESETS.iter().find(|(name, _)| *name == raw) {
        return Ok((*url).to_owned());
    }
    // `localhost:14000/dir` parses as a URL with the scheme `localhost`: no `://`, no URL meant.
    let url = match reqwest::Url::parse(raw) {
        Ok(url) if raw.contains("://") => url,
        _ => return Err(Error::Usage(not_a_dir(raw))),
    };
    if url.scheme() != "https" || url.host().is_none() {
        return Err(Error::Usage(format!(
            "--dir {raw:?} must be an https:// URL with a host (RFC 8555 §6.1 requires HTTPS)"
        )));
    }
    Ok(url.to_string())
}

/// The message for a `--dir` that is neither a preset name nor a URL.
pub(super) fn not_a_dir(raw: &str) -> String {
    let with_scheme = format!("https://{raw}");
    let host_and_path = raw.contains(['.', '/', ':'])
        && reqwest::Url::parse(&with_scheme).is_ok_and(|url| url.host().is_some());
    match closest_preset(raw) {
        // A slip of a letter or two is a preset; otherwise what looks like a host is a URL.
        Some((preset, edits)) if edits <= 2 || !host_and_path => {
            return format!(
                "--dir {raw:?} is not a preset name or a URL; did you mean `{preset}`?"
            );
        }
        _ if host_and_path => {
            return format!("--dir {raw:?} is not a URL; did you mean {with_scheme}?");
        }
        _ => {}
    }
    let presets: Vec<&str> = DIRECTORY_PRESETS.iter().map(|(name, _)| *name).collect();
    format!(
        "--dir {raw:?} is neither a URL nor a preset name; give the CA's directory URL \
         (https://...) or one of: {}",
        presets.join(", ")
    )
}

/// The preset name `raw` most likely misspells, if any is close enough: a few typed letters
/// off, or a similar spelling (Jaro-Winkler, as clap suggests flags), case aside. With the
/// number of edits (Damerau-Levenshtein) between them.
pub(super) fn closest_preset(raw: &str) -> Option<(&'static str, usize)> {
    let raw = raw.to_ascii_lowercase();
    DIRECTORY_PRESETS
        .iter()
        .map(|(name, _)| {
            let edits = strsim::damerau_levenshtein(&raw, name);
            let likeness = strsim::jaro_winkler(&raw, name);
            (*name, edits, likeness)
        })
        .filter(|(_, edits, likeness)| *edits <= 2 || *likeness >= 0.85)
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(name, edits, _)| (name, edits))
}
