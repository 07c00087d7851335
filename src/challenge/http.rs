//! The http-01 responder (RFC 8555 §8.3): `GET /.well-known/acme-challenge/<token>` answers the key
//! authorization published in the [`ChallengeStore`], 404 for anything else.

use std::sync::Arc;

use super::ChallengeStore;
use crate::acme::types::is_token;
use crate::serve::{Handler, Reply};

const PREFIX: &str = "/.well-known/acme-challenge/";

/// The handler for the http-01 server.
pub fn handler(store: ChallengeStore) -> Handler {
    Arc::new(move |_method, path| {
        let answer = path
            .strip_prefix(PREFIX)
            .filter(|token| is_token(token))
            .and_then(|token| store.http_key_authorization(token));
        match answer {
            Some(key_authorization) => Reply {
                content_type: "application/octet-stream",
                ..Reply::text(key_authorization)
            },
            None => Reply::not_found(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::types::Identifier;
    use crate::challenge::{ChallengeKind, publication};
    use hyper::{Method, StatusCode};

    #[test]
    fn answers_known_tokens_only() {
        let store = ChallengeStore::new();
        let h = handler(store.clone());
        let _g = store.publish(
            publication(
                ChallengeKind::Http01,
                &Identifier::dns("x.test"),
                "tok_1-A",
                "tok_1-A.th",
            )
            .unwrap(),
        );
        let ok = h(&Method::GET, "/.well-known/acme-challenge/tok_1-A");
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
                h(&Method::GET, path).status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
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
