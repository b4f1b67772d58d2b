//! nca is the certificate-authority service of a national certifying centre: it issues,
//! re-issues and revokes citizens', organisations' and operators' certificates under the
//! regulation's processes (P1–P5), publishes their status (CRLs, OCSP), stamps time (RFC 3161)
//! and verifies signed documents for relying parties.
//!
//! # Roles
//!
//! Each role is a handle of its own, built once by [`service`] and handed where it is needed; no
//! role reaches another through a third (after Boulder's CA, RA and SA).
//!
//! - **The CA** ([`pki::Ca`]): builds, lints, records and signs certificates in one pipeline
//!   (pending before signed, issued before handed out), and counts what it signs; CRLs, OCSP
//!   answers (signed ahead, `pki::ocsp::presign`) and time-stamp tokens (`pki::tsa`) are its
//!   signatures too. `pki::policy` is the policy authority. It never decides whether to issue.
//! - **The RA** (`workflow`, its door [`workflow::application::Workflow`]): the regulation's
//!   processes as a typed state machine — the request, the registry check, the operator's
//!   identity step and confirmation, then the CA's issuance or revocation as an intent a
//!   background driver finishes if the request that recorded it died.
//! - **The store** ([`store::Store`]): the storage authority on SQLite or PostgreSQL, and the
//!   only place with SQL; a cheap clone, passed to every role that records.
//! - **The shared nouns** ([`model`]): what the store reads and writes and the roles pass one
//!   another — an application's status and its transitions, services, steps, refusals, the
//!   applicant, receipts, intents — and [`model::Actor`], who made a decision. Beneath the store,
//!   so that no role depends on the one above it for a type (after Boulder's `core`).
//! - **The key stores** ([`keys`]): PKCS#11 (an HSM) or software files (development only); the
//!   CA's private keys never leave them.
//! - **Operators** ([`operators`], door [`operators::Roll`]): the registration centres and the
//!   people at them, their lifecycle (§15), and whether a client certificate may act (kept per
//!   TLS connection, `operators::access`).
//! - **The station** ([`station`]): the operator's workstation side — their token, P4 onto an ID
//!   card, P5 — run at a centre, never on the CA host.
//! - **The state registry** ([`registry`]): persons and organisations, embedded or the gateway;
//!   IIN and BIN.
//! - **The cabinet** ([`cabinet`], door [`cabinet::Cabinet`]): the citizen's sign-in with their
//!   own AUTH key, and what a signed-in holder sees; its expiry reminders.
//! - **CRL publishing** ([`publisher`]): the schedule, one call to publish now, and the served
//!   copies.
//! - **The outbox** ([`outbox`]): status messages to the monitoring system and letters to
//!   applicants, written in the transaction of the change they report and delivered by workers.
//! - **The audit chain** ([`audit`]): every change named by its actor, hash-chained, with signed
//!   and time-stamped checkpoints, and its verification.
//! - **The cluster** (`cluster`): instances on one PostgreSQL, each periodic duty held once under
//!   a fenced lease (CRL publishing and the audit checkpoint among them).
//! - **HTTP** (`http`): the wire — routing, extractors, the API description, and (in
//!   `http/error.rs` only) status codes. A handler extracts, makes one call, maps the error.
//!
//! # What it never does
//!
//! - It never signs with a CA key outside a key store, and never lets a PIN reach a log.
//! - It never signs a certificate the database does not know as pending, nor hands one out
//!   before the database records it as issued; a crash loses nothing recorded.
//! - It never records anything for a request it refuses as bad input: a stable error code, and
//!   nothing changed.
//! - It never speaks HTTP below `http/`, nor SQL outside `store/`.
//! - A status instance (`--role status`) never writes and holds no key.
//!
//! The public surface is what `nca` (src/main.rs), the integration tests, the benchmarks
//! (examples/) and the fuzz targets use; the rest (`cluster`, `http`, `web`, `tls_client`) is
//! the crate's own.

// Denied, not forbidden: one isolated, documented call (`pki::tsa::clock`, adjtimex) allows it.
#![deny(unsafe_code)]

pub mod audit;
pub mod cabinet;
mod cluster;
pub mod config;
/// The fuzz targets' entry points (FUZZING.md); not an API.
#[doc(hidden)]
pub mod fuzz_entry;
mod http;
pub mod ids;
pub mod keys;
#[cfg(test)]
mod layering;
pub mod logging;
pub mod model;
pub mod operators;
pub mod outbox;
pub mod pki;
pub mod publisher;
pub mod registry;
pub mod service;
pub mod station;
pub mod store;
mod tls_client;
mod web;
pub mod workflow;
