//! Whether the host's clock may be trusted for a time-stamp: the kernel's own view of its
//! synchronisation (adjtimex), as NTP and chrony leave it.

use crate::config::ClockCheck;

/// What the TSA knows about the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockState {
    /// The kernel says the clock is synchronised, or the configuration says to trust it.
    Synchronised,
    /// The kernel says the clock is unsynchronised (or the configuration says to act so).
    Unsynchronised(String),
    /// The host cannot tell (adjtimex failed); the clock is trusted, and `/readyz` says so.
    Unknown(String),
}

impl ClockState {
    /// Whether a token may be issued now.
    pub fn usable(&self) -> bool {
        !matches!(self, ClockState::Unsynchronised(_))
    }

    /// For `/readyz`: `synchronised`, `unsynchronised: …`, `unknown: …`.
    pub fn describe(&self) -> String {
        match self {
            ClockState::Synchronised => "synchronised".into(),
            ClockState::Unsynchronised(why) => format!("unsynchronised: {why}"),
            ClockState::Unknown(why) => format!("unknown: {why}"),
        }
    }
}

/// The clock's state under the configured check.
pub fn state(check: ClockCheck) -> ClockState {
    match check {
        ClockCheck::Trust => ClockState::Synchronised,
        ClockCheck::Unsynchronised => {
            ClockState::Unsynchronised("the configuration says so (tsa.clock = unsynchronised)".into())
        }
        ClockCheck::Host => host(),
    }
}

#[cfg(target_os = "linux")]
fn host() -> ClockState {
    // adjtimex(2) with modes = 0 only reads; it needs no privilege. TIME_ERROR (5) is the
    // kernel's "clock not synchronised" (STA_UNSYNC set, or the maximum error past 16 s).
    const TIME_ERROR: i32 = 5;
    match adjtimex_read() {
        Ok((TIME_ERROR, maxerror_us)) => ClockState::Unsynchronised(format!(
            "adjtimex reports TIME_ERROR (maximum error {} ms)",
            maxerror_us / 1000
        )),
        Ok(_) => ClockState::Synchronised,
        Err(e) => ClockState::Unknown(format!("adjtimex: {e}")),
    }
}

#[cfg(not(target_os = "linux"))]
fn host() -> ClockState {
    ClockState::Unknown("this host has no adjtimex".into())
}

/// The one unsafe call of the crate (lib.rs denies unsafe code everywhere else): there is no
/// safe binding of adjtimex in the dependency set, and the call is a read of a plain C struct
/// that the kernel fills.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn adjtimex_read() -> std::io::Result<(i32, i64)> {
    // SAFETY: `timex` is a plain C struct of integers, for which all-zero is a valid value;
    // modes = 0 asks the kernel to change nothing, only to fill the struct, which lives on
    // this stack frame for the whole call.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: as above; the pointer is to a valid, exclusively borrowed `timex`.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((state, tx.maxerror as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_states() {
        assert!(state(ClockCheck::Trust).usable());
        assert!(!state(ClockCheck::Unsynchronised).usable());
        // Whatever the host says, the real check answers without failing.
        let _ = state(ClockCheck::Host).describe();
    }
}
