//! The shutdown endpoint: `GET /shutdown` answers 200 and cancels the process-wide token, which
//! stops every server. Anything else is 404.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Handler, Reply};

/// The handler for the shutdown server.
pub fn handler(cancel: CancellationToken) -> Handler {
    Arc::new(move |method, path| {
        if path == "/shutdown" && method == hyper::Method::GET {
            info!("shutdown requested over HTTP");
            cancel.cancel();
            Reply::text("shutting down\n")
        } else {
            Reply::not_found()
        }
    })
}
