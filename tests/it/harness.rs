//! What every test module imports (`use crate::harness::*`): the test kit's surface, as it was
//! when the kit was one file. New helpers go into `kit/`; this list keeps the old names.

// The surface as it was: a name no module uses today stays, for the branches that do.
#![allow(unused_imports)]

pub use crate::kit::openssl::{cms_sign, cms_sign_as, openssl_csr, openssl_verify, serial_of};
pub use crate::kit::scenario::Scenario;
pub use crate::kit::server::{BIN, Deployment, IIN, NCA, fresh_postgres_database, is_pkcs11, key_store, postgres_url};
pub use crate::kit::tools::{curl, eventually, free_port, js, random_hex, run, run_ok, stdout, step_names, write};
