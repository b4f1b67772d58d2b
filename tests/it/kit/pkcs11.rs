//! pkcs11-tool as the independent client of a token, and a token of a test's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::server::{Deployment, is_pkcs11};
use super::tools::{run_ok, stdout};

/// SoftHSM2's module, as scripts/test.sh found it.
pub fn module() -> String {
    std::env::var("NCA_TEST_PKCS11_MODULE").expect("NCA_TEST_PKCS11_MODULE: run the suite through scripts/test.sh")
}

/// The objects on token `label` as `pkcs11-tool --list-objects` prints them, one block per
/// object (its header line "… Object; …" and its indented attributes); `kind` narrows the list
/// (`privkey`, `cert`, …). `conf` is the SoftHSM2 configuration the token is in, when it is not
/// the suite's.
pub fn objects(conf: Option<&Path>, label: &str, pin: &str, kind: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.args([
        "--module",
        &module(),
        "--token-label",
        label,
        "--login",
        "--pin",
        pin,
        "--list-objects",
    ]);
    if let Some(k) = kind {
        cmd.args(["--type", k]);
    }
    if let Some(c) = conf {
        cmd.env("SOFTHSM2_CONF", c);
    }
    let listing = stdout(&run_ok(&mut cmd));
    let mut blocks: Vec<String> = Vec::new();
    for line in listing.lines() {
        if line.contains(" Object;") {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks
}

/// The value of attribute `name` (`"label:"`, `"Usage:"`, …) in an object's block.
pub fn attribute(block: &str, name: &str) -> String {
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {block}"))
        .trim()
        .to_string()
}

/// Where a deployment's CA keys are: the token's SoftHSM2 configuration (None: the suite's),
/// label and user PIN.
pub struct CaToken {
    pub conf: Option<std::path::PathBuf>,
    pub label: String,
    pub pin: String,
}

/// Puts `d`'s CA keys on a token: the suite's in the pkcs11 run; in the software run a fresh
/// SoftHSM2 token of this test's own (hsm/setup-token.sh in the deployment's directory), so that a
/// property of keys on a token is tested in both runs rather than skipped in one.
pub fn ca_token(d: &mut Deployment) -> CaToken {
    if is_pkcs11() {
        return CaToken {
            conf: None,
            label: std::env::var("NCA_TEST_PKCS11_TOKEN").unwrap(),
            pin: std::env::var("NCA_TEST_PKCS11_PIN").unwrap(),
        };
    }
    let (label, pin) = ("nca-own-ca", "1234");
    let dir = d.dir.path().join("hsm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/setup-token.sh");
    run_ok(Command::new("bash").arg(script).arg(&dir).args([label, pin, "5678"]));
    let conf = dir.join("softhsm2.conf");
    d.env.retain(|(k, _)| k != "NCA_KEY_STORE");
    for (k, v) in [
        ("NCA_KEY_STORE", "pkcs11".to_string()),
        ("NCA_PKCS11_MODULE", module()),
        ("NCA_PKCS11_TOKEN", label.to_string()),
        ("NCA_PKCS11_PIN", pin.to_string()),
        ("SOFTHSM2_CONF", conf.display().to_string()),
    ] {
        d.env.push((k.to_string(), v));
    }
    CaToken {
        conf: Some(conf),
        label: label.into(),
        pin: pin.into(),
    }
}

/// The CA key store of a deployment, made its own so that the test may take it away: in the
/// pkcs11 run a SoftHSM2 token of its own (configuration and token directory in the
/// deployment's temporary directory: the suite's token is shared with the tests running beside
/// this one), in the software run the deployment's key files.
pub struct OwnKeyStore {
    /// pkcs11: SoftHSM2's token directory; software: the key directory.
    dir: PathBuf,
    away: PathBuf,
}

impl OwnKeyStore {
    /// `label` names the token of the pkcs11 run: one per test, as tests run side by side.
    pub fn new(d: &mut Deployment, label: &str) -> OwnKeyStore {
        let away = d.dir.path().join("away");
        if !is_pkcs11() {
            return OwnKeyStore {
                dir: d.data().join("keys"),
                away,
            };
        }
        let hsm = d.dir.path().join("hsm");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/setup-token.sh");
        let out = stdout(&run_ok(Command::new(script).arg(&hsm).args([label, "1234", "5678"])));
        let conf = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("SOFTHSM2_CONF="))
            .map(|c| c.trim_matches(|ch| ch == '\'' || ch == '"').to_string())
            .unwrap_or_else(|| panic!("setup-token.sh said {out}"));
        for (k, v) in [
            ("SOFTHSM2_CONF", conf),
            ("NCA_PKCS11_TOKEN", label.to_string()),
            ("NCA_PKCS11_PIN", "1234".to_string()),
        ] {
            d.env.push((k.into(), v));
        }
        OwnKeyStore {
            dir: hsm.join("tokens"),
            away,
        }
    }

    /// The token (its directory, as an HSM unplugged) or the key files, gone.
    pub fn take_away(&self) {
        std::fs::rename(&self.dir, &self.away).unwrap();
    }

    pub fn give_back(&self) {
        std::fs::rename(&self.away, &self.dir).unwrap();
    }
}
