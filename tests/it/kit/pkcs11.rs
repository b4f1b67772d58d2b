//! pkcs11-tool as the independent client of a token, and the tokens of a deployment's own SoftHSM2
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::server::{Deployment, is_pkcs11};
use super::tools::{random_hex, run_ok, stdout};

/// SoftHSM2's module, as scripts/test.sh found it.
pub fn module() -> String {
    std::env::var("NCA_TEST_PKCS11_MODULE").expect("NCA_TEST_PKCS11_MODULE: run the suite through scripts/test.sh")
}

/// A fresh token labelled `label` with this user PIN (SO PIN 5678) in SoftHSM2 directory `dir`
/// (hsm/setup-token.sh: the configuration `dir/softhsm2.conf`, the tokens in `dir/tokens`, a
/// second call adding a token beside the first); returns the configuration's path.
pub fn new_token(dir: &Path, label: &str, pin: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/setup-token.sh");
    run_ok(Command::new("bash").arg(script).arg(dir).args([label, pin, "5678"]));
    dir.join("softhsm2.conf")
}

/// A fresh, empty token of the deployment's own SoftHSM2 directory (an operator's token, an
/// applicant's ID card), labelled `kind-` and a random suffix, with this user PIN; returns its
/// label.
pub fn fresh_token(d: &Deployment, kind: &str, pin: &str) -> String {
    let label = format!("{kind}-{}", random_hex(6));
    let conf = d.softhsm_conf();
    new_token(conf.parent().expect("the configuration's directory"), &label, pin);
    label
}

/// `pkcs11-tool --module SoftHSM2` on the deployment's SoftHSM2 directory.
pub fn tool(d: &Deployment) -> Command {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.args(["--module", &module()]).env("SOFTHSM2_CONF", d.softhsm_conf());
    cmd
}

/// The objects on the deployment's token `label` as `pkcs11-tool --list-objects` prints them, one
/// block per object (its header line "… Object; …" and its indented attributes); `kind` narrows
/// the list (`privkey`, `cert`, …).
pub fn objects(d: &Deployment, label: &str, pin: &str, kind: Option<&str>) -> Vec<String> {
    let mut cmd = tool(d);
    cmd.args(["--token-label", label, "--login", "--pin", pin, "--list-objects"]);
    if let Some(k) = kind {
        cmd.args(["--type", k]);
    }
    blocks(&stdout(&run_ok(&mut cmd)))
}

/// `pkcs11-tool --list-objects` output cut into one block per object.
pub fn blocks(listing: &str) -> Vec<String> {
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

/// Where a deployment's CA keys are: the token's label and user PIN, in the deployment's own
/// SoftHSM2 directory.
pub struct CaToken {
    pub label: String,
    pub pin: String,
}

/// Puts `d`'s CA keys on a token: the deployment's own in the pkcs11 run; in the software run a
/// fresh SoftHSM2 token in the deployment's SoftHSM2 directory, so that a property of keys on a
/// token is tested in both runs rather than skipped in one.
pub fn ca_token(d: &mut Deployment) -> CaToken {
    if is_pkcs11() {
        return CaToken {
            label: std::env::var("NCA_TEST_PKCS11_TOKEN").unwrap(),
            pin: std::env::var("NCA_TEST_PKCS11_PIN").unwrap(),
        };
    }
    let (label, pin) = ("nca-own-ca", "1234");
    let conf = d.softhsm_conf();
    new_token(conf.parent().expect("the configuration's directory"), label, pin);
    d.env.retain(|(k, _)| k != "NCA_KEY_STORE");
    for (k, v) in [
        ("NCA_KEY_STORE", "pkcs11".to_string()),
        ("NCA_PKCS11_MODULE", module()),
        ("NCA_PKCS11_TOKEN", label.to_string()),
        ("NCA_PKCS11_PIN", pin.to_string()),
    ] {
        d.env.push((k.to_string(), v));
    }
    CaToken {
        label: label.into(),
        pin: pin.into(),
    }
}

/// The CA key store of a deployment, which the test may take away: in the pkcs11 run the
/// deployment's own token directory, in the software run its key files.
pub struct OwnKeyStore {
    /// pkcs11: SoftHSM2's token directory; software: the key directory.
    dir: PathBuf,
    away: PathBuf,
}

impl OwnKeyStore {
    pub fn new(d: &Deployment) -> OwnKeyStore {
        let away = d.dir.path().join("away");
        let dir = if is_pkcs11() {
            d.softhsm_conf()
                .parent()
                .expect("the configuration's directory")
                .join("tokens")
        } else {
            d.data().join("keys")
        };
        OwnKeyStore { dir, away }
    }

    /// The token (its directory, as an HSM unplugged) or the key files, gone.
    pub fn take_away(&self) {
        std::fs::rename(&self.dir, &self.away).unwrap();
    }

    pub fn give_back(&self) {
        std::fs::rename(&self.away, &self.dir).unwrap();
    }
}

/// An operator of the deployment's first centre (IIN 690214449535) whose keys `nca operator add`
/// made on a fresh token of the deployment's own with user PIN `pin`; returns the token's label
/// and what `nca operator add` printed.
pub fn operator_on_token(d: &Deployment, pin: &str) -> (String, serde_json::Value) {
    let token = fresh_token(d, "op", pin);
    let centre = d.first_centre();
    let mut add = d.nca(&[
        "operator",
        "add",
        "--iin",
        "690214449535",
        "--surname",
        "Тоқенов",
        "--name",
        "Ерлан",
        "--centre",
        &centre,
        "--token",
        &token,
    ]);
    add.env("NCA_OPERATOR_PIN", pin).env("NCA_PKCS11_MODULE", module());
    let op = serde_json::from_slice(&run_ok(&mut add).stdout).expect("nca operator add prints JSON");
    (token, op)
}
