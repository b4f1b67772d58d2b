//! The integration suite: one binary, modules per area. Every test starts the real `nca`
//! binary on 127.0.0.1 with a fresh data directory and uses real clients (openssl, curl,
//! pkcs11-tool, pkilint). `NCA_TEST_KEY_STORE` picks the key store (software, or SoftHSM2: a
//! fresh token of each deployment's own, labelled and PIN'd as scripts/test.sh says);
//! `NCA_TEST_POSTGRES_URL` names the PostgreSQL server that store tests also run against.
// A test fails by panicking: the gate's unwrap/expect lints (Cargo.toml) are for the service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod archive;
mod audit;
mod ca_core;
mod cabinet;
mod cluster;
mod cms;
mod faults;
mod harness;
mod hostile;
mod http_api;
mod keepalive;
mod kit;
mod metrics;
mod migrations;
mod monitoring;
mod notices;
mod operators;
mod portal;
mod presign;
mod registry;
mod relying;
mod replica;
mod revocation;
mod station;
mod store;
mod topology;
mod tsa;
mod verify;
mod workflow;
