//! The state registries of persons and organisations (`state`): embedded CSV or the e-gov
//! gateway. The identifiers they are keyed by (IIN, BIN) live beneath everything, in
//! [`crate::ids`].

mod state;

pub use state::{
    EmbeddedRegistry, Gateway, Organization, Person, RegistryError, StateRegistry, names_match, read_answer,
};

/// The identifiers' old path, kept for one release so that callers outside the crate move at
/// their own pace; the crate itself names [`crate::ids`].
pub use crate::ids::{Bin, IdError, Iin};
