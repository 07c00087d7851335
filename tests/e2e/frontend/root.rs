//! Static files: content types, index.html, ranges, validators, HEAD, and every way out of the
//! root refused (`..`, percent-encoded `..`, symlinks to a file or a directory outside).

use std::path::Path;

use acme_client::serve::Site;
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, LOCATION, RANGE,
};

use super::*;

const SECRET: &str = "outside-the-root";

/// `<tmp>/site` (served) beside `<tmp>/secret.txt` and `<tmp>/private/` (not served).
fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let write = |p: &Path, body: &[u8]| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    write(&tmp.path().join("secret.txt"), SECRET.as_bytes());
    write(&tmp.path().join("private/key.txt"), SECRET.as_bytes());
    write(&site.join("index.html"), b"<h1>home</h1>");
    write(&site.join("style.css"), b"h1{}");
    write(&site.join("app.js"), b"1");
    write(&site.join("data.json"), b"{}");
    write(&site.join("pic.png"), b"\x89PNG");
    write(&site.join("blob"), b"raw");
    write(&site.join("digits.txt"), b"0123456789");
    write(&site.join("docs/index.html"), b"<h1>docs</h1>");
    write(&site.join("empty/.keep"), b"");
    write(&site.join("big.bin"), &vec![7u8; 3 * 1024 * 1024]);
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), site.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("private"), site.join("private")).unwrap();
    std::os::unix::fs::symlink(site.join("digits.txt"), site.join("inside.txt")).unwrap();
    (tmp, site)
}

#[tokio::test]
async fn files_with_types_and_indexes() {
    bounded(async {
        let (_tmp, site) = tree();
        let front = Front::start(Site::Root(site)).await;
        let client = front.client(true);
        let get = |path: &str| client.get(front.url(path)).send();
        for (path, ty, body) in [
            ("/", "text/html; charset=utf-8", "<h1>home</h1>"),
            ("/index.html", "text/html; charset=utf-8", "<h1>home</h1>"),
            ("/style.css", "text/css; charset=utf-8", "h1{}"),
            ("/app.js", "text/javascript; charset=utf-8", "1"),
            ("/data.json", "application/json", "{}"),
            ("/pic.png", "image/png", "\u{fffd}PNG"),
            ("/blob", "application/octet-stream", "raw"),
            ("/docs/", "text/html; charset=utf-8", "<h1>docs</h1>"),
            ("/inside.txt", "text/plain; charset=utf-8", "0123456789"),
            ("/%64igits.txt", "text/plain; charset=utf-8", "0123456789"),
        ] {
            let answer = get(path).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            assert_eq!(answer.headers()[CONTENT_TYPE], ty, "{path}");
            let text = String::from_utf8_lossy(&answer.bytes().await.unwrap()).into_owned();
            assert_eq!(text, body, "{path}");
        }
        let big = get("/big.bin").await.unwrap();
        assert_eq!(big.headers()[CONTENT_LENGTH], "3145728");
        let bytes = big.bytes().await.unwrap();
        assert!(bytes.len() == 3 * 1024 * 1024 && bytes.iter().all(|b| *b == 7));

        // A directory without its slash is redirected to it; one without index.html is 404.
        let no_redirect = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_der(&front.ca.der).unwrap()])
            .resolve(NAME, SocketAddr::from(([127, 0, 0, 1], front.port)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let moved = no_redirect
            .get(front.url("/docs?a=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(moved.headers()[LOCATION], "/docs/?a=1");
        assert_eq!(
            get("/empty/").await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/nothing.txt").await.unwrap().status(),
            StatusCode::NOT_FOUND
        );

        // HEAD: the headers of GET, no body.
        for h2 in [false, true] {
            let head = front
                .client(h2)
                .head(front.url("/digits.txt"))
                .send()
                .await
                .unwrap();
            assert_eq!(head.status(), StatusCode::OK);
            assert_eq!(head.headers()[CONTENT_LENGTH], "10", "h2={h2}");
            assert!(head.bytes().await.unwrap().is_empty());
        }
        let post = client.post(front.url("/digits.txt")).send().await.unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    })
    .await;
}

#[tokio::test]
async fn ranges_and_validators() {
    bounded(async {
        let (_tmp, site) = tree();
        let front = Front::start(Site::Root(site)).await;
        let client = front.client(false);
        let url = front.url("/digits.txt");
        let get = |range: Option<&str>| {
            let mut req = client.get(&url);
            if let Some(range) = range {
                req = req.header(RANGE, range);
            }
            req.send()
        };

        // RFC 9110 §14: one range is 206 with Content-Range; a range past the end is 416.
        for (range, body, content_range) in [
            ("bytes=2-5", "2345", "bytes 2-5/10"),
            ("bytes=7-", "789", "bytes 7-9/10"),
            ("bytes=-3", "789", "bytes 7-9/10"),
            ("bytes=8-100", "89", "bytes 8-9/10"),
        ] {
            let answer = get(Some(range)).await.unwrap();
            assert_eq!(answer.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(answer.headers()[CONTENT_RANGE], content_range, "{range}");
            assert_eq!(answer.text().await.unwrap(), body, "{range}");
        }
        let unsatisfiable = get(Some("bytes=10-")).await.unwrap();
        assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(unsatisfiable.headers()[CONTENT_RANGE], "bytes */10");
        // Malformed or multiple ranges: the whole file (a server may ignore Range).
        for range in ["lines=1-2", "bytes=0-1,4-5"] {
            let answer = get(Some(range)).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{range}");
            assert_eq!(answer.text().await.unwrap(), "0123456789");
        }

        // RFC 9110 §13.1.2 and §13.1.3: the validators make a 304.
        let full = get(None).await.unwrap();
        let etag = full.headers()[ETAG].to_str().unwrap().to_owned();
        let modified = full.headers()[LAST_MODIFIED].to_str().unwrap().to_owned();
        assert!(etag.starts_with("W/\""), "{etag}");
        let again = client
            .get(&url)
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[ETAG], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());
        let other = client
            .get(&url)
            .header(IF_NONE_MATCH, "W/\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::OK);
        let since = client
            .get(&url)
            .header(IF_MODIFIED_SINCE, &modified)
            .send()
            .await
            .unwrap();
        assert_eq!(since.status(), StatusCode::NOT_MODIFIED);
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
        let both = client
            .get(&url)
            .header(IF_NONE_MATCH, "\"other\"")
            .header(IF_MODIFIED_SINCE, &modified)
            .send()
            .await
            .unwrap();
        assert_eq!(both.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn nothing_outside_the_root_is_served() {
    bounded(async {
        let (_tmp, site) = tree();
        let front = Front::start(Site::Root(site)).await;
        // Raw request lines: clients would normalise the dots away.
        for (path, status) in [
            ("/../secret.txt", "404"),
            ("/docs/../../secret.txt", "404"),
            ("/%2e%2e/secret.txt", "404"),
            ("/%2E%2E%2Fsecret.txt", "404"),
            ("/..%2fsecret.txt", "404"),
            ("/docs/%2e%2e/%2e%2e/secret.txt", "404"),
            ("/..%5csecret.txt", "404"),
            ("/leak.txt", "403"),
            ("/private/key.txt", "403"),
            ("/private/", "403"),
        ] {
            let answer = raw(
                &front,
                &format!("GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n"),
            )
            .await;
            let (head, body) = split(&answer);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}")),
                "{path}: {head}"
            );
            assert!(!body.contains(SECRET), "{path} leaked the file outside");
        }
    })
    .await;
}
