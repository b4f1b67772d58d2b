//! The test kit: the real server (`server`), the real clients around it (`tools`, `openssl`,
//! `pkcs11`) and the stand-ins for the systems the service talks to (`smtp`). Test modules
//! import `crate::harness::*`, which re-exports the kit's common surface; the stand-ins are
//! imported from here by name.
//!
//! The state registry's and the monitoring system's stand-ins still live beside their tests
//! (tests/it/registry.rs, tests/it/monitoring.rs, tests/it/receiver.rs).

pub mod openssl;
pub mod pkcs11;
pub mod server;
pub mod smtp;
pub mod tools;
