//! Static files behind `--root`: GET and HEAD of the files under one directory, never anything
//! outside it (`..` and percent-encoded traversal refused, symlinks resolved and checked), with
//! content types by extension, `index.html` for directories, single byte ranges (RFC 9110 §14),
//! validators and conditional requests (RFC 9110 §8.8, §13). Files are streamed, and every file
//! system call runs on tokio's blocking pool.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;
use tracing::{debug, error};

use super::{Body, HttpReply, empty};

/// Bytes read from a file per chunk sent.
const CHUNK: usize = 64 * 1024;

/// The static file server for one directory.
#[derive(Debug, Clone)]
pub struct Root {
    /// Canonical: every served path must start with it.
    dir: PathBuf,
}

impl Root {
    /// Serves the files under `dir` (resolved once, here).
    pub async fn new(dir: PathBuf) -> Self {
        let dir = match tokio::fs::canonicalize(&dir).await {
            Ok(canonical) => canonical,
            Err(e) => {
                error!(dir = %dir.display(), error = %e, "cannot resolve the --root directory; every request will get 404");
                dir
            }
        };
        Root { dir }
    }

    /// The answer to `req`.
    pub async fn respond<B>(&self, req: &Request<B>) -> Response<Body> {
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            return HttpReply::method_not_allowed().into_response();
        }
        let path = req.uri().path();
        let Some(relative) = relative_path(path) else {
            debug!(path, "refused a path that leaves the root");
            return HttpReply::not_found().into_response();
        };
        let file = match self.resolve(&relative).await {
            Ok(Found::File(file)) => file,
            Ok(Found::Directory) => {
                // Relative links in the index need the slash.
                let mut location = format!("{path}/");
                if let Some(query) = req.uri().query() {
                    location.push('?');
                    location.push_str(query);
                }
                return redirect(&location);
            }
            Err(status) => return status_reply(status),
        };
        serve_file(file, method == Method::HEAD, req.headers()).await
    }

    /// The file `relative` names, `index.html` for a directory named with a trailing slash.
    async fn resolve(&self, relative: &RelativePath) -> Result<Found, StatusCode> {
        let mut target = self.inside(&self.dir.join(&relative.path)).await?;
        if tokio::fs::metadata(&target)
            .await
            .map_err(io_status)?
            .is_dir()
        {
            if !relative.slash {
                return Ok(Found::Directory);
            }
            target = self.inside(&target.join("index.html")).await?;
        }
        let file = tokio::fs::File::open(&target).await.map_err(io_status)?;
        let meta = file.metadata().await.map_err(io_status)?;
        if !meta.is_file() {
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(Found::File(OpenFile {
            file,
            len: meta.len(),
            modified: meta.modified().ok(),
            content_type: content_type(&target),
        }))
    }

    /// `path` with every symlink resolved, if that is still under the root (403 if not).
    async fn inside(&self, path: &Path) -> Result<PathBuf, StatusCode> {
        let canonical = tokio::fs::canonicalize(path).await.map_err(io_status)?;
        if canonical.starts_with(&self.dir) {
            Ok(canonical)
        } else {
            debug!(path = %path.display(), "refused a symlink that leaves the root");
            Err(StatusCode::FORBIDDEN)
        }
    }
}

enum Found {
    File(OpenFile),
    /// A directory named without its trailing slash.
    Directory,
}

struct OpenFile {
    file: tokio::fs::File,
    len: u64,
    modified: Option<SystemTime>,
    content_type: String,
}

/// A request path made safe: percent-decoded, split into names with no `..`, no NUL and no
/// backslash, so joining it to the root cannot climb out (symlinks are checked afterwards).
#[derive(Debug, PartialEq, Eq)]
struct RelativePath {
    path: PathBuf,
    /// Whether the request path ended with `/`.
    slash: bool,
}

fn relative_path(path: &str) -> Option<RelativePath> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let mut relative = PathBuf::new();
    for name in decoded.split('/') {
        match name {
            "" | "." => {}
            ".." => return None,
            _ if name.contains(['\0', '\\']) => return None,
            _ => relative.push(name),
        }
    }
    Some(RelativePath {
        path: relative,
        slash: decoded.ends_with('/'),
    })
}

fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    if mime.type_() == mime_guess::mime::TEXT && mime.get_param("charset").is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// A weak validator from size and modification time (RFC 9110 §8.8.3): cheap, and right unless
/// a file changes twice within the clock's resolution without changing size.
fn etag(len: u64, modified: Option<SystemTime>) -> String {
    let nanos = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("W/\"{len:x}-{nanos:x}\"")
}

/// Whether `If-None-Match` lists `etag` (weak comparison) or is `*` (RFC 9110 §13.1.2).
fn none_match(header: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    header.trim() == "*" || header.split(',').any(|tag| opaque(tag) == opaque(etag))
}

async fn serve_file(open: OpenFile, head_only: bool, request: &HeaderMap) -> Response<Body> {
    let OpenFile {
        mut file,
        len,
        modified,
        content_type,
    } = open;
    let etag = etag(len, modified);
    let last_modified = modified.map(httpdate::fmt_http_date);
    let text = |name: header::HeaderName| request.get(name).and_then(|v| v.to_str().ok());

    // RFC 9110 §13.2.2: If-None-Match, and If-Modified-Since only without it.
    let not_modified = match (text(header::IF_NONE_MATCH), text(header::IF_MODIFIED_SINCE)) {
        (Some(tags), _) => none_match(tags, &etag),
        (None, Some(since)) => match (httpdate::parse_http_date(since), modified) {
            (Ok(since), Some(modified)) => {
                // HTTP dates have whole seconds.
                let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                secs(modified) <= secs(since)
            }
            _ => false,
        },
        (None, None) => false,
    };

    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(date) = &last_modified {
        builder = builder.header(header::LAST_MODIFIED, date);
    }
    if not_modified {
        return finish(builder.status(StatusCode::NOT_MODIFIED), empty());
    }
    builder = builder
        .header(header::CONTENT_TYPE, content_type)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");

    // A weak validator never matches If-Range (RFC 9110 §13.1.5), so only the date form can keep
    // a range request a range request.
    let range_applies = match text(header::IF_RANGE) {
        None => true,
        Some(date) => last_modified.as_deref() == Some(date.trim()),
    };
    let mut start = 0;
    let mut count = len;
    if let (Some(range), true) = (text(header::RANGE), range_applies) {
        // Unparsable or multiple ranges: serve the whole file, which a server may always do
        // (RFC 9110 §14.2).
        if let Ok(parsed) = http_range_header::parse_range_header(range) {
            match parsed.validate(len) {
                Ok(ranges) if ranges.len() == 1 => {
                    let (first, last) = (*ranges[0].start(), *ranges[0].end());
                    start = first;
                    count = last - first + 1;
                    builder = builder
                        .status(StatusCode::PARTIAL_CONTENT)
                        .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
                }
                Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => {
                    let builder = builder
                        .status(StatusCode::RANGE_NOT_SATISFIABLE)
                        .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                        .header(header::CONTENT_LENGTH, 0);
                    return finish(builder, empty());
                }
                _ => {}
            }
        }
    }
    builder = builder.header(header::CONTENT_LENGTH, count);
    if head_only || count == 0 {
        return finish(builder, empty());
    }
    if start > 0
        && let Err(e) = file.seek(SeekFrom::Start(start)).await
    {
        error!(error = %e, "cannot seek in a served file");
        return status_reply(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let stream = ReaderStream::with_capacity(file.take(count), CHUNK)
        .map_ok(Frame::data)
        .map_err(Into::into);
    finish(builder, StreamBody::new(stream).boxed_unsync())
}

fn finish(builder: hyper::http::response::Builder, body: Body) -> Response<Body> {
    builder.body(body).unwrap_or_else(|e| {
        error!(error = %e, "cannot build a file response");
        status_reply(StatusCode::INTERNAL_SERVER_ERROR)
    })
}

fn redirect(location: &str) -> Response<Body> {
    match HeaderValue::from_str(location) {
        Ok(value) => HttpReply {
            status: StatusCode::MOVED_PERMANENTLY,
            ..HttpReply::text(format!("moved to {location}\n"))
        }
        .with_header(header::LOCATION, value)
        .into_response(),
        Err(_) => status_reply(StatusCode::NOT_FOUND),
    }
}

fn io_status(error: std::io::Error) -> StatusCode {
    match error.kind() {
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::NOT_FOUND,
    }
}

fn status_reply(status: StatusCode) -> Response<Body> {
    HttpReply::error(status, "").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_climb_out() {
        let ok = |p: &str| relative_path(p).map(|r| r.path);
        assert_eq!(ok("/a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(ok("/a/./b%20c"), Some(PathBuf::from("a/b c")));
        assert_eq!(ok("/"), Some(PathBuf::new()));
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E%2Fx",
            "/a/%2e%2e",
            "/a%5c..%5cb",
            "/a%00b",
            "/%ff",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
        assert!(relative_path("/dir/").unwrap().slash);
        assert!(!relative_path("/dir").unwrap().slash);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        // RFC 9110 §13.1.2 uses the weak comparison.
        let tag = "W/\"10-5\"";
        assert!(none_match("W/\"10-5\"", tag));
        assert!(none_match("\"x\", \"10-5\"", tag));
        assert!(none_match("*", tag));
        assert!(!none_match("\"10-6\"", tag));
    }

    #[test]
    fn text_types_say_utf8() {
        assert_eq!(
            content_type(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
