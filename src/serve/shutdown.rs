//! The control endpoints: `GET /shutdown` answers 200 and cancels the process-wide token, which
//! stops every server; `GET /status` answers the JSON a closure of the caller's produces. `HEAD`
//! of either answers the same headers without acting. Anything else is 404 (405 for methods other
//! than GET and HEAD).

use std::sync::Arc;

use hyper::Method;
use hyper::header::{CACHE_CONTROL, HeaderValue};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Handler, HttpReply};

/// Produces the status document, `application/json`.
pub type Status = Arc<dyn Fn() -> String + Send + Sync>;

/// The handler with `/shutdown` and `/status`.
pub fn handler_with_status(cancel: CancellationToken, status: Status) -> Handler {
    endpoints(cancel, Some(status))
}

fn endpoints(cancel: CancellationToken, status: Option<Status>) -> Handler {
    Handler::get_only(move |method, path| match (path, &status) {
        ("/shutdown", _) => {
            // HEAD is what monitors and link checkers send: it must not stop the server.
            if method == Method::GET {
                info!("shutdown requested over HTTP");
                cancel.cancel();
            }
            HttpReply::text("shutting down\n")
        }
        ("/status", Some(status)) => HttpReply {
            content_type: "application/json",
            ..HttpReply::text(status())
        }
        .with_header(CACHE_CONTROL, HeaderValue::from_static("no-store")),
        _ => HttpReply::not_found(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::Head;
    use hyper::StatusCode;

    fn get<'a>(method: &'a Method, path: &'a str) -> Head<'a> {
        Head {
            method,
            path,
            query: None,
            host: None,
        }
    }

    #[test]
    fn status_answers_the_closures_json() {
        let cancel = CancellationToken::new();
        let h = handler_with_status(cancel.clone(), Arc::new(|| r#"{"ok":true}"#.to_owned()));
        for method in [Method::GET, Method::HEAD] {
            let reply = h.reply(&get(&method, "/status"));
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.content_type, "application/json");
            assert_eq!(&reply.body[..], br#"{"ok":true}"#);
        }
        assert_eq!(
            h.reply(&get(&Method::POST, "/status")).status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(!cancel.is_cancelled());
    }

    #[test]
    fn only_get_shutdown_cancels() {
        let cancel = CancellationToken::new();
        let h = endpoints(cancel.clone(), None);
        assert_eq!(
            h.reply(&get(&Method::GET, "/status")).status,
            StatusCode::NOT_FOUND
        );
        let head = h.reply(&get(&Method::HEAD, "/shutdown"));
        assert_eq!(head.status, StatusCode::OK);
        assert!(!cancel.is_cancelled());
        assert_eq!(
            h.reply(&get(&Method::GET, "/shutdown")).status,
            StatusCode::OK
        );
        assert!(cancel.is_cancelled());
    }
}
