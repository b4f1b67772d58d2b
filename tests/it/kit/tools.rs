//! Running the real clients: processes, curl, and waiting for what happens in the background.

use std::path::Path;
use std::process::{Command, Output};

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs curl; returns the status code and body. Loopback only.
pub fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out = run(Command::new("curl")
        .args(["-s", "--max-time", "60", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args));
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (code, std::fs::read(&body).unwrap_or_default())
}

/// A JSON string literal.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// The names of an application view's steps, in order.
pub fn step_names(v: &serde_json::Value) -> Vec<String> {
    v["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["step"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Polls `f` every 100 ms for up to `secs` seconds until it gives `Some`; the last `None` panics
/// with `what`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..secs * 10 {
        if let Some(t) = f() {
            return t;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    f().unwrap_or_else(|| panic!("not within {secs} s: {what}"))
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b).unwrap();
    hex::encode(b)
}

/// A port nothing listens on now (a stand-in or a server binds it later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
