//! The plain-HTTP servers' new duties: the http-01 port redirects everything that is not a
//! challenge to HTTPS, and the control port answers `/status` beside `/shutdown`.

use std::sync::Arc;

use acme_client::acme::types::Identifier;
use acme_client::challenge::{ChallengeKind, ChallengeStore, http};
use acme_client::serve::{Limits, serve, shutdown};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::harness::publication;

async fn start(handler: acme_client::serve::Handler) -> (u16, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    tokio::spawn(serve(
        "test",
        listener,
        None,
        handler,
        Limits::default(),
        cancel.clone(),
    ));
    (port, cancel)
}

async fn ask(port: u16, request: &str) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    text
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    split(answer).0.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn http_01_redirects_everything_but_challenges() {
    bounded(async {
        let store = ChallengeStore::new();
        let _published = store.publish(
            publication(
                ChallengeKind::Http01,
                &Identifier::dns("example.test"),
                "tok-1",
                "tok-1.thumb",
            )
            .unwrap(),
        );
        let (port, cancel) = start(http::handler_with_redirect(store.clone(), Some(8443))).await;
        let moved = ask(
            port,
            "GET /a/b?c=d&e HTTP/1.1\r\nHost: example.test:5002\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(moved.starts_with("HTTP/1.1 301"), "{moved}");
        assert_eq!(header(&moved, "location"), Some("https://example.test:8443/a/b?c=d&e"));
        let post = ask(
            port,
            "POST /form HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(header(&post, "location"), Some("https://example.test:8443/form"));

        let known = ask(
            port,
            "GET /.well-known/acme-challenge/tok-1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(known.starts_with("HTTP/1.1 200"), "{known}");
        assert_eq!(split(&known).1, "tok-1.thumb");
        let unknown = ask(
            port,
            "GET /.well-known/acme-challenge/tok-2 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
        cancel.cancel();

        // The default HTTPS port is left out of the URL.
        let (port, cancel) = start(http::handler_with_redirect(store, Some(443))).await;
        let moved = ask(port, "GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n").await;
        assert_eq!(header(&moved, "location"), Some("https://[::1]/"));
        cancel.cancel();
    })
    .await;
}

#[tokio::test]
async fn status_answers_json_beside_shutdown() {
    bounded(async {
        let cancel = CancellationToken::new();
        let status: shutdown::Status =
            Arc::new(|| r#"{"names":["a.test"],"serial":"1f"}"#.to_owned());
        let (port, server) = start(shutdown::handler_with_status(cancel.clone(), status)).await;
        let answer = ask(
            port,
            "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(header(&answer, "content-type"), Some("application/json"));
        assert_eq!(split(&answer).1, r#"{"names":["a.test"],"serial":"1f"}"#);
        let head = ask(
            port,
            "HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(!cancel.is_cancelled());
        let stop = ask(
            port,
            "GET /shutdown HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(stop.starts_with("HTTP/1.1 200"), "{stop}");
        assert!(cancel.is_cancelled());
        server.cancel();
    })
    .await;
}
