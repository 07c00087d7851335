//! The ACME protocol (RFC 8555): wire types, JWS, the transport and the state machine.

pub mod account;
pub mod client;
pub mod jws;
pub mod machine;
pub mod policy;
pub mod progress;
pub mod records;
pub mod renewal;
pub mod solver;
pub mod timeline;
pub mod types;
