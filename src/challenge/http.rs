//! The http-01 responder (RFC 8555 §8.3): `GET /.well-known/acme-challenge/<token>` answers the key
//! authorization published in the [`ChallengeStore`], 404 for unknown tokens. Once the HTTPS port
//! serves, every other request is redirected there (301, same host and path).

use hyper::Method;
use hyper::StatusCode;
use hyper::header::{HeaderValue, LOCATION};

use super::ChallengeStore;
use crate::acme::types::is_token;
use crate::serve::{Handler, Head, HttpReply};

const PREFIX: &str = "/.well-known/acme-challenge/";

/// The handler for the http-01 server. With `https_port`, requests outside the challenge
/// directory are redirected to `https://<host>[:https_port]<path>?<query>` (301); without it
/// they get 404.
pub fn handler_with_redirect(store: ChallengeStore, https_port: Option<u16>) -> Handler {
    Handler::new(move |head| {
        let read = head.method == Method::GET || head.method == Method::HEAD;
        if let Some(token) = head.path.strip_prefix(PREFIX) {
            if !read {
                return HttpReply::method_not_allowed();
            }
            let answer = Some(token)
                .filter(|token| is_token(token))
                .and_then(|token| store.http_key_authorization(token));
            return match answer {
                Some(key_authorization) => HttpReply {
                    content_type: "application/octet-stream",
                    ..HttpReply::text(key_authorization)
                },
                None => HttpReply::not_found(),
            };
        }
        match https_port {
            Some(port) => redirect(head, port),
            None if read => HttpReply::not_found(),
            None => HttpReply::method_not_allowed(),
        }
    })
}

/// 301 to the same host, path and query on the HTTPS port.
fn redirect(head: &Head<'_>, port: u16) -> HttpReply {
    let Some(host) = head.host_name() else {
        return HttpReply::error(
            StatusCode::BAD_REQUEST,
            "a redirect to HTTPS needs a valid Host header",
        );
    };
    let mut location = format!("https://{host}");
    if port != 443 {
        location.push_str(&format!(":{port}"));
    }
    location.push_str(head.path);
    if let Some(query) = head.query {
        location.push('?');
        location.push_str(query);
    }
    match HeaderValue::from_str(&location) {
        Ok(value) => HttpReply {
            status: StatusCode::MOVED_PERMANENTLY,
            ..HttpReply::text(format!("moved to {location}\n"))
        }
        .with_header(LOCATION, value),
        Err(_) => HttpReply::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::types::Identifier;
    use crate::challenge::{ChallengeKind, test_publication};

    fn head<'a>(method: &'a Method, path: &'a str) -> Head<'a> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        Head {
            method,
            path,
            query,
            host: Some("x.test:5002"),
        }
    }

    fn publish(store: &ChallengeStore) -> crate::challenge::Presented {
        store.publish(
            test_publication(
                ChallengeKind::Http01,
                &Identifier::dns("x.test"),
                "tok_1-A",
                "tok_1-A.th",
            )
            .unwrap(),
        )
    }

    #[test]
    fn answers_known_tokens_only() {
        let store = ChallengeStore::new();
        let h = handler_with_redirect(store.clone(), None);
        let _g = publish(&store);
        let ok = h.reply(&head(&Method::GET, "/.well-known/acme-challenge/tok_1-A"));
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(&ok.body[..], b"tok_1-A.th");
        for path in [
            "/.well-known/acme-challenge/unknown",
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/../tok_1-A",
            "/.well-known/acme-challenge/tok%5F1-A",
            "/tok_1-A",
            "/",
        ] {
            assert_eq!(
                h.reply(&head(&Method::GET, path)).status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert_eq!(
            h.reply(&head(&Method::POST, "/")).status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn everything_else_is_redirected_to_https() {
        let store = ChallengeStore::new();
        let _g = publish(&store);
        let h = handler_with_redirect(store.clone(), Some(5001));
        let ok = h.reply(&head(&Method::GET, "/.well-known/acme-challenge/tok_1-A"));
        assert_eq!(&ok.body[..], b"tok_1-A.th");
        let unknown = h.reply(&head(&Method::GET, "/.well-known/acme-challenge/nope"));
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let moved = h.reply(&head(&Method::POST, "/a/b?c=1&d"));
        assert_eq!(moved.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            moved.headers,
            [(
                LOCATION,
                HeaderValue::from_static("https://x.test:5001/a/b?c=1&d")
            )]
        );
        let h = handler_with_redirect(store, Some(443));
        let moved = h.reply(&Head {
            host: Some("[::1]:80"),
            ..head(&Method::GET, "/")
        });
        assert_eq!(moved.headers[0].1, "https://[::1]/");
        let no_host = h.reply(&Head {
            host: None,
            ..head(&Method::GET, "/")
        });
        assert_eq!(no_host.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn tokens_are_base64url() {
        assert!(is_token("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
        assert!(!is_token("a/b"));
        assert!(!is_token(".."));
        assert!(!is_token(""));
        assert!(!is_token(&"a".repeat(300)));
    }
}
