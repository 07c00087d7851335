//! acme-client: obtain a certificate from an ACME CA (RFC 8555) by http-01 or dns-01, with its own
//! DNS and HTTP responders, then serve it over HTTPS.
//!
//! The binary (`main.rs`) is a thin shell over [`app::run`]; tests drive the modules directly.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acme;
pub mod app;
pub mod cert;
pub mod challenge;
pub mod cli;
pub mod commands;
pub mod error;
pub mod files;
pub mod serve;
pub mod summary;

/// Installs ring as the process's rustls crypto provider. Must run before any reqwest client is
/// built (reqwest is compiled without a provider of its own). Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
