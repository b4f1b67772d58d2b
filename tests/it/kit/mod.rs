//! The test kit: the real server (`server`), the real clients around it (`tools`, `openssl`,
//! `pkcs11`), and the stand-ins for the systems the service talks to, one each: the e-gov
//! registry gateway (`registry`), the monitoring receiver (`monitoring`), the SMTP relay
//! (`smtp`), with the TLS they are served over (`tls`). Test modules import `crate::harness::*`,
//! which re-exports the kit's common surface; the stand-ins are imported from here by name.

pub mod monitoring;
pub mod openssl;
pub mod pkcs11;
pub mod registry;
pub mod scenario;
pub mod server;
pub mod smtp;
pub mod tls;
pub mod tools;
