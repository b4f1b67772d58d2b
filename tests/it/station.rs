//! The service-centre workstation: `nca station enroll` (P4, keys and certificates onto an ID
//! card) and `nca station revoke` (P5), the real binary against a running service, with fresh
//! SoftHSM2 tokens standing for the operator's token and the applicant's card. Checked from
//! outside with pkcs11-tool, openssl (verify, ocsp) and the service's own database.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::harness::*;
use crate::kit::pkcs11::{attribute, fresh_token};

const PIN: &str = "1234";
/// The applicant's card PIN: distinctive, so that finding it in any output means a leak.
const CARD_PIN: &str = "kP7-card-4417";
const OPERATOR_IIN: &str = "920708497088";

// CK_TOKEN_INFO flags (PKCS#11 2.40 §3.2).
const CKF_USER_PIN_COUNT_LOW: u64 = 0x0001_0000;
const CKF_USER_PIN_FINAL_TRY: u64 = 0x0002_0000;
const CKF_USER_PIN_LOCKED: u64 = 0x0004_0000;

/// A running deployment with an operator whose keys are on a fresh token of `alg`.
struct Centre {
    d: Deployment,
    operator_token: String,
    /// Empty directories the station runs in (working directory, HOME, TMPDIR): they must stay
    /// empty, the workstation keeping nothing of the applicant's.
    cwd: tempfile::TempDir,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Centre {
    fn new(alg: &str) -> Centre {
        let mut d = Deployment::new();
        d.init();
        d.start();
        let centre = d.first_centre();
        let operator_token = fresh_token(&d, "op", PIN);
        let mut add = d.nca(&[
            "operator",
            "add",
            "--iin",
            OPERATOR_IIN,
            "--surname",
            "Сейітқали",
            "--name",
            "Оператор",
            "--centre",
            &centre,
            "--token",
            &operator_token,
            "--key-algorithm",
            alg,
        ]);
        add.env("NCA_OPERATOR_PIN", PIN)
            .env("NCA_PKCS11_MODULE", crate::kit::pkcs11::module());
        run_ok(&mut add);
        Centre {
            d,
            operator_token,
            cwd: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// `nca station ARGS --server … --operator-token …` as an operator runs it at a centre:
    /// from an empty directory, its own HOME and TMPDIR, `stdin` typed in.
    fn station(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        let ca = self.d.path("ca/root.pem").display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--server",
            &self.d.operator,
            "--operator-token",
            &self.operator_token,
            "--ca-file",
            &ca,
            "--module",
        ]);
        let module = crate::kit::pkcs11::module();
        all.push(&module);
        let mut c = Command::new(NCA);
        c.args(&all).current_dir(self.cwd.path()).env_clear();
        for k in ["PATH", "RUST_BACKTRACE"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.env("SOFTHSM2_CONF", self.d.softhsm_conf())
            .env("HOME", self.home.path())
            .env("TMPDIR", self.home.path())
            .env("NCA_OPERATOR_PIN", PIN)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn enroll(&self, card: &str, extra: &[&str], pin: &str, env: &[(&str, &str)]) -> Output {
        let mut args = vec!["station", "enroll", "--card-token", card, "--iin", IIN];
        args.extend(extra);
        self.station(&args, &format!("{pin}\n"), env)
    }

    /// Nothing was written where the station ran.
    fn assert_no_files_left(&self) {
        for dir in [self.cwd.path(), self.home.path()] {
            let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
            assert!(left.is_empty(), "the station left files behind: {left:?}");
        }
    }

    /// One value from the service's SQLite database.
    fn sql(&self, query: &str) -> String {
        let db = self.d.path("nca.db");
        stdout(&run_ok(Command::new("python3").args([
            "-c",
            &format!(
                "import sqlite3; print(sqlite3.connect('{}').execute(\"{query}\").fetchone()[0])",
                db.display()
            ),
        ])))
        .trim()
        .to_string()
    }
}

/// `key: value` lines of the station's standard output.
fn field(out: &Output, key: &str) -> Option<String> {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string))
}

fn failed_with(out: &Output, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure, got: {}", stdout(out));
    assert!(err.contains(words), "expected {words:?} in:\n{err}");
}

/// The objects on a card, one block per object as `pkcs11-tool --list-objects` prints them.
fn objects(c: &Centre, card: &str) -> Vec<String> {
    crate::kit::pkcs11::objects(&c.d, card, CARD_PIN, None)
}

fn of_kind<'a>(blocks: &'a [String], kind: &str) -> Vec<&'a String> {
    blocks.iter().filter(|b| b.starts_with(kind)).collect()
}

/// Sets flags in a SoftHSM2 token's state file, as a card that counts wrong tries would have
/// them. SoftHSM2 itself never locks a PIN; it keeps CK_TOKEN_INFO flags in `token.object` as
/// its vendor attribute 0x8000534B (a CK_ULONG, big-endian), which every new process reads.
fn set_token_flags(c: &Centre, label: &str, flags: u64) {
    let conf = std::fs::read_to_string(c.d.softhsm_conf()).unwrap();
    let dir = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("directories.tokendir"))
        .and_then(|l| l.trim().strip_prefix('='))
        .unwrap()
        .trim()
        .to_string();
    let mut padded = label.as_bytes().to_vec();
    padded.resize(32, b' ');
    let marker: [u8; 16] = [0, 0, 0, 0, 0x80, 0, 0x53, 0x4b, 0, 0, 0, 0, 0, 0, 0, 2];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path().join("token.object");
        let Ok(mut bytes) = std::fs::read(&file) else { continue };
        if !bytes.windows(32).any(|w| w == padded.as_slice()) {
            continue;
        }
        let at = bytes
            .windows(16)
            .position(|w| w == marker)
            .expect("token flags attribute")
            + 16;
        let old = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        bytes[at..at + 8].copy_from_slice(&(old | flags).to_be_bytes());
        // Whole or not at all: every SoftHSM2 process reads each token's file when it starts.
        let tmp = file.with_extension("object.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        return;
    }
    panic!("no token {label} in {dir}");
}

/// Reads a certificate off the card by CKA_ID, as PEM in `work`.
fn card_certificate(c: &Centre, card: &str, id: &str) -> PathBuf {
    let work = c.work.path();
    let der = work.join(format!("{id}.der"));
    run_ok(
        crate::kit::pkcs11::tool(&c.d)
            .args(["--token-label", card, "--read-object", "--type", "cert"])
            .args(["--id", id, "--output-file"])
            .arg(&der),
    );
    let pem = work.join(format!("{id}.pem"));
    run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem),
    );
    pem
}

/// What an enrolled card must hold: two private keys, sensitive and never extractable, labelled
/// AUTH/SIGN with the date and the application; a certificate beside each with the same CKA_ID,
/// verifying to the root, carrying the applicant's IIN and the serial the station printed.
fn check_card(c: &Centre, card: &str, number: &str, auth: &str, sign: &str) {
    let blocks = objects(c, card);
    let keys = of_kind(&blocks, "Private Key Object");
    let certs = of_kind(&blocks, "Certificate Object");
    assert_eq!((keys.len(), certs.len()), (2, 2), "{blocks:#?}");
    let today = time::OffsetDateTime::now_utc().date();
    let date = format!("{}{:02}{:02}", today.year(), u8::from(today.month()), today.day());
    for (prefix, serial) in [("AUTH-", auth), ("SIGN-", sign)] {
        let label = format!("{prefix}{date}-{number}");
        let key = keys
            .iter()
            .find(|b| attribute(b, "label:") == label)
            .unwrap_or_else(|| panic!("no key {label}: {blocks:#?}"));
        let access: Vec<&str> = attribute(key, "Access:").leak().split(", ").collect();
        assert!(
            access.contains(&"sensitive") && access.contains(&"never extractable") && !access.contains(&"extractable"),
            "{key}"
        );
        let id = attribute(key, "ID:");
        let cert = certs
            .iter()
            .find(|b| attribute(b, "ID:") == id)
            .unwrap_or_else(|| panic!("no certificate with the id {id} of {label}: {blocks:#?}"));
        assert_eq!(attribute(cert, "label:"), label);
        let pem = card_certificate(c, card, &id);
        let verified = openssl_verify(&c.d, &pem);
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stderr)
        );
        assert_eq!(serial_of(&pem), serial);
        let subject = stdout(&run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-subject", "-nameopt", "utf8", "-in"])
                .arg(&pem),
        ));
        assert!(subject.contains(&format!("IIN{IIN}")), "{subject}");
    }
}

#[test]
fn p4_writes_keys_and_certificates_onto_the_card_and_p5_revokes_them_at_the_centre() {
    let mut sc = Scenario::new("P4 onto a card, P5 at the centre");
    let (c, card) = sc.step("a centre with an operator on a token, and a blank card", || {
        let c = Centre::new("rsa-2048");
        let card = fresh_token(&c.d, "card", CARD_PIN);
        (c, card)
    });
    let (out, number, auth, sign) = sc.step("P4 enrols the card", || {
        let out = c.enroll(&card, &[], CARD_PIN, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let number = field(&out, "application").unwrap();
        let (auth, sign) = (field(&out, "auth").unwrap(), field(&out, "sign").unwrap());
        (out, number, auth, sign)
    });
    // The names came from the state database: the operator typed only the IIN.
    sc.check("the names came from the state database", || {
        let subject = field(&out, "subject").unwrap();
        assert!(
            subject.contains("ҚҰНАНБАЙ") && subject.contains(&format!("SERIALNUMBER=IIN{IIN}")),
            "{subject}"
        );
    });
    sc.check("the card holds the pair", || {
        check_card(&c, &card, &number, &auth, &sign)
    });
    sc.check("nothing left behind, the card PIN in no output", || {
        c.assert_no_files_left();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains(CARD_PIN) && !stdout(&out).contains(CARD_PIN),
            "the card PIN is in the output:\n{stderr}"
        );
    });

    // The application is complete only now that the card holds the pair: the last step of P4
    // is the write, recorded as done.
    sc.check("the application is completed, the card's write its last step", || {
        let (status, body) = c.d.get(&format!("/api/v1/applications/{number}?iin={IIN}"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, v["status"].as_str()), (200, Some("completed")), "{v}");
        let last = v["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (last["step"].as_str(), last["outcome"].as_str()),
            (Some("write_card"), Some("written")),
            "{v}"
        );
        assert!(!last["finished_at"].is_null());
    });

    // Run again for the same application: nothing new is made, the same pair is reported.
    sc.check("a second run for the same application makes nothing new", || {
        let again = c.enroll(&card, &["--application", &number], CARD_PIN, &[]);
        assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
        assert_eq!(field(&again, "auth").as_deref(), Some(auth.as_str()));
        check_card(&c, &card, &number, &auth, &sign);
    });

    // P5 at the centre: the operator revokes both; OCSP says so at once.
    sc.step("P5 revokes both", || {
        let out = c.station(
            &[
                "station",
                "revoke",
                "--iin",
                IIN,
                "--serial",
                &auth,
                "--serial",
                &sign,
                "--reason",
                "keyCompromise",
            ],
            "",
            &[],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let revoked: Vec<String> = stdout(&out)
            .lines()
            .filter_map(|l| l.strip_prefix("revoked: ").map(str::to_string))
            .collect();
        assert_eq!(revoked, [auth.clone(), sign.clone()]);
    });
    sc.check("OCSP says revoked at once", || {
        let id = attribute(
            of_kind(&objects(&c, &card), "Certificate Object")
                .into_iter()
                .find(|b| attribute(b, "label:").starts_with("AUTH-"))
                .unwrap(),
            "ID:",
        );
        let pem = card_certificate(&c, &card, &id);
        let ocsp = run(Command::new("openssl")
            .args(["ocsp", "-issuer"])
            .arg(c.d.path("ca/issuing.pem"))
            .arg("-cert")
            .arg(&pem)
            .args(["-url", &format!("{}/ocsp", c.d.public), "-CAfile"])
            .arg(c.d.path("ca/root.pem")));
        let text = format!("{}{}", stdout(&ocsp), String::from_utf8_lossy(&ocsp.stderr));
        assert!(
            text.contains(": revoked") && text.contains("Response verify OK") && text.contains("Reason: keyCompromise"),
            "{text}"
        );
    });
    // Naming nothing revokes all in force: none are left.
    sc.check("naming nothing revokes all in force: none are left", || {
        let out = c.station(&["station", "revoke", "--iin", IIN, "--reason", "unspecified"], "", &[]);
        failed_with(&out, "no certificate in force");
        c.assert_no_files_left();
    });
    sc.finish();
}

#[test]
fn a_wrong_or_locked_pin_stops_before_anything_is_filed_or_made() {
    let mut sc = Scenario::new("wrong, locked and missing PINs");
    let (c, card) = sc.step("a centre with an operator on a token, and a blank card", || {
        let c = Centre::new("rsa-2048");
        let card = fresh_token(&c.d, "card", CARD_PIN);
        (c, card)
    });

    sc.check("a wrong PIN: refused, nothing filed or made", || {
        let out = c.enroll(&card, &[], "0000", &[]);
        // SoftHSM2 sets CKF_USER_PIN_COUNT_LOW after a wrong try.
        failed_with(&out, "the card refused the PIN; the card says few tries are left");
        assert_eq!(objects(&c, &card).len(), 0);
        assert_eq!(c.sql("SELECT count(*) FROM applications"), "0");
    });

    // A card on its last try says so.
    sc.check("a card on its last try says so", || {
        set_token_flags(&c, &card, CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
        let out = c.enroll(&card, &[], "0000", &[]);
        failed_with(&out, "ONE try is left");
    });

    // A locked card is not tried at all, even with the right PIN.
    sc.check("a locked card is not tried, even with the right PIN", || {
        set_token_flags(&c, &card, CKF_USER_PIN_LOCKED);
        let out = c.enroll(&card, &[], CARD_PIN, &[]);
        failed_with(&out, "the card's PIN is locked");
        assert_eq!(objects(&c, &card).len(), 0);
        assert_eq!(c.sql("SELECT count(*) FROM applications"), "0");
    });

    // No PIN at all is refused too; it is never taken from the command line.
    sc.check("no PIN on standard input, none from the command line", || {
        let other = fresh_token(&c.d, "card", CARD_PIN);
        let out = c.station(&["station", "enroll", "--card-token", &other, "--iin", IIN], "", &[]);
        failed_with(&out, "no card PIN on standard input");
        let out = c.station(
            &[
                "station",
                "enroll",
                "--card-token",
                &other,
                "--iin",
                IIN,
                "--pin",
                CARD_PIN,
            ],
            "",
            &[],
        );
        failed_with(&out, "--pin");
    });
    sc.check("nothing left behind", || c.assert_no_files_left());
    sc.finish();
}

#[test]
fn an_interrupted_enrolment_resumes_with_the_keys_already_on_the_card() {
    let mut sc = Scenario::new("an interrupted enrolment");
    // P-256 on both: the TLS client key signs ECDSA on the operator's token.
    let (c, card) = sc.step("a centre with an operator on a P-256 token, and a blank card", || {
        let c = Centre::new("ec-p256");
        let card = fresh_token(&c.d, "card", CARD_PIN);
        (c, card)
    });
    let p256 = ["--key-type", "p256"];

    // The card is pulled out once the keys are made: the application is filed, the keys are on
    // the card, nothing was sent.
    let (number, status) = sc.step("pulled out after the card's keys", || {
        let out = c.enroll(&card, &p256, CARD_PIN, &[("NCA_STATION_STOP_AFTER", "card_keys")]);
        failed_with(&out, "stopped after card_keys");
        let number = field(&out, "application").unwrap();
        assert_eq!(of_kind(&objects(&c, &card), "Private Key Object").len(), 2);
        let status = format!("SELECT status FROM applications WHERE number = '{number}'");
        assert_eq!(c.sql(&status), "awaiting_documents");
        (number, status)
    });

    // Run again without the number: the application whose keys are on the card is found, the
    // keys are reused; this time it breaks off after the requests went in.
    sc.step("found again by its keys, broken off after the requests", || {
        let out = c.enroll(&card, &p256, CARD_PIN, &[("NCA_STATION_STOP_AFTER", "requests")]);
        failed_with(&out, "stopped after requests");
        assert_eq!(field(&out, "application").as_deref(), Some(number.as_str()));
        assert_eq!(of_kind(&objects(&c, &card), "Private Key Object").len(), 2);
        assert_eq!(c.sql(&status), "awaiting_confirmation");
        assert_eq!(c.sql("SELECT count(*) FROM applications"), "1");
    });

    // Then after the operator's confirmation: issued, not yet on the card.
    let resume = ["--key-type", "p256", "--application", &number];
    sc.step("broken off after the confirmation: issued, not on the card", || {
        let out = c.enroll(&card, &resume, CARD_PIN, &[("NCA_STATION_STOP_AFTER", "confirmation")]);
        failed_with(&out, "stopped after confirmation");
        assert_eq!(c.sql(&status), "issuing");
        assert_eq!(of_kind(&objects(&c, &card), "Certificate Object").len(), 0);
    });

    // The last run writes the pair and completes the application.
    let (auth, sign) = sc.step("the last run writes the pair", || {
        let out = c.enroll(&card, &resume, CARD_PIN, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(field(&out, "application").as_deref(), Some(number.as_str()));
        (field(&out, "auth").unwrap(), field(&out, "sign").unwrap())
    });
    sc.check("the card holds the pair, P-256 keys", || {
        check_card(&c, &card, &number, &auth, &sign);
        assert!(
            objects(&c, &card)
                .iter()
                .filter(|b| b.starts_with("Private Key Object"))
                .all(|b| b.contains("EC")),
            "P-256 keys"
        );
    });
    sc.check("the application is completed with two certificates", || {
        assert_eq!(c.sql(&status), "completed");
        assert_eq!(
            c.sql("SELECT count(*) FROM certificates WHERE holder = 'IIN850315306048'"),
            "2"
        );
    });

    // Another applicant's number does not resume on this applicant's card.
    sc.check("another applicant's number does not resume on this card", || {
        let out = c.station(
            &[
                "station",
                "enroll",
                "--card-token",
                &card,
                "--iin",
                "000101594515",
                "--application",
                &number,
            ],
            &format!("{CARD_PIN}\n"),
            &[],
        );
        failed_with(&out, "no application");
    });
    sc.check("nothing left behind", || c.assert_no_files_left());
    sc.finish();
}
