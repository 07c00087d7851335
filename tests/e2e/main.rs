//! End-to-end tests: the real acme-client binary against a real Pebble that each test starts on
//! ports of its own, so tests run in parallel. Pebble missing is a failure, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod dns;
mod dns_kinds;
mod faults;
mod features;
mod frontend;
mod harness;
mod hints;
mod http;
mod issue;
mod life;
mod lifecycle;
mod output;
mod production;
mod proxy;
mod resolvers;
mod safety;
mod serve;
mod summary;
mod usage;
