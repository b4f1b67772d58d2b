//! Several instances on one PostgreSQL (README, "Beyond one machine"): each duty held once and
//! moved when its holder is killed, CRLs published once, the audit chain as several chains
//! verified as one, the outbox's retention, a stale fence that writes nothing, and a stop on
//! SIGTERM within seconds when the database has gone away.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nca::store::{Attempt, AttemptOutcome, Fence, OutboxMessage, Store, StoreError};

use crate::faults::{Client, Db, OwnPostgres, Seen, check_invariants, load, quick_driver};
use crate::harness::*;
use crate::kit::monitoring::Receiver;
use crate::workflow::{add_operator, application, json};

/// The lease the cluster tests run with: short, so that a take-over is quick to wait for.
pub(crate) const LEASE: u64 = 6;

pub(crate) fn clustered(d: &mut Deployment) {
    quick_driver(d);
    d.env.push(("NCA_CLUSTER_LEASE_SECONDS".into(), LEASE.to_string()));
}

/// Whether the instance says in /metrics that it holds `duty`; None when it does not answer.
pub(crate) fn holds(d: &Deployment, duty: &str) -> Option<bool> {
    let (status, body) = d.get("/metrics");
    if status != 200 {
        return None;
    }
    let key = format!("nca_duty_held{{duty=\"{duty}\"}} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&key).map(|v| v.trim() == "1"))
}

pub(crate) fn cluster_view(d: &Deployment) -> serde_json::Value {
    let (status, body) = d.admin_get("/api/v1/admin/cluster");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)
}

/// The duties every `nca serve` runs.
const DUTIES: [&str; 11] = [
    "crl",
    "audit_checkpoint",
    "scheduled_dismissals",
    "idle_suspension",
    "registry_retry",
    "workflow_driver",
    "delegated_renewal",
    "cabinet_reminders",
    "outbox_retention",
    "archive_retention",
    "ocsp",
];

/// Revokes certificates issued beside the load (`nca cert issue`), one about every second,
/// through whichever instance answers, until `stop`; returns the serials revoked.
fn revocations(d: &Deployment, operators: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    let cli = d.sibling();
    let (root, cert, key) = (
        d.path("ca/root.pem"),
        d.path("admin/auth.crt"),
        d.path("admin/auth.key"),
    );
    std::thread::spawn(move || {
        let work = tempfile::tempdir().unwrap();
        let mut revoked = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let (_, _, serial) = cli.issue_individual(work.path(), &format!("r{i}"), IIN, "ec:P-256");
            for url in operators.iter().cycle().skip(i).take(operators.len()) {
                let (status, _) = curl(&[
                    "--cacert",
                    &root.display().to_string(),
                    "--cert",
                    &cert.display().to_string(),
                    "--key",
                    &key.display().to_string(),
                    "-H",
                    "content-type: application/json",
                    "--data-binary",
                    &format!(r#"{{"serial":"{serial}","reason":"superseded"}}"#),
                    &format!("{url}/api/v1/admin/revocations"),
                ]);
                if status == 201 {
                    revoked.push(serial.clone());
                    break;
                }
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(800));
        }
        revoked
    })
}

#[test]
fn three_instances_hold_each_duty_once_and_the_killed_holders_duties_move_within_the_lease() {
    let port = free_port();
    let receiver = Receiver::start(port);
    let url = fresh_postgres_database();
    let mut first = Deployment::with_database(Some(url.clone()));
    clustered(&mut first);
    first
        .env
        .push(("NCA_MONITORING_URL".into(), format!("http://127.0.0.1:{port}/messages")));
    first.env.push(("NCA_OUTBOX_RETRY_MAX_SECONDS".into(), "1".into()));
    first.init();
    first.start();
    let mut instances = vec![first];
    for _ in 0..2 {
        let mut d = instances[0].sibling();
        d.start();
        instances.push(d);
    }
    let mut sc = Scenario::new("three instances");

    // Each duty is held by exactly one instance, and the list shows the three.
    sc.check("each duty held by one instance, three alive", || {
        let view = eventually(30, "every duty held", || {
            let v = cluster_view(&instances[1]);
            let held = v["duties"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| DUTIES.contains(&d["duty"].as_str().unwrap()) && d["holder"].is_string())
                .count();
            (held == DUTIES.len()).then_some(v)
        });
        let alive: Vec<_> = view["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["alive"] == true)
            .collect();
        assert_eq!(alive.len(), 3, "{view}");
        for duty in DUTIES {
            let holders = instances.iter().filter(|d| holds(d, duty) == Some(true)).count();
            assert_eq!(holders, 1, "{duty} held by {holders} instances: {view}");
        }
    });
    let centre = instances[0].first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&instances[0], "920708497088", "Сейітқали", &centre, work.path());
    let request = application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "cluster");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for d in &instances {
        clients.extend(load(&Client::new(d, &op, &request, work.path()), 2, &seen, &stop));
    }
    let operators: Vec<String> = instances.iter().map(|d| d.operator.clone()).collect();
    let revoker = revocations(&instances[0], operators, Arc::clone(&stop));
    eventually(180, "applications before the kill", || {
        (seen.lock().unwrap().numbers.len() >= 30).then_some(())
    });

    // kill -9 the holder of the CRL duty, under the load.
    let (killed_duties, killed_at_unix, killed_at_ms, survivors) = sc.step(
        "kill -9 of the CRL duty's holder under load; its duties taken over",
        || {
            let holder = instances
                .iter()
                .position(|d| holds(d, "crl") == Some(true))
                .expect("a holder of the CRL duty");
            let killed_duties: Vec<&str> = DUTIES
                .iter()
                .copied()
                .filter(|duty| holds(&instances[holder], duty) == Some(true))
                .collect();
            let killed_at_unix = nca::store::now();
            let killed_at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            instances[holder].kill();
            let survivors: Vec<usize> = (0..instances.len()).filter(|i| *i != holder).collect();
            for duty in &killed_duties {
                eventually(LEASE + 30, "the duty taken over", || {
                    survivors
                        .iter()
                        .any(|i| holds(&instances[*i], duty) == Some(true))
                        .then_some(())
                });
            }
            (killed_duties, killed_at_unix, killed_at_ms, survivors)
        },
    );
    let db = Db::Postgres(url.clone());
    // When each was taken, by the lease table (the database's clock, on this machine): within
    // the lease time of the kill, and a second for a loaded machine's scheduling.
    sc.check("each duty moved within the lease", || {
        for duty in &killed_duties {
            let taken: i64 = db.rows(&format!("SELECT acquired_at FROM duty_leases WHERE duty = '{duty}'"))[0][0]
                .parse()
                .unwrap();
            let moved_in = taken - killed_at_ms;
            assert!(
                moved_in <= (LEASE as i64 + 1) * 1000,
                "{duty} moved {moved_in} ms after the kill (lease {LEASE} s)"
            );
        }
    });
    sc.check("each duty held by one survivor", || {
        for duty in DUTIES {
            let holders = survivors
                .iter()
                .filter(|i| holds(&instances[**i], duty) == Some(true))
                .count();
            assert_eq!(holders, 1, "{duty} after the kill");
        }
    });
    let revoked = sc.step("the load goes on after the kill, and stops", || {
        let after = seen.lock().unwrap().numbers.len() + 20;
        eventually(180, "applications after the kill", || {
            (seen.lock().unwrap().numbers.len() >= after).then_some(())
        });
        // A revocation after the take-over, for the new holder's delta.
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        let revoked = revoker.join().unwrap();
        assert!(revoked.len() >= 3, "{} revocations", revoked.len());
        revoked
    });
    // No application lost or stranded.
    sc.check("no application lost or stranded", || {
        eventually(90, "every application at rest", || {
            (db.count("SELECT COUNT(*) FROM applications WHERE status = 'issuing'") == 0).then_some(())
        });
        check_invariants(&db);
        for n in &seen.lock().unwrap().numbers {
            assert_eq!(
                db.count(&format!("SELECT COUNT(*) FROM applications WHERE number = '{n}'")),
                1,
                "{n}"
            );
        }
    });
    // CRL numbers strictly increasing with time; one full CRL in this (shorter than a day)
    // interval; deltas each their own number and second, and the new holder published some.
    sc.check(
        "one full CRL, deltas strictly increasing, one after the take-over",
        || {
            let crls = db.rows("SELECT number, kind, this_update FROM crls WHERE issuer = 'nca' ORDER BY number");
            let fulls = crls.iter().filter(|r| r[1] == "full").count();
            assert_eq!(fulls, 1, "full CRLs: {crls:?}");
            let mut last: Option<(i64, i64)> = None;
            for r in crls.iter().filter(|r| r[1] == "delta") {
                let (number, at): (i64, i64) = (r[0].parse().unwrap(), r[2].parse().unwrap());
                if let Some((n, t)) = last {
                    assert!(
                        number > n && at > t,
                        "delta {number} at {at} after {n} at {t}: {crls:?}"
                    );
                }
                last = Some((number, at));
            }
            let late = crls
                .iter()
                .filter(|r| r[1] == "delta" && r[2].parse::<i64>().unwrap() > killed_at_unix)
                .count();
            assert!(late >= 1, "no delta after the take-over: {crls:?}");
        },
    );
    // Every revocation is in a CRL the survivors serve.
    sc.check("every revocation recorded for the CRLs", || {
        let listed = db.count(&format!(
            "SELECT COUNT(*) FROM revocations WHERE serial IN ({})",
            revoked.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",")
        ));
        assert_eq!(listed as usize, revoked.len());
    });
    // Each monitoring message delivered, once after de-duplication by its id, and each
    // application's in order.
    sc.check("every monitoring message delivered once, in order", || {
        eventually(90, "every monitoring message delivered", || {
            (db.count("SELECT COUNT(*) FROM outbox WHERE channel = 'monitoring' AND state <> 'delivered'") == 0)
                .then_some(())
        });
        let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in
            db.rows("SELECT application, message_id FROM outbox WHERE channel = 'monitoring' ORDER BY application, seq")
        {
            want.entry(r[0].clone()).or_default().push(r[1].clone());
        }
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut ids = HashSet::new();
        for m in receiver.received() {
            if ids.insert(m.message_id().to_string()) {
                got.entry(m.application().to_string())
                    .or_default()
                    .push(m.message_id().to_string());
            }
        }
        assert_eq!(got, want, "monitoring messages per application, in order");
    });
    // The list shows the killed instance as no longer alive, holding nothing.
    sc.check("the killed instance listed dead, holding nothing", || {
        let survivor = &instances[survivors[0]];
        let v = eventually(30, "the killed instance seen as dead", || {
            let v = cluster_view(survivor);
            let dead = v["instances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["alive"] == false)
                .count();
            (dead == 1).then_some(v)
        });
        for i in v["instances"].as_array().unwrap() {
            if i["alive"] == false {
                assert_eq!(i["duties"], serde_json::json!([]), "{v}");
            }
        }
    });
    sc.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A holder paused past its lease: the next instance takes the duty under a new fence, and the
/// old holder's writes under the old fence are refused in their transaction.
async fn a_stale_fence_writes_nothing(store: Store) {
    let duty = format!("test-{}", random_hex(4));
    let a = store
        .take_duty(&duty, "a", None, 200)
        .await
        .unwrap()
        .expect("a free duty");
    assert_eq!(store.take_duty(&duty, "b", None, 200).await.unwrap(), None, "held by a");
    assert_eq!(
        store.take_duty(&duty, "a", Some(a), 200).await.unwrap(),
        Some(a),
        "renewed"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = store
        .take_duty(&duty, "b", None, 60_000)
        .await
        .unwrap()
        .expect("a's lease ran out");
    assert!(b > a, "a new holder, a new fence: {a} then {b}");
    assert_eq!(
        store.take_duty(&duty, "a", Some(a), 200).await.unwrap(),
        None,
        "a lost it"
    );
    let event = || nca::store::AuditEvent::new("test.fenced", &duty, serde_json::json!({}));
    let stale = Fence {
        duty: duty.clone(),
        holder: "a".into(),
        number: a,
    };
    let before = store.audit_heads().await.unwrap();
    assert!(matches!(
        store.audit_under(&[event()], Some(&stale)).await,
        Err(StoreError::StateConflict(_))
    ));
    assert!(matches!(
        store.prune_delivered(nca::store::now() + 1, 10, Some(&stale)).await,
        Err(StoreError::StateConflict(_))
    ));
    assert_eq!(store.audit_heads().await.unwrap(), before, "the stale holder wrote");
    let current = Fence {
        duty: duty.clone(),
        holder: "b".into(),
        number: b,
    };
    store.audit_under(&[event()], Some(&current)).await.unwrap();
    // A clean stop gives the duty up at once.
    store.release_duty(&duty, "b", b).await.unwrap();
    assert!(store.take_duty(&duty, "a", None, 200).await.unwrap().is_some());
}

#[test]
fn a_stale_fence_writes_nothing_on_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("f.db").display());
    for url in [sqlite, fresh_postgres_database()] {
        runtime().block_on(async {
            let store = Store::open(&url).await.unwrap();
            a_stale_fence_writes_nothing(store.clone()).await;
            store.close().await;
        });
    }
}

/// Retention as the duty applies it at `t` (`outbox.retention_days` = 90): delivered messages
/// inside the period stay, those past it go with their attempts; pending ones stay whatever
/// their age; the counts follow without a count of the rows.
async fn retention(store: Store) {
    const DAY: i64 = 86_400;
    let tag = random_hex(4);
    let msg = |i: usize| OutboxMessage {
        channel: "monitoring",
        message_id: format!("{tag}-{i}"),
        application: format!("app-{tag}-{i}"),
        body: "{}".into(),
    };
    let messages: Vec<_> = (0..5).map(msg).collect();
    store.add_outbox(&messages).await.unwrap();
    store.fold_outbox_tally().await.unwrap();
    let counts = store.outbox_counts("monitoring").await.unwrap();
    assert_eq!((counts.pending, counts.delivered), (5, 0));
    // Four delivered (the fifth stays pending), one after a failed attempt.
    let due = store.claim_outbox("monitoring", "w", 10, 60).await.unwrap();
    let attempts: Vec<_> = due
        .iter()
        .take(4)
        .map(|m| Attempt {
            id: m.id,
            message_id: m.message_id.clone(),
            attempt: 1,
            at_ms: 0,
            http_status: Some(200),
            latency_ms: 1,
            error: None,
            outcome: AttemptOutcome::Delivered,
        })
        .collect();
    store.record_attempts("w", &attempts).await.unwrap();
    let counts = store.outbox_counts("monitoring").await.unwrap();
    assert_eq!(
        (counts.pending, counts.delivered),
        (1, 4),
        "counted on write, before a fold"
    );

    let before = |t: i64| t - 90 * DAY;
    let t = nca::store::now();
    // 89 days after delivery: kept.
    assert_eq!(store.prune_delivered(before(t + 89 * DAY), 2, None).await.unwrap(), 0);
    assert_eq!(store.outbox_attempt_count(&attempts[0].message_id).await.unwrap(), 1);
    // 91 days after: removed, in batches, with their attempts; the pending one stays.
    let mut gone = 0;
    loop {
        let n = store.prune_delivered(before(t + 91 * DAY), 2, None).await.unwrap();
        gone += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(gone, 4);
    for a in &attempts {
        assert_eq!(store.outbox_attempt_count(&a.message_id).await.unwrap(), 0);
        assert!(
            store
                .outbox_of("monitoring", &format!("app-{}", &a.message_id))
                .await
                .unwrap()
                .is_empty()
        );
    }
    let pending = due.iter().find(|m| !attempts.iter().any(|a| a.id == m.id)).unwrap();
    assert_eq!(
        store.outbox_of("monitoring", &pending.application).await.unwrap().len(),
        1
    );
    let counts = store.outbox_counts("monitoring").await.unwrap();
    assert_eq!((counts.pending, counts.delivered), (1, 0));
    store.fold_outbox_tally().await.unwrap();
    let counts = store.outbox_counts("monitoring").await.unwrap();
    assert_eq!((counts.pending, counts.delivered), (1, 0), "after the fold");
}

#[test]
fn delivered_messages_go_after_the_retention_period_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    for url in [sqlite, fresh_postgres_database()] {
        runtime().block_on(async {
            let store = Store::open(&url).await.unwrap();
            retention(store.clone()).await;
            store.close().await;
        });
    }
}

/// A psql session holding the main chain's head: writers must go on another chain meanwhile.
struct HeadHeld(std::process::Child);

impl HeadHeld {
    fn take(url: &str) -> HeadHeld {
        let name = format!("nca-hold-{}", random_hex(4));
        let mut c = Command::new("psql")
            .args([url, "-XAtq"])
            .env("PGAPPNAME", &name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = c.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "BEGIN; SELECT chain FROM audit_chains WHERE chain = 'main' FOR UPDATE;"
        )
        .unwrap();
        stdin.flush().unwrap();
        // The row lock gives the session a transaction id; before it, it has none.
        let db = Db::Postgres(url.to_string());
        eventually(30, "the main chain's head held", || {
            (db.count(&format!(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = '{name}' AND backend_xid IS NOT NULL \
                 AND state = 'idle in transaction'"
            )) == 1)
                .then_some(())
        });
        HeadHeld(c)
    }

    fn release(mut self) {
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
        drop(self.0.stdin.take());
        self.0.wait().unwrap();
    }
}

#[test]
fn two_chains_verify_as_one_and_tampering_in_one_is_named() {
    let url = fresh_postgres_database();
    let mut d = Deployment::with_database(Some(url.clone()));
    d.env.push(("NCA_CLUSTER_LEASE_SECONDS".into(), "3".into()));
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let db = Db::Postgres(url.clone());

    // While a transaction holds the main chain's head, an issuance in another process is
    // recorded at once, on a chain of its own.
    let held = HeadHeld::take(&url);
    let started = Instant::now();
    let (_, _, serial) = d.issue_individual(work.path(), "a", IIN, "ec:P-256");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the writer waited for the held head"
    );
    held.release();
    let rows = db.rows(&format!(
        "SELECT chain, seq FROM audit WHERE kind = 'certificate.issued' AND subject = '{serial}'"
    ));
    let (chain, seq) = (rows[0][0].clone(), rows[0][1].clone());
    assert_ne!(chain, "main");
    run_ok(&mut d.nca(&["cert", "revoke", &serial, "--reason", "superseded"]));

    // A checkpoint over both heads: taken at once by the next instance that holds the duty.
    d.kill();
    d.start();
    let verified = eventually(60, "a checkpoint of both chains", || {
        let out = run_ok(&mut d.nca(&["audit", "verify"]));
        let checkpoint =
            db.rows("SELECT detail FROM audit WHERE kind = 'audit.checkpoint' AND detail LIKE '%\"heads\"%'");
        (!checkpoint.is_empty()).then(|| stdout(&out))
    });
    assert!(verified.contains("audit chain intact"), "{verified}");
    let (status, body) = d.admin_get("/api/v1/admin/audit/verify");
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["intact"], true, "{v}");
    assert!(v["chains"].as_i64().unwrap() >= 2, "{v}");

    // An edit on the other chain: named by chain and number.
    let sql = |q: &str| run_ok(Command::new("psql").args([url.as_str(), "-Xqc", q]));
    sql(&format!(
        "UPDATE audit SET detail = detail || ' ' WHERE chain = '{chain}' AND seq = {seq}"
    ));
    let out = run(&mut d.nca(&["audit", "verify"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("audit record {chain}/{seq}: changed")), "{err}");
    let (_, body) = d.admin_get("/api/v1/admin/audit/verify");
    let v = json(&body);
    assert_eq!(
        (
            v["intact"].as_bool(),
            v["first_bad"].to_string(),
            v["first_bad_chain"].as_str()
        ),
        (Some(false), seq.clone(), Some(chain.as_str())),
        "{v}"
    );
    // Put back: intact again; the checkpoint still ties the heads.
    sql(&format!(
        "UPDATE audit SET detail = rtrim(detail, ' ') WHERE chain = '{chain}' AND seq = {seq}"
    ));
    assert!(run(&mut d.nca(&["audit", "verify"])).status.success());
}

#[test]
fn sigterm_stops_the_service_within_seconds_when_postgresql_has_gone() {
    let (pg, url) = OwnPostgres::start();
    let mut d = Deployment::with_database(Some(url));
    d.init();
    d.start();
    pg.down();
    // Let the service meet the missing database: heartbeats, rounds and the pool's waits.
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    assert!(
        d.terminate(Duration::from_secs(10)),
        "nca serve still ran 10 s after SIGTERM:\n{}",
        d.log()
    );
    eprintln!("stopped in {:?}", started.elapsed());
}
