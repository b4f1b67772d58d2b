//! The registration authority under faults, with the real parts failing: the CA's key store
//! taken away during a confirmation and given back, PostgreSQL stopped and started during a run
//! of applications, `nca serve` killed with SIGKILL during a load of them, and a revocation
//! signed by a stranger. After each, every application is at an end or waits with a reason, and
//! the database's invariants hold ([`check_invariants`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;
use crate::kit::pkcs11::OwnKeyStore;
use crate::workflow::{add_operator, application, confirmation, json, post_confirmation, post_identity, submit};

/// Statuses an application may rest in: its end, or a wait the README documents.
const RESTING: [&str; 6] = [
    "awaiting_registry",
    "awaiting_documents",
    "awaiting_confirmation",
    "awaiting_key_store",
    "completed",
    "refused",
];

/// The body every 5xx carries: the cause is in the log only.
const GENERIC: &str = "the service could not complete the request; the cause is logged";

/// A database the test reads directly, with the `sqlite3` module of python3 or with psql.
pub(crate) enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    /// The rows of `query`, each a vector of its columns as text (NULL as empty).
    pub(crate) fn rows(&self, query: &str) -> Vec<Vec<String>> {
        let out = match self {
            Db::Sqlite(path) => run_ok(Command::new("python3").args([
                "-c",
                "import sys, sqlite3\n\
                 for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):\n\
                 \x20   print('\\x1f'.join('' if v is None else str(v) for v in r).replace('\\n', ' '))",
                &path.display().to_string(),
                query,
            ])),
            Db::Postgres(url) => run_ok(Command::new("psql").args([url.as_str(), "-XAtF", "\x1f", "-c", query])),
        };
        stdout(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\x1f').map(str::to_string).collect())
            .collect()
    }

    pub(crate) fn count(&self, query: &str) -> i64 {
        self.rows(query)[0][0].parse().unwrap()
    }
}

/// What must hold once every application has come to rest, whatever failed on the way: each is
/// in a resting status; a completed one has exactly one pair, both its own; no certificate of an
/// application is left pending; no issued certificate lacks its application; nothing was revoked
/// (the load revokes nothing of its own); and each application's monitoring messages follow its statuses
/// in order, none missing, none twice, the last one its status now.
pub(crate) fn check_invariants(db: &Db) {
    let restless = db.rows(&format!(
        "SELECT number, status FROM applications WHERE status NOT IN ({})",
        RESTING.map(|s| format!("'{s}'")).join(", ")
    ));
    assert!(restless.is_empty(), "applications not at rest: {restless:?}");
    let bad_pairs = db.rows(
        "SELECT a.number FROM applications a WHERE a.status = 'completed' AND (a.auth_serial IS NULL \
         OR a.sign_serial IS NULL OR (SELECT COUNT(*) FROM certificates c WHERE c.application = a.number \
         AND c.status = 'issued') <> 2)",
    );
    assert!(
        bad_pairs.is_empty(),
        "completed without exactly one pair: {bad_pairs:?}"
    );
    let halves = db.rows(
        "SELECT a.number FROM applications a WHERE a.status <> 'completed' AND EXISTS \
         (SELECT 1 FROM certificates c WHERE c.application = a.number AND c.status = 'issued')",
    );
    assert!(
        halves.is_empty(),
        "certificates issued to unfinished applications: {halves:?}"
    );
    let pending =
        db.rows("SELECT serial, application FROM certificates WHERE status = 'pending' AND application IS NOT NULL");
    assert!(pending.is_empty(), "pending certificates left behind: {pending:?}");
    let orphans = db.rows(
        "SELECT c.serial FROM certificates c WHERE c.status = 'issued' AND c.application IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM applications a WHERE a.number = c.application AND (a.auth_serial = c.serial OR a.sign_serial = c.serial))",
    );
    assert!(
        orphans.is_empty(),
        "issued certificates without their application: {orphans:?}"
    );
    // (Certificates issued outside the workflow may be revoked beside the load.)
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM revocations r JOIN certificates c ON c.issuer = r.issuer AND c.serial = r.serial \
             WHERE c.application IS NOT NULL"
        ),
        0,
        "revocations of applications' certificates"
    );

    // The transitions P1 has: each message's status must follow the one before.
    let follows = |before: Option<&str>, next: &str| match before {
        None => ["awaiting_registry", "awaiting_documents", "refused"].contains(&next),
        Some("awaiting_registry") => ["awaiting_documents", "refused"].contains(&next),
        Some("awaiting_documents") => ["awaiting_confirmation", "refused"].contains(&next),
        Some("awaiting_confirmation") => ["issuing", "refused"].contains(&next),
        Some("issuing") => ["awaiting_key_store", "completed", "refused"].contains(&next),
        Some("awaiting_key_store") => ["completed", "refused"].contains(&next),
        Some(_) => false,
    };
    let statuses: std::collections::BTreeMap<String, String> = db
        .rows("SELECT number, status FROM applications")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let mut told: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in db.rows("SELECT application, body FROM outbox WHERE channel = 'monitoring' ORDER BY application, seq") {
        let body: serde_json::Value = serde_json::from_str(&r[1]).unwrap();
        assert!(body["data"]["actor"]["role"].is_string(), "{body}");
        told.entry(r[0].clone())
            .or_default()
            .push(body["data"]["status"].as_str().unwrap().to_string());
    }
    for (number, status) in &statuses {
        let seen = told.get(number).cloned().unwrap_or_default();
        let in_order = seen
            .iter()
            .enumerate()
            .all(|(i, s)| follows(i.checked_sub(1).map(|j| seen[j].as_str()), s));
        assert!(
            in_order && seen.last() == Some(status),
            "monitoring messages of {number} ({status}): {seen:?}"
        );
    }
}

fn application_view(d: &Deployment, number: &str) -> serde_json::Value {
    let (status, body) = d.get(&format!("/api/v1/applications/{number}?iin={IIN}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)
}

#[test]
fn a_confirmation_while_the_key_store_is_away_waits_and_completes_once_it_is_back() {
    let mut sc = Scenario::new("the key store away during a confirmation");
    let mut d = Deployment::new();
    let keys = OwnKeyStore::new(&d);
    d.env.push(("NCA_WORKFLOW_DRIVER_SECONDS".into(), "1".into()));
    let work = tempfile::tempdir().unwrap();
    let (op, number, cms, issued) = sc.step("an application awaiting the operator's confirmation", || {
        d.init();
        d.start();
        let centre = d.first_centre();
        let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
        let (status, app) = submit(&d, &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "k"));
        assert_eq!(status, 201, "{app}");
        let number = app["number"].as_str().unwrap().to_string();
        post_identity(&d, &op, &number, r#"{"confirmed":true,"documents":["identity card"]}"#);
        let cms = confirmation(&d, &op, &number, work.path());
        (op, number, cms, d.certificate_count("issued"))
    });

    // The token (or the key files) gone: the confirmation is taken, and the application says it
    // waits for the key store, with no certificate: never half a pair.
    keys.take_away();
    sc.step("the confirmation is taken and waits for the key store", || {
        let (status, body) = post_confirmation(&d, &op, &number, &cms);
        let v = json(&body);
        assert_eq!(status, 202, "{v}");
        assert_eq!(
            (v["status"].as_str(), v["waiting"].as_str()),
            (Some("awaiting_key_store"), Some("key_store_unavailable")),
            "{v}"
        );
        assert!(v["certificates"].is_null(), "{v}");
    });
    // Driver rounds while it is still away change nothing, and write nothing: no pending or
    // abandoned certificate row, no audit record, no message per round (one attempt, then one
    // unrecorded probe of the key per round).
    let db = Db::Sqlite(d.path("nca.db"));
    sc.check("driver rounds with the key store away write nothing", || {
        let written = |db: &Db| {
            db.rows(
                "SELECT (SELECT COUNT(*) FROM certificates), (SELECT COUNT(*) FROM audit WHERE kind <> 'audit.checkpoint'), \
                 (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM application_steps)",
            )
        };
        let before = written(&db);
        std::thread::sleep(Duration::from_secs(4));
        let v = application_view(&d, &number);
        assert_eq!(v["status"], "awaiting_key_store", "{v}");
        assert!(v["certificates"].is_null(), "{v}");
        assert_eq!(d.certificate_count("issued"), issued);
        assert_eq!(
            written(&db),
            before,
            "certificates, audit records, messages, steps after four driver rounds with the key store away"
        );
    });
    sc.check("a second confirmation is a conflict, not a second attempt", || {
        assert_eq!(post_confirmation(&d, &op, &number, &cms).0, 409);
    });

    // Back: the driver finishes it by itself, with exactly one AUTH and one SIGN certificate.
    keys.give_back();
    sc.step("the driver completes it once the key store is back", || {
        let v = eventually(30, "the application completes once the key store is back", || {
            let v = application_view(&d, &number);
            (v["status"] == "completed").then_some(v)
        });
        assert_eq!(v["certificates"].as_array().map(Vec::len), Some(2), "{v}");
        assert!(v["waiting"].is_null(), "{v}");
    });
    sc.check("exactly one AUTH and one SIGN certificate", || {
        assert_eq!(d.certificate_count("issued"), issued + 2);
        let profiles = db.rows(&format!(
            "SELECT profile, COUNT(*) FROM certificates WHERE application = '{number}' AND status = 'issued' GROUP BY profile ORDER BY profile"
        ));
        assert_eq!(
            profiles,
            [["individual-auth", "1"], ["individual-sign", "1"]].map(|r| r.map(str::to_string).to_vec()),
        );
    });
    // The audit chain names who did each step: the applicant submitted, the operator (with the
    // certificate they authenticated with) confirmed, the service finished after the fault.
    sc.check("the audit chain names who did each step", || {
        let actors: Vec<(String, serde_json::Value)> = db
            .rows(&format!(
                "SELECT kind, detail FROM audit WHERE subject = '{number}' ORDER BY seq"
            ))
            .into_iter()
            .map(|r| {
                (
                    r[0].clone(),
                    serde_json::from_str::<serde_json::Value>(&r[1]).unwrap()["actor"].clone(),
                )
            })
            .collect();
        let roles: Vec<(&str, &str)> = actors
            .iter()
            .map(|(k, a)| (k.as_str(), a["role"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(
            roles,
            [
                ("application.awaiting_documents", "applicant"),
                ("application.awaiting_confirmation", "operator"),
                ("application.issuing", "operator"),
                ("application.awaiting_key_store", "service"),
                ("application.completed", "service"),
            ],
            "{actors:?}"
        );
        assert_eq!(actors[0].1["iin"], IIN);
        assert_eq!(actors[2].1["iin"], "920708497088");
        assert!(
            actors[2].1["certificate"].as_str().is_some_and(|c| !c.is_empty()),
            "{actors:?}"
        );
        assert_eq!(actors[4].1["name"], "nca");
    });
    sc.check("the store's invariants hold", || check_invariants(&db));
    sc.finish();
}

#[test]
fn a_revocation_signed_by_a_stranger_gets_the_same_refusal_whatever_the_iin_holds() {
    let mut sc = Scenario::new("revocations signed by a stranger");
    let (d, centre, work) = crate::workflow::running();
    // IIN holds a pair; 000101594515 holds nothing.
    let (op, serials) = sc.step("an operator, and an applicant holding a pair", || {
        let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
        let (_, app) = submit(&d, &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "s"));
        let number = app["number"].as_str().unwrap().to_string();
        post_identity(&d, &op, &number, r#"{"confirmed":true}"#);
        crate::workflow::confirm_completed(&d, &op, &number, work.path());
        let holding = application_view(&d, &number);
        let serials: Vec<String> = holding["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        (op, serials)
    });

    // The stranger: a person with a valid SIGN certificate of this CA (the operator's), signing
    // revocation requests for other people.
    let ask = |iin: &str, certificates: &[String], tag: &str| {
        let request = work.path().join(format!("{tag}.json"));
        write(
            &request,
            serde_json::json!({"service": "revoke", "applicant": {"iin": iin}, "certificates": certificates, "reason": "keyCompromise"})
                .to_string()
                .as_bytes(),
        );
        let signed = work.path().join(format!("{tag}.p7s"));
        cms_sign(&request, &op.join("sign.crt"), &op.join("sign.key"), &signed);
        let (status, body) = curl(&[
            "-H",
            "content-type: application/pkcs7-mime",
            "--data-binary",
            &format!("@{}", signed.display()),
            &format!("{}/api/v1/applications", d.public),
        ]);
        (status, json(&body))
    };
    let answers = sc.step("four requests signed by the stranger", || {
        [
            ask(IIN, &serials, "holder-named"),
            ask(IIN, &[], "holder-all"),
            ask("000101594515", &[], "none-all"),
            ask("000101594515", &serials, "none-named"),
        ]
    });
    // What may differ between the answers: the number and the times.
    let shape = |v: &serde_json::Value| {
        let mut v = v.clone();
        v["number"] = serde_json::Value::Null;
        for s in v["steps"].as_array_mut().into_iter().flatten() {
            s["started_at"] = serde_json::Value::Null;
            s["finished_at"] = serde_json::Value::Null;
        }
        v
    };
    for (tag, (status, v)) in ["holder-named", "holder-all", "none-all", "none-named"]
        .iter()
        .zip(&answers)
    {
        sc.check(
            &format!("{tag}: the same refusal, saying nothing of what the IIN holds"),
            || {
                assert_eq!(
                    (*status, v["refusal"]["code"].as_str()),
                    (422, Some("applicant_signature_invalid")),
                    "{v}"
                );
                assert_eq!(shape(v), shape(&answers[0].1), "{v}");
                let text = v.to_string();
                assert!(
                    serials.iter().all(|s| !text.contains(s.as_str())) && !text.contains("in force"),
                    "{v}"
                );
            },
        );
    }
    sc.check("the holder's certificates stay valid", || {
        for serial in &serials {
            let (_, body) = d.get(&format!("/api/v1/certificates/{serial}"));
            assert_eq!(json(&body)["status"], "valid");
        }
    });
    sc.finish();
}

/// One client of the load: P1 applications from submission to confirmation, as long as the
/// service answers; every HTTP status it got, and the bodies of the 5xx and 4xx answers.
#[derive(Clone)]
pub(crate) struct Client {
    public: String,
    operator: String,
    cacert: String,
    op: PathBuf,
    request: String,
    work: PathBuf,
}

#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) numbers: Vec<String>,
    pub(crate) answers: Vec<(u16, String)>,
}

impl Client {
    pub(crate) fn new(d: &Deployment, op: &Path, request: &str, work: &Path) -> Client {
        Client {
            public: d.public.clone(),
            operator: d.operator.clone(),
            cacert: d.path("ca/root.pem").display().to_string(),
            op: op.to_path_buf(),
            request: request.to_string(),
            work: work.to_path_buf(),
        }
    }

    fn operator(&self, path: &str, body: Option<(&str, &str)>) -> (u16, Vec<u8>) {
        let (cert, key) = (
            self.op.join("auth.crt").display().to_string(),
            self.op.join("auth.key").display().to_string(),
        );
        let url = format!("{}{path}", self.operator);
        let mut args = vec!["--cacert", &self.cacert, "--cert", &cert, "--key", &key];
        if let Some((ctype, data)) = body {
            args.extend(["-H", ctype, "--data-binary", data]);
        }
        args.push(&url);
        curl(&args)
    }

    /// One application through P1, or as far as the service lets it; false once it stops
    /// answering.
    fn one(&self, seen: &Mutex<Seen>) -> bool {
        let note = |status: u16, body: &[u8]| {
            seen.lock()
                .unwrap()
                .answers
                .push((status, String::from_utf8_lossy(body).into_owned()));
            (200..300).contains(&status)
        };
        let (status, body) = curl(&[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &self.request,
            &format!("{}/api/v1/applications", self.public),
        ]);
        if !note(status, &body) {
            return status != 0;
        }
        let number = json(&body)["number"].as_str().unwrap().to_string();
        seen.lock().unwrap().numbers.push(number.clone());
        let base = format!("/api/v1/operator/applications/{number}");
        let (status, body) = self.operator(
            &format!("{base}/identity"),
            Some((
                "content-type: application/json",
                r#"{"confirmed":true,"documents":["identity card"]}"#,
            )),
        );
        if !note(status, &body) {
            return status != 0;
        }
        let (status, tbs) = self.operator(&format!("{base}/to-be-signed"), None);
        if !note(status, &tbs) {
            return status != 0;
        }
        let tbs_file = self.work.join(format!("{number}.tbs"));
        write(&tbs_file, &tbs);
        let cms = self.work.join(format!("{number}.p7s"));
        cms_sign(&tbs_file, &self.op.join("sign.crt"), &self.op.join("sign.key"), &cms);
        let (status, body) = self.operator(
            &format!("{base}/confirmation"),
            Some(("content-type: application/pkcs7-mime", &format!("@{}", cms.display()))),
        );
        note(status, &body) || status != 0
    }
}

/// Runs `clients` clients of the load against `d` until `stop`.
pub(crate) fn load(
    client: &Client,
    clients: usize,
    seen: &Arc<Mutex<Seen>>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let (c, seen, stop) = (client.clone(), Arc::clone(seen), Arc::clone(stop));
            std::thread::spawn(move || while !stop.load(Ordering::Relaxed) && c.one(&seen) {})
        })
        .collect()
}

fn random_below(n: u64) -> u64 {
    u64::from_str_radix(&random_hex(8), 16).unwrap() % n
}

/// The service's configuration for fault tests: a driver round every second, and leases short
/// enough that a killed worker's are taken up within the test's patience.
pub(crate) fn quick_driver(d: &mut Deployment) {
    d.env.push(("NCA_WORKFLOW_DRIVER_SECONDS".into(), "1".into()));
    d.env.push(("NCA_WORKFLOW_LEASE_SECONDS".into(), "5".into()));
}

#[test]
fn kill_9_during_a_load_of_applications_leaves_every_application_at_rest() {
    let mut d = Deployment::new();
    quick_driver(&mut d);
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    // One pair of requests for every application: a key may be certified again for its holder.
    let request = application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "load");
    let seen = Arc::new(Mutex::new(Seen::default()));
    for round in 0..5 {
        if round > 0 {
            d.start();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let client = Client::new(&d, &op, &request, work.path());
        let clients = load(&client, 8, &seen, &stop);
        // At a random moment once this round has had its share of the load.
        let share = seen.lock().unwrap().numbers.len() + 45;
        eventually(120, "the round's applications", || {
            (seen.lock().unwrap().numbers.len() >= share).then_some(())
        });
        std::thread::sleep(Duration::from_millis(random_below(1500)));
        d.kill();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }
    let submitted = seen.lock().unwrap().numbers.len();
    assert!(submitted >= 200, "{submitted} applications");

    d.start();
    let db = Db::Sqlite(d.path("nca.db"));
    eventually(60, "every application at rest", || {
        (db.count("SELECT COUNT(*) FROM applications WHERE status = 'issuing'") == 0).then_some(())
    });
    check_invariants(&db);
    let completed = db.count("SELECT COUNT(*) FROM applications WHERE status = 'completed'");
    assert!(completed > 0, "none completed");
    // Every application a client was told of is there.
    for n in &seen.lock().unwrap().numbers {
        assert_eq!(
            db.count(&format!("SELECT COUNT(*) FROM applications WHERE number = '{n}'")),
            1
        );
    }
}

/// A PostgreSQL server of this test's own (the suite's is shared with the tests running beside
/// it), stopped when dropped.
pub(crate) struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    pub(crate) fn start() -> (OwnPostgres, String) {
        let dir = tempfile::tempdir().unwrap();
        // The postgres OS user must reach the cluster's directory.
        run_ok(Command::new("chmod").arg("711").arg(dir.path()));
        let port = free_port();
        let pg = OwnPostgres { dir, port };
        let url = pg.up();
        (pg, url)
    }

    fn script(name: &str) -> Command {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name))
    }

    pub(crate) fn up(&self) -> String {
        let out = run_ok(
            Self::script("pg-start.sh")
                .arg(self.dir.path().join("pg"))
                .arg(self.port.to_string()),
        );
        stdout(&out).trim().to_string()
    }

    pub(crate) fn down(&self) {
        run_ok(Self::script("pg-stop.sh").arg(self.dir.path().join("pg")));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Self::script("pg-stop.sh").arg(self.dir.path().join("pg")).output();
    }
}

#[test]
fn postgresql_stopped_and_started_during_applications_leaves_each_at_rest_and_no_400() {
    let (pg, url) = OwnPostgres::start();
    let mut d = Deployment::with_database(Some(url.clone()));
    quick_driver(&mut d);
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let request = application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "pg");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = Client::new(&d, &op, &request, work.path());
    let clients = load(&client, 4, &seen, &stop);
    eventually(60, "applications before the stop", || {
        (seen.lock().unwrap().numbers.len() >= 15).then_some(())
    });
    pg.down();
    std::thread::sleep(Duration::from_secs(2));
    pg.up();
    let after = seen.lock().unwrap().numbers.len() + 15;
    eventually(90, "applications after the start", || {
        (seen.lock().unwrap().numbers.len() >= after).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    // A fault is never the client's mistake, and never tells the database's words.
    let seen = seen.lock().unwrap();
    let faults: Vec<_> = seen.answers.iter().filter(|(s, _)| *s >= 500).collect();
    for (status, body) in &seen.answers {
        assert!(
            (200..300).contains(status) || *status >= 500 || *status == 0,
            "{status}: {body}"
        );
    }
    for (_, body) in &faults {
        assert_eq!(json(body.as_bytes())["error"]["message"], GENERIC, "{body}");
    }
    let db = Db::Postgres(url);
    eventually(60, "every application at rest", || {
        (db.count("SELECT COUNT(*) FROM applications WHERE status = 'issuing'") == 0).then_some(())
    });
    check_invariants(&db);
    drop(d);
}
