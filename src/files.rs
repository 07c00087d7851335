//! The certificate's files in `--out`, replaced as one set (SPEC §6 "Files"), and the single-file
//! atomic replace used for `account.pem`. `cert.rs` makes the PEM text; this module owns where it
//! goes and in what order.
//!
//! ```text
//! --out/.sets/7-1f2e…/  key.pem cert.pem chain.pem fullchain.pem meta.json   one issuance
//! --out/live          -> .sets/7-1f2e…                                          the current one
//! --out/cert.pem      -> live/cert.pem    (likewise key.pem, chain.pem, fullchain.pem)
//! ```
//!
//! A set is written and synced under a `.partial-` name, then renamed complete; only then does
//! `live` move to it, by renaming a fresh symlink over `live`. That one rename switches every file
//! at once: a reader, or the next run after a crash at any point, sees the whole old set or the
//! whole new one. A set directory never changes once complete, except `meta.json`, which is
//! itself replaced atomically by [`mark_revoked`].

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _, symlink};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::cert::Files;
use crate::error::{Error, Result, io_err};

const KEY: &str = "key.pem";
const CERT: &str = "cert.pem";
const CHAIN: &str = "chain.pem";
const FULLCHAIN: &str = "fullchain.pem";
/// The names the user reads, in this order everywhere.
const NAMES: [&str; 4] = [KEY, CERT, CHAIN, FULLCHAIN];
const META: &str = "meta.json";
const LIVE: &str = "live";
const SETS: &str = ".sets";
const PARTIAL: &str = ".partial-";

/// What a set records beside its PEM files, in `meta.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SetMeta {
    /// Lowercase hex, as [`crate::cert::CertInfo::serial`].
    pub serial: String,
    /// The ACME profile the certificate was ordered with.
    pub profile: Option<String>,
    /// The CA directory it came from.
    pub dir_url: String,
    /// Set by [`mark_revoked`].
    pub revoked: bool,
}

/// The files of a newly issued certificate, to be written as one set.
pub struct NewSet<'a> {
    /// None: the CSR was the user's (`--csr`), so there is no key.pem in the set.
    pub key_pem: Option<&'a str>,
    pub cert_pem: &'a str,
    pub chain_pem: &'a str,
    pub fullchain_pem: &'a str,
    pub meta: SetMeta,
}

/// The set `--out` holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentSet {
    /// None when the set has no key.
    pub key_pem: Option<Vec<u8>>,
    pub fullchain_pem: Vec<u8>,
    /// None for the old plain-file layout (no meta.json), or an unreadable meta.json.
    pub meta: Option<SetMeta>,
}

/// Writes the set and switches `--out` to it in one rename; returns the paths the user reads.
/// A file behind a symlink the user made (`cert.pem -> /etc/nginx/site.pem`) is rewritten after
/// the switch, atomically on its own: it is outside the one-rename guarantee.
pub fn write_set(out: &Path, set: &NewSet<'_>) -> Result<Files> {
    write_set_with(out, set, &mut Crash::default())
}

/// The set `--out` currently holds (through `live`, or the old plain-file layout), None if there is
/// none.
pub fn read_current(out: &Path) -> Result<Option<CurrentSet>> {
    // `live` is resolved once, so both files come from the same set even if it moves meanwhile.
    let live = live_dir(out)?;
    let dir = live.as_deref().unwrap_or(out);
    let Some(fullchain_pem) = read_if_there(&dir.join(FULLCHAIN))? else {
        return Ok(None);
    };
    let key_pem = read_if_there(&dir.join(KEY))?;
    let meta = match &live {
        Some(dir) => read_meta(dir)?,
        None => None,
    };
    Ok(Some(CurrentSet {
        key_pem,
        fullchain_pem,
        meta,
    }))
}

/// Marks the current set revoked if its serial is `serial` (an atomic rewrite of its meta.json).
/// Returns whether it matched.
pub fn mark_revoked(out: &Path, serial: &str) -> Result<bool> {
    let Some(dir) = live_dir(out)? else {
        return Ok(false);
    };
    let Some(mut meta) = read_meta(&dir)? else {
        return Ok(false);
    };
    if same_serial(&meta.serial, serial) {
        if !meta.revoked {
            meta.revoked = true;
            let path = dir.join(META);
            let perms = Perms::like(&path, 0o644)?;
            replace(&path, &meta_json(&meta)?, perms)?;
        }
        return Ok(true);
    }
    Ok(false)
}

/// Checks that `dir` exists (creating it), that a file and a symlink can be created in it, and
/// that nothing in it is in the way of the files, before any network traffic.
pub fn check_out_dir(dir: &Path) -> Result<()> {
    if let Some(file) = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| a.exists() && !a.is_dir())
    {
        let what = if file == dir {
            format!("--out {} is a file, not a directory", dir.display())
        } else {
            format!(
                "--out {}: {} is a file, not a directory",
                dir.display(),
                file.display()
            )
        };
        return Err(Error::Usage(what).with_hint(
            "give --out a directory for the certificate files (it is created if missing)",
        ));
    }
    fs::create_dir_all(dir).map_err(io_err("create the --out directory", dir))?;
    let probe_name = format!(".acme-client-probe-{}", std::process::id());
    let probe = dir.join(&probe_name);
    fs::write(&probe, b"").map_err(io_err("write into the --out directory", dir))?;
    let link = dir.join(format!("{probe_name}-link"));
    let linked = symlink(&probe_name, &link);
    let _ = fs::remove_file(&link);
    let _ = fs::remove_file(&probe);
    linked.map_err(io_err(
        "create a symlink (the files are symlinks into --out/live) in the --out directory",
        dir,
    ))?;
    for name in NAMES {
        classify(dir, name)?;
    }
    live_dir(dir).map(drop)
}

/// Writes `bytes` to `path` so that no reader ever sees a partial file: a synced temporary file
/// renamed over it, then the directory synced. A symlink at `path` is followed; an existing file's
/// owner, group and mode are kept, except that a private `mode` (no group or other bits, as 0600
/// for a key) also strips those bits from the kept mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let target = resolve(path)?;
    let perms = Perms::like(&target, mode)?;
    replace(&target, bytes, perms)
}

/// The points where a write can be cut short. Tests stop a write at each in turn, as a crash
/// (SIGKILL, power loss) would: nothing after that point happens and nothing is cleaned up.
#[derive(Default)]
struct Crash {
    #[cfg(test)]
    after: Option<usize>,
}

impl Crash {
    fn point(&mut self) -> Result<()> {
        #[cfg(test)]
        if let Some(left) = &mut self.after {
            if *left == 0 {
                return Err(Error::Local("simulated crash".into()));
            }
            *left -= 1;
        }
        Ok(())
    }
}

/// The steps, each a crash point: old layout adopted if any; the set built complete; missing
/// names linked to `live`; `live` switched; a keyless set's key.pem removed; the user's files
/// rewritten; old sets pruned.
fn write_set_with(out: &Path, set: &NewSet<'_>, crash: &mut Crash) -> Result<Files> {
    fs::create_dir_all(out).map_err(io_err("create the --out directory", out))?;
    let mut entries = classify_all(out)?;
    clean_leftovers(out, crash)?;
    if entries.contains(&Entry::Plain) {
        adopt(out, &entries, crash)?;
        entries = classify_all(out)?;
    }
    let before = live_dir(out)?;

    let texts = [
        set.key_pem,
        Some(set.cert_pem),
        Some(set.chain_pem),
        Some(set.fullchain_pem),
    ];
    let mut files = Vec::new();
    for ((name, text), entry) in NAMES.into_iter().zip(texts).zip(&entries) {
        let Some(text) = text else { continue };
        // The user's file, or else this file of the set it replaces, lends its owner and mode.
        let source = match entry {
            Entry::User(target) => Some(target.clone()),
            _ => before.as_ref().map(|dir| dir.join(name)),
        };
        files.push(SetFile {
            name,
            bytes: Cow::Borrowed(text.as_bytes()),
            perms: perms_from(source.as_deref(), default_mode(name))?,
        });
    }
    files.push(SetFile {
        name: META,
        bytes: Cow::Owned(meta_json(&set.meta)?),
        perms: perms_from(before.as_ref().map(|d| d.join(META)).as_deref(), 0o644)?,
    });
    let name = build_set(out, &label(&set.meta.serial), &files, crash)?;

    // Our symlinks for names that have none yet: until the swap they show the old set, or nothing.
    for (name, entry) in NAMES.into_iter().zip(&entries) {
        if *entry == Entry::Missing && files.iter().any(|f| f.name == name) {
            point(out, name, &Path::new(LIVE).join(name), crash)?;
        }
    }
    swap_live(out, &name, crash)?;

    // The user's CSR: the swap left key.pem pointing at nothing (or at a file of the user's);
    // remove it, so no key.pem, old or dangling, stands beside the new certificate.
    if set.key_pem.is_none() && entries[0] != Entry::Missing {
        let key = out.join(KEY);
        fs::remove_file(&key).map_err(io_err("remove", &key))?;
        crash.point()?;
        sync_dir(out)?;
        crash.point()?;
    }
    write_user_targets(&entries, &files, crash)?;
    let previous = before.as_deref().and_then(Path::file_name);
    prune(out, &name, previous.and_then(|p| p.to_str()), crash)?;

    let file = |name: &str| out.join(name);
    Ok(Files {
        key: set.key_pem.map(|_| file(KEY)),
        cert: file(CERT),
        chain: file(CHAIN),
        fullchain: file(FULLCHAIN),
    })
}

/// The old layout (regular files in `--out`) becomes a set first, with the same bytes, owner,
/// group and mode; `live` moves to it; then each regular file is replaced by our symlink. Every
/// name shows the same bytes throughout, so the real switch that follows is again one rename.
fn adopt(out: &Path, entries: &[Entry], crash: &mut Crash) -> Result<()> {
    let before = live_dir(out)?;
    let mut files = Vec::new();
    for (name, entry) in NAMES.into_iter().zip(entries) {
        if *entry == Entry::Missing {
            continue;
        }
        let path = out.join(name);
        let Some(bytes) = read_if_there(&path)? else {
            continue;
        };
        files.push(SetFile {
            name,
            bytes: Cow::Owned(bytes),
            perms: Perms::like(&path, default_mode(name))?,
        });
    }
    if let Some(dir) = &before {
        let path = dir.join(META);
        if let Some(bytes) = read_if_there(&path)? {
            let perms = Perms::like(&path, 0o644)?;
            files.push(SetFile {
                name: META,
                bytes: Cow::Owned(bytes),
                perms,
            });
        }
    }
    let name = build_set(out, "adopted", &files, crash)?;
    swap_live(out, &name, crash)?;
    for (name, entry) in NAMES.into_iter().zip(entries) {
        if *entry == Entry::Plain {
            point(out, name, &Path::new(LIVE).join(name), crash)?;
        }
    }
    sync_dir(out)?;
    crash.point()
}

/// One file of a set: its name in the set directory, its bytes and permissions.
struct SetFile<'a> {
    name: &'a str,
    bytes: Cow<'a, [u8]>,
    perms: Perms,
}

/// Writes a complete set directory in `.sets` and returns its name: every file synced under a
/// `.partial-` name, the directory synced, then renamed to its final name and `.sets` synced.
fn build_set(out: &Path, label: &str, files: &[SetFile<'_>], crash: &mut Crash) -> Result<String> {
    let sets = out.join(SETS);
    fs::create_dir_all(&sets).map_err(io_err("create", &sets))?;
    crash.point()?;
    let name = format!("{}-{label}", next_number(&sets)?);
    let partial = sets.join(format!("{PARTIAL}{name}"));
    fs::create_dir(&partial).map_err(io_err("create", &partial))?;
    crash.point()?;
    for file in files {
        create_file(&partial.join(file.name), &file.bytes, file.perms)?;
        crash.point()?;
    }
    sync_dir(&partial)?;
    crash.point()?;
    let complete = sets.join(&name);
    fs::rename(&partial, &complete).map_err(io_err("rename", &partial))?;
    crash.point()?;
    sync_dir(&sets)?;
    crash.point()?;
    Ok(name)
}

/// Points `live` at the set `name`: the one rename that switches every file at once.
fn swap_live(out: &Path, name: &str, crash: &mut Crash) -> Result<()> {
    point(out, LIVE, &Path::new(SETS).join(name), crash)?;
    sync_dir(out)?;
    crash.point()
}

/// Points the symlink `out/name` at `target` by renaming a fresh symlink over it, so a reader
/// finds the old target or the new one, never nothing. The caller syncs `out`.
fn point(out: &Path, name: &str, target: &Path, crash: &mut Crash) -> Result<()> {
    let link = out.join(name);
    let tmp = out.join(format!(".{name}.tmp"));
    remove_if_there(&tmp)?;
    symlink(target, &tmp).map_err(io_err("create the symlink", &tmp))?;
    crash.point()?;
    fs::rename(&tmp, &link).map_err(io_err("replace", &link))?;
    crash.point()
}

/// Writes the new content into the files behind the user's own symlinks. These are outside the
/// one-rename guarantee (they live in other directories, each replaced atomically on its own), so
/// all are staged first and then renamed in quick succession.
fn write_user_targets(entries: &[Entry], files: &[SetFile<'_>], crash: &mut Crash) -> Result<()> {
    let mut staged = Vec::new();
    for (name, entry) in NAMES.into_iter().zip(entries) {
        let Entry::User(target) = entry else { continue };
        let Some(file) = files.iter().find(|f| f.name == name) else {
            continue;
        };
        staged.push((stage(target, &file.bytes, file.perms)?, target));
        crash.point()?;
    }
    for (tmp, target) in staged {
        fs::rename(&tmp, target).map_err(io_err("write", target))?;
        crash.point()?;
        sync_dir(parent_of(target))?;
    }
    Ok(())
}

/// Keeps the new set and the one it replaced (and whatever `live` shows, should another run have
/// moved it); removes older sets, sets a crash left unswitched, and partial ones. A failure only
/// warns: the new set is in place already.
fn prune(out: &Path, current: &str, previous: Option<&str>, crash: &mut Crash) -> Result<()> {
    let sets = out.join(SETS);
    let live = live_dir(out).ok().flatten();
    let showing = live.as_deref().and_then(Path::file_name);
    let entries = match fs::read_dir(&sets) {
        Ok(entries) => entries,
        Err(e) => {
            warn!(dir = %sets.display(), error = %e, "cannot list old certificate sets");
            return Ok(());
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(text) = name.to_str() else { continue };
        let ours = text.starts_with(PARTIAL) || set_number(text).is_some();
        if !ours || text == current || Some(text) == previous || Some(name.as_os_str()) == showing {
            continue;
        }
        let path = entry.path();
        if let Err(e) = fs::remove_dir_all(&path) {
            warn!(dir = %path.display(), error = %e, "cannot remove an old certificate set");
        }
        crash.point()?;
    }
    Ok(())
}

/// Removes what a crash may have left: partial sets and temporary symlinks or files. None of them
/// is ever reachable through `live` or the names the user reads.
fn clean_leftovers(out: &Path, crash: &mut Crash) -> Result<()> {
    let sets = out.join(SETS);
    for entry in read_dir_if_there(&sets)? {
        if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_err("remove the unfinished set", &path))?;
            crash.point()?;
        }
    }
    for entry in read_dir_if_there(out)? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let temporary = [LIVE, KEY, CERT, CHAIN, FULLCHAIN]
            .iter()
            .any(|n| name.starts_with(&format!(".{n}.tmp")));
        if temporary {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err("remove the temporary file", &path))?;
            crash.point()?;
        }
    }
    Ok(())
}

/// What stands at one of the names in `--out` before a write.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Missing,
    /// Our symlink into `live` (or `.sets`): it follows every switch by itself.
    Ours,
    /// A regular file of the old layout.
    Plain,
    /// A symlink the user made, to this file (resolved; it may not exist yet).
    User(PathBuf),
}

fn classify_all(out: &Path) -> Result<Vec<Entry>> {
    NAMES.iter().map(|name| classify(out, name)).collect()
}

fn classify(out: &Path, name: &str) -> Result<Entry> {
    let path = out.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Entry::Missing),
        Err(e) => return Err(io_err("inspect", &path)(e)),
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(&path).map_err(io_err("read the symlink", &path))?;
        let into_sets = matches!(
            target.components().next(),
            Some(Component::Normal(first)) if first == LIVE || first == SETS
        );
        let resolved = resolve(&path)?;
        // A link that leads into a set by another way must not be written through either: a
        // complete set never changes.
        if into_sets || is_within(&resolved, &out.join(SETS)) {
            return Ok(Entry::Ours);
        }
        return Ok(Entry::User(resolved));
    }
    if meta.is_file() {
        return Ok(Entry::Plain);
    }
    Err(Error::Local(format!(
        "{} is neither a file nor a symlink; move it out of the --out directory",
        path.display()
    )))
}

/// The file a chain of symlinks ends at (which may not exist yet).
fn resolve(link: &Path) -> Result<PathBuf> {
    let mut path = link.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&path).map_err(io_err("read the symlink", &path))?;
                path = parent_of(&path).join(target);
            }
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(path),
            Err(e) => return Err(io_err("inspect", &path)(e)),
        }
    }
    Err(Error::Local(format!(
        "{} is a loop of symlinks",
        link.display()
    )))
}

/// Whether `path`'s directory is `dir` or inside it, after resolving symlinks.
fn is_within(path: &Path, dir: &Path) -> bool {
    match (fs::canonicalize(parent_of(path)), fs::canonicalize(dir)) {
        (Ok(parent), Ok(dir)) => parent.starts_with(dir),
        _ => false,
    }
}

/// The set directory `live` points at, None when there is no `live`.
fn live_dir(out: &Path) -> Result<Option<PathBuf>> {
    let live = out.join(LIVE);
    match fs::read_link(&live) {
        Ok(target) => Ok(Some(out.join(target))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == ErrorKind::InvalidInput => Err(Error::Local(format!(
            "{} is not a symlink; acme-client keeps it pointing at the current set of files, so move it out of the --out directory",
            live.display()
        ))),
        Err(e) => Err(io_err("read the symlink", &live)(e)),
    }
}

fn read_meta(dir: &Path) -> Result<Option<SetMeta>> {
    let path = dir.join(META);
    let Some(bytes) = read_if_there(&path)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) => {
            // The certificate itself still says what it is; only what meta.json adds is lost.
            warn!(path = %path.display(), error = %e, "ignoring an unreadable meta.json");
            Ok(None)
        }
    }
}

fn meta_json(meta: &SetMeta) -> Result<Vec<u8>> {
    let mut json = serde_json::to_vec_pretty(meta)
        .map_err(|e| Error::Local(format!("cannot encode meta.json: {e}")))?;
    json.push(b'\n');
    Ok(json)
}

/// Serials compare as hex numbers: case and leading zeros (and colons) do not matter.
fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .skip_while(|c| *c == '0')
            .collect::<String>()
    };
    norm(a) == norm(b)
}

/// The serial as it goes into a set's directory name: hex digits only.
fn label(serial: &str) -> String {
    let hex: String = serial
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .take(40)
        .collect();
    if hex.is_empty() { "0".into() } else { hex }
}

/// The number of a complete set's directory name (`7-1f2e…`).
fn set_number(name: &str) -> Option<u64> {
    name.split_once('-')?.0.parse().ok()
}

/// One more than the highest number in `.sets`, partial sets included, so names never repeat.
fn next_number(sets: &Path) -> Result<u64> {
    let highest = read_dir_if_there(sets)?
        .iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            set_number(name.strip_prefix(PARTIAL).unwrap_or(&name))
        })
        .max()
        .unwrap_or(0);
    Ok(highest + 1)
}

fn default_mode(name: &str) -> u32 {
    if name == KEY { 0o600 } else { 0o644 }
}

/// The mode, and the owner and group when known, that a written file gets.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Perms {
    mode: u32,
    owner: Option<(u32, u32)>,
}

impl Perms {
    /// Those of `source` when it exists, else `default`'s mode. A private default (no group or
    /// other bits: a key) strips those bits from a kept mode too.
    fn like(source: &Path, default: u32) -> Result<Self> {
        match fs::metadata(source) {
            Ok(meta) => {
                let mut mode = meta.permissions().mode() & 0o777;
                if default & 0o077 == 0 {
                    mode &= !0o077;
                }
                Ok(Perms {
                    mode,
                    owner: Some((meta.uid(), meta.gid())),
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Perms {
                mode: default,
                owner: None,
            }),
            Err(e) => Err(io_err("read the mode of", source)(e)),
        }
    }
}

fn perms_from(source: Option<&Path>, default: u32) -> Result<Perms> {
    match source {
        Some(source) => Perms::like(source, default),
        None => Ok(Perms {
            mode: default,
            owner: None,
        }),
    }
}

/// Creates `path` (which must not exist) holding `bytes` with `perms`, and syncs it.
fn create_file(path: &Path, bytes: &[u8], perms: Perms) -> Result<()> {
    let write = || -> std::io::Result<()> {
        // 0600 until the final mode is set: a key is never readable by others, not even briefly.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(bytes)?;
        if let Some((uid, gid)) = perms.owner {
            keep_owner(&file, path, uid, gid)?;
        }
        file.set_permissions(fs::Permissions::from_mode(perms.mode))?;
        file.sync_all()
    };
    write().map_err(io_err("write", path))
}

/// Gives the new file the owner and group of the one it replaces. Only root may give a file away;
/// without the right, the file stays ours and the write goes on (its content matters more).
fn keep_owner(file: &File, path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let now = file.metadata()?;
    if (now.uid(), now.gid()) == (uid, gid) {
        return Ok(());
    }
    let new_uid = (now.uid() != uid).then_some(uid);
    if let Err(e) = std::os::unix::fs::fchown(file, new_uid, Some(gid)) {
        warn!(path = %path.display(), uid, gid, error = %e, "cannot keep the file's owner and group");
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path` and syncs it. Returns the temporary path.
fn stage(path: &Path, bytes: &[u8], perms: Perms) -> Result<PathBuf> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent_of(path).join(format!(".{file_name}.tmp-{}", std::process::id()));
    remove_if_there(&tmp)?;
    create_file(&tmp, bytes, perms).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    Ok(tmp)
}

/// Replaces `path` (not a symlink) atomically and durably.
fn replace(path: &Path, bytes: &[u8], perms: Perms) -> Result<()> {
    let tmp = stage(path, bytes, perms)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write", path)(e)
    })?;
    sync_dir(parent_of(path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn read_if_there(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

fn remove_if_there(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn read_dir_if_there(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<std::io::Result<_>>()
            .map_err(io_err("list", dir)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("list", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{CertKey, Issued, KeyType};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use x509_parser::prelude::{FromDer as _, X509Certificate};

    /// The PEM texts of one issuance: a fresh key, and a leaf for it signed by a throwaway CA.
    struct Material {
        key_pem: String,
        cert_pem: String,
        chain_pem: String,
        fullchain_pem: String,
        meta: SetMeta,
    }

    impl Material {
        fn new() -> Self {
            let key = CertKey::generate(KeyType::Ec256).unwrap();
            let ca_key = KeyPair::generate().unwrap();
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = Issuer::from_params(&ca_params, &ca_key);
            let leaf_key = KeyPair::from_pem(&key.pkcs8_pem()).unwrap();
            let leaf = CertificateParams::new(vec!["a.test".to_owned()])
                .unwrap()
                .signed_by(&leaf_key, &issuer)
                .unwrap();
            let body = format!("{}{}", leaf.pem(), ca.pem());
            let issued = Issued::from_pem(body.as_bytes(), key.public_key_raw()).unwrap();
            Material {
                key_pem: key.pkcs8_pem(),
                cert_pem: issued.leaf_pem(),
                chain_pem: issued.chain_pem(),
                fullchain_pem: issued.fullchain_pem(),
                meta: SetMeta {
                    serial: issued.info.serial,
                    profile: Some("classic".into()),
                    dir_url: "https://ca.test/dir".into(),
                    revoked: false,
                },
            }
        }

        fn set(&self, with_key: bool) -> NewSet<'_> {
            NewSet {
                key_pem: with_key.then_some(self.key_pem.as_str()),
                cert_pem: &self.cert_pem,
                chain_pem: &self.chain_pem,
                fullchain_pem: &self.fullchain_pem,
                meta: self.meta.clone(),
            }
        }

        /// The old layout: four regular files.
        fn write_plain(&self, out: &Path) {
            for (name, text) in [
                (KEY, &self.key_pem),
                (CERT, &self.cert_pem),
                (CHAIN, &self.chain_pem),
                (FULLCHAIN, &self.fullchain_pem),
            ] {
                fs::write(out.join(name), text).unwrap();
            }
        }

        fn texts(&self) -> [Option<&str>; 4] {
            [
                Some(&self.key_pem),
                Some(&self.cert_pem),
                Some(&self.chain_pem),
                Some(&self.fullchain_pem),
            ]
        }
    }

    /// Whether the certificate (the first block of `cert_pem`) carries the key's public key.
    fn belong(key_pem: &[u8], cert_pem: &[u8]) -> bool {
        let key = KeyPair::from_pem(std::str::from_utf8(key_pem).unwrap()).unwrap();
        let block = pem::parse(cert_pem).unwrap();
        let (_, cert) = X509Certificate::from_der(block.contents()).unwrap();
        cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
    }

    /// What a reader of the four names finds (None: nothing, or a dangling link).
    fn seen(out: &Path) -> Vec<Option<Vec<u8>>> {
        NAMES
            .iter()
            .map(|name| read_if_there(&out.join(name)).unwrap())
            .collect()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// `out` shows `m` through every name and through read_current, and nothing else lies about.
    fn assert_shows(out: &Path, m: &Material, with_key: bool) {
        let mut want = m.texts().map(|t| t.map(|t| t.as_bytes().to_vec()));
        if !with_key {
            want[0] = None;
        }
        assert_eq!(seen(out), want);
        for name in NAMES.iter().skip(usize::from(!with_key)) {
            let link = fs::read_link(out.join(name)).unwrap();
            assert_eq!(link, Path::new(LIVE).join(name));
        }
        let current = read_current(out).unwrap().unwrap();
        assert_eq!(
            current,
            CurrentSet {
                key_pem: want[0].clone(),
                fullchain_pem: m.fullchain_pem.clone().into_bytes(),
                meta: Some(m.meta.clone()),
            }
        );
        let mut names = vec![".sets", CERT, CHAIN, FULLCHAIN, KEY, LIVE];
        names.retain(|n| with_key || *n != KEY);
        assert_eq!(listing(out), names);
        let sets = listing(&out.join(SETS));
        assert!(sets.len() <= 2, "{sets:?}");
        assert!(sets.iter().all(|s| set_number(s).is_some()), "{sets:?}");
    }

    #[test]
    fn each_write_switches_every_file_and_two_sets_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        assert_eq!(read_current(out).unwrap(), None);
        let [a, b, c] = [Material::new(), Material::new(), Material::new()];
        let files = write_set(out, &a.set(true)).unwrap();
        assert_eq!(files.key, Some(out.join(KEY)));
        assert_eq!(files.fullchain, out.join(FULLCHAIN));
        assert_shows(out, &a, true);
        write_set(out, &b.set(true)).unwrap();
        assert_shows(out, &b, true);
        assert_eq!(mode(&out.join(KEY)), 0o600);
        for name in [CERT, CHAIN, FULLCHAIN, "live/meta.json"] {
            assert_eq!(mode(&out.join(name)), 0o644, "{name}");
        }
        for text in seen(out).into_iter().flatten() {
            assert!(!text.contains(&b'\r'));
        }
        write_set(out, &c.set(true)).unwrap();
        assert_shows(out, &c, true);
        assert_eq!(listing(&out.join(SETS)).len(), 2);
    }

    /// Stops a write after each of its steps in turn, from `before` to a set of `new` (with or
    /// without its key); at each stop the old set or the new one shows whole, and the next write
    /// succeeds and clears what the crash left.
    fn crash_at_every_step(before: fn(&Path, &Material), new_has_key: bool) {
        let [old, new, next] = [Material::new(), Material::new(), Material::new()];
        for k in 0.. {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path();
            before(out, &old);
            let (old_seen, old_current) = (seen(out), read_current(out).unwrap());
            let crash = &mut Crash { after: Some(k) };
            let finished = write_set_with(out, &new.set(new_has_key), crash).is_ok();

            let mut new_texts = new.texts();
            if !new_has_key {
                new_texts[0] = None;
            }
            let new_seen: Vec<_> = new_texts.iter().map(|t| t.map(Vec::from)).collect();
            let new_current = CurrentSet {
                key_pem: new_seen[0].clone(),
                fullchain_pem: new.fullchain_pem.clone().into_bytes(),
                meta: Some(new.meta.clone()),
            };
            let now = seen(out);
            assert!(
                now == old_seen || now == new_seen,
                "step {k}: the names show neither the old set nor the new one"
            );
            if let (Some(key), Some(cert)) = (&now[0], &now[1]) {
                assert!(belong(key, cert), "step {k}");
            }
            let current = read_current(out).unwrap();
            assert!(
                current == old_current || current.as_ref() == Some(&new_current),
                "step {k}: read_current shows neither the old set nor the new one"
            );
            if finished {
                assert_shows(out, &new, new_has_key);
            }

            write_set(out, &next.set(true)).unwrap();
            assert_shows(out, &next, true);
            if finished {
                assert!(k > 10, "only {k} steps");
                break;
            }
        }
    }

    fn nothing(_: &Path, _: &Material) {}

    fn a_set(out: &Path, m: &Material) {
        write_set(out, &m.set(true)).unwrap();
    }

    fn plain_files(out: &Path, m: &Material) {
        m.write_plain(out);
    }

    #[test]
    fn a_crash_at_any_step_leaves_one_whole_set() {
        crash_at_every_step(nothing, true);
        crash_at_every_step(a_set, true);
    }

    #[test]
    fn a_crash_at_any_step_of_a_migration_leaves_one_whole_set() {
        crash_at_every_step(plain_files, true);
    }

    #[test]
    fn a_crash_at_any_step_to_a_keyless_set_leaves_no_stray_key() {
        crash_at_every_step(a_set, false);
        crash_at_every_step(plain_files, false);
    }

    #[test]
    fn owner_group_and_mode_are_kept_and_a_key_stays_private() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let [a, b] = [Material::new(), Material::new()];
        write_set(out, &a.set(true)).unwrap();
        fs::set_permissions(out.join(CERT), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(out.join(KEY), fs::Permissions::from_mode(0o644)).unwrap();
        let root = fs::metadata(out).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(out.join(CHAIN), Some(1234), Some(4321)).unwrap();
        }
        write_set(out, &b.set(true)).unwrap();
        assert_shows(out, &b, true);
        assert_eq!(mode(&out.join(CERT)), 0o640);
        assert_eq!(mode(&out.join(KEY)), 0o600);
        assert_eq!(mode(&out.join(FULLCHAIN)), 0o644);
        if root {
            let chain = fs::metadata(out.join(CHAIN)).unwrap();
            assert_eq!((chain.uid(), chain.gid()), (1234, 4321));
        }
    }

    #[test]
    fn a_symlink_the_user_made_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let out = dir.path();
        let site = elsewhere.path().join("site.pem");
        fs::write(&site, "old").unwrap();
        fs::set_permissions(&site, fs::Permissions::from_mode(0o640)).unwrap();
        symlink(&site, out.join(CERT)).unwrap();
        let [a, b] = [Material::new(), Material::new()];
        for m in [&a, &b] {
            write_set(out, &m.set(true)).unwrap();
            assert_eq!(fs::read_link(out.join(CERT)).unwrap(), site);
            assert_eq!(fs::read_to_string(&site).unwrap(), m.cert_pem);
            assert_eq!(mode(&site), 0o640);
            let in_set = out.join(LIVE).join(CERT);
            assert_eq!(fs::read_to_string(&in_set).unwrap(), m.cert_pem);
            assert_eq!(mode(&in_set), 0o640);
            assert_eq!(listing(elsewhere.path()), ["site.pem"]);
            assert_eq!(
                read_current(out).unwrap().unwrap().meta,
                Some(m.meta.clone())
            );
        }
    }

    #[test]
    fn plain_files_become_a_set_keeping_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let [old, new] = [Material::new(), Material::new()];
        old.write_plain(out);
        fs::set_permissions(out.join(KEY), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(out.join(CERT), fs::Permissions::from_mode(0o600)).unwrap();
        let current = read_current(out).unwrap().unwrap();
        assert_eq!(current.key_pem, Some(old.key_pem.clone().into_bytes()));
        assert_eq!(current.meta, None);

        write_set(out, &new.set(true)).unwrap();
        assert_shows(out, &new, true);
        assert_eq!(mode(&out.join(KEY)), 0o600);
        assert_eq!(mode(&out.join(CERT)), 0o600);
        assert_eq!(mode(&out.join(CHAIN)), 0o644);
        // The old files are the previous set.
        let sets = listing(&out.join(SETS));
        let adopted = out.join(SETS).join(&sets[0]);
        assert!(sets[0].ends_with("-adopted"), "{sets:?}");
        assert_eq!(fs::read_to_string(adopted.join(KEY)).unwrap(), old.key_pem);
        assert_eq!(mode(&adopted.join(KEY)), 0o600);
    }

    #[test]
    fn a_users_csr_leaves_no_key_pem() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let [a, b, c] = [Material::new(), Material::new(), Material::new()];
        write_set(out, &a.set(true)).unwrap();
        let files = write_set(out, &b.set(false)).unwrap();
        assert_eq!(files.key, None);
        assert_shows(out, &b, false);
        assert!(fs::symlink_metadata(out.join(KEY)).is_err());
        write_set(out, &c.set(true)).unwrap();
        assert_shows(out, &c, true);

        let plain = tempfile::tempdir().unwrap();
        a.write_plain(plain.path());
        write_set(plain.path(), &b.set(false)).unwrap();
        assert_shows(plain.path(), &b, false);
    }

    #[test]
    fn mark_revoked_matches_the_current_serial_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        assert!(!mark_revoked(out, "1").unwrap());
        let [a, b] = [Material::new(), Material::new()];
        write_set(out, &a.set(true)).unwrap();
        assert!(!mark_revoked(out, &b.meta.serial).unwrap());
        let spelled = format!("00{}", a.meta.serial.to_uppercase());
        assert!(mark_revoked(out, &spelled).unwrap());
        let meta = read_current(out).unwrap().unwrap().meta.unwrap();
        assert_eq!(
            meta,
            SetMeta {
                revoked: true,
                ..a.meta.clone()
            }
        );
        assert!(mark_revoked(out, &a.meta.serial).unwrap());
        assert_eq!(listing(&out.join(LIVE)).len(), 5);
    }

    #[test]
    fn write_atomic_keeps_mode_and_owner_and_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let account = dir.path().join("account.pem");
        write_atomic(&account, b"one", 0o600).unwrap();
        assert_eq!(mode(&account), 0o600);
        fs::set_permissions(&account, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&account, b"two", 0o600).unwrap();
        assert_eq!(mode(&account), 0o400 | 0o200);
        fs::set_permissions(&account, fs::Permissions::from_mode(0o400)).unwrap();
        write_atomic(&account, b"three", 0o600).unwrap();
        assert_eq!(mode(&account), 0o400);
        assert_eq!(fs::read(&account).unwrap(), b"three");

        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("acct.pem");
        fs::write(&target, "old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("linked.pem");
        symlink(
            "../".to_owned() + &relative_to_parent(&target, dir.path()),
            &link,
        )
        .unwrap();
        write_atomic(&link, b"new", 0o644).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(mode(&target), 0o640);
        assert_eq!(listing(dir.path()), ["account.pem", "linked.pem"]);
    }

    /// `path` spelled from `dir`'s parent: a relative symlink target for a link in `dir`.
    fn relative_to_parent(path: &Path, dir: &Path) -> String {
        let parent = dir.parent().unwrap();
        path.strip_prefix(parent)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn check_out_dir_refuses_a_file_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        for out in [file.clone(), file.join("below")] {
            let err = check_out_dir(&out).unwrap_err();
            assert!(
                err.to_string().contains("is a file, not a directory"),
                "{err}"
            );
            assert!(!err.to_string().contains("os error"), "{err}");
            assert!(err.hint().unwrap().contains("give --out a directory"));
            assert_eq!(err.exit_code(), crate::error::exit::USAGE);
        }
    }

    #[test]
    fn check_out_dir_refuses_what_is_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new");
        check_out_dir(&out).unwrap();
        assert_eq!(listing(&out).len(), 0);
        fs::create_dir(out.join(CERT)).unwrap();
        let err = check_out_dir(&out).unwrap_err().to_string();
        assert!(err.contains("neither a file nor a symlink"), "{err}");
        fs::remove_dir(out.join(CERT)).unwrap();
        fs::create_dir(out.join(LIVE)).unwrap();
        let err = check_out_dir(&out).unwrap_err().to_string();
        assert!(err.contains("is not a symlink"), "{err}");
    }
}
