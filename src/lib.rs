//! acme-client: obtain a certificate from an ACME CA (RFC 8555) by http-01, dns-01 or tls-alpn-01,
//! with its own DNS, HTTP and TLS responders, keep it fresh (ARI, RFC 9773), and serve it over
//! HTTPS; revoke certificates and manage the account later.
//!
//! The binary (`main.rs`) is a thin shell over [`app::run`] and [`commands`]; tests drive the
//! modules directly.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acme;
pub mod app;
pub mod cert;
pub mod challenge;
pub mod cli;
pub mod commands;
pub mod error;
pub mod files;
pub mod names;
pub mod output;
pub mod renewer;
pub mod serve;
pub mod summary;
pub mod sync;

/// Installs ring as the process's rustls crypto provider. Must run before any reqwest client is
/// built (reqwest is compiled without a provider of its own). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
