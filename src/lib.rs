//! nca issues, re-issues and revokes certificates under the regulation's processes for a
//! national certifying centre. It never holds a CA private key outside a key store (an HSM
//! through PKCS#11, or software files in a development run), and never speaks HTTP below
//! `http/`.
//!
//! Roles, after Boulder: `pki` is the CA (builds, lints, signs) with `pki::policy` as the policy
//! authority, `store` the storage authority (the only SQL), `keys` the key stores, `operators`
//! the people who confirm requests, `registry` the state databases, `cabinet` the citizens'
//! sign-in with their own AUTH key, `http` the wire.

// Denied, not forbidden: one isolated, documented call (`pki::tsa::clock`, adjtimex) allows it.
#![deny(unsafe_code)]

pub mod audit;
pub mod cabinet;
pub mod cluster;
pub mod config;
pub mod fuzz_entry;
pub mod http;
pub mod ids;
pub mod keys;
#[cfg(test)]
mod layering;
pub mod logging;
pub mod operators;
pub mod outbox;
pub mod pki;
pub mod publisher;
pub mod registry;
pub mod service;
pub mod station;
pub mod store;
pub mod tls_client;
pub mod web;
pub mod workflow;
