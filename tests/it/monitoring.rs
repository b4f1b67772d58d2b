//! Reporting to the monitoring system: every status change of every application reaches a real
//! HTTP receiver, once after de-duplication, in order per application, signed by the service
//! certificate (checked with `openssl cms -verify`), through an outage and a SIGKILL; what the
//! receiver refuses is parked, reported and can be sent again; two instances on one PostgreSQL
//! deliver each message once between them.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use base64::Engine;

use crate::harness::*;
use crate::kit::monitoring::{Received, Receiver, tls_relay};
use crate::workflow::{add_operator, application, confirm_completed, json, post_identity, submit};

fn monitored(d: &mut Deployment, port: u16) {
    d.env
        .push(("NCA_MONITORING_URL".into(), format!("http://127.0.0.1:{port}/messages")));
    d.env.push(("NCA_OUTBOX_RETRY_MAX_SECONDS".into(), "1".into()));
}

/// The admin's view of the monitoring queue.
fn queue(d: &Deployment) -> serde_json::Value {
    let (status, body) = d.admin_get("/api/v1/admin/monitoring");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)
}

/// Submits a P1 application and takes it through identity; returns its number.
fn identified(d: &Deployment, op: &Path, centre: &str, work: &Path, tag: &str) -> String {
    let (status, v) = submit(d, &application(IIN, "Құнанбай", "Абай", "", centre, work, tag));
    assert_eq!(status, 201, "{v}");
    let number = v["number"].as_str().unwrap().to_string();
    let (status, body) = post_identity(d, op, &number, r#"{"confirmed": true, "documents": ["id_card"]}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    number
}

/// The received messages, one per messageId (the first arrival), grouped per application in
/// order of arrival.
fn per_application(received: &[Received]) -> HashMap<String, Vec<Received>> {
    let mut seen = HashSet::new();
    let mut out: HashMap<String, Vec<Received>> = HashMap::new();
    for r in received {
        if seen.insert(r.message_id().to_string()) {
            out.entry(r.application().to_string()).or_default().push(r.clone());
        }
    }
    out
}

fn statuses(msgs: &[Received]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.json["data"]["status"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Checks each message's detached signature with openssl against the CA chain.
fn verify_signatures(d: &Deployment, msgs: &[Received], work: &Path) {
    for (i, m) in msgs.iter().enumerate() {
        let body = work.join(format!("m{i}.json"));
        let sig = work.join(format!("m{i}.p7s"));
        write(&body, &m.body);
        write(
            &sig,
            &base64::engine::general_purpose::STANDARD
                .decode(&m.signature)
                .expect("X-Signature is base64"),
        );
        let out = run(Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in"])
            .arg(&sig)
            .arg("-content")
            .arg(&body)
            // OpenSSL 3.0's cms has no -untrusted: the issuing CA goes in beside the root.
            .arg("-CAfile")
            .arg(d.path("ca/chain.pem"))
            .args(["-out", "/dev/null"]));
        assert!(
            out.status.success(),
            "signature of {} does not verify: {}",
            m.message_id(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_status_change_arrives_once_in_order_and_signed_after_an_outage_and_a_crash() {
    let port = free_port();
    let mut d = Deployment::new();
    monitored(&mut d, port);
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());

    // The link is down (nothing listens) while applications go through their steps.
    let a = identified(&d, &op, &centre, work.path(), "a");
    confirm_completed(&d, &op, &a, work.path());
    let (status, v) = submit(&d, &application(IIN, "Басқа", "Абай", "", &centre, work.path(), "b"));
    assert_eq!(status, 422, "{v}");
    let b = v["number"].as_str().unwrap().to_string();
    let c = identified(&d, &op, &centre, work.path(), "c");

    // A crash in the middle: nothing was delivered, nothing is lost.
    let before = queue(&d);
    assert_eq!(before["delivered"], 0, "{before}");
    assert!(before["pending"].as_i64().unwrap() >= 7, "{before}");
    assert!(before["oldest_pending_age_seconds"].as_i64().is_some(), "{before}");
    d.kill();
    d.start();
    confirm_completed(&d, &op, &c, work.path());

    // The link comes back; the receiver refuses b's message (a 4xx: parked, not retried).
    let receiver = Receiver::start(port);
    receiver.refuse(&b);
    let expected: HashMap<&str, Vec<&str>> = HashMap::from([
        (
            a.as_str(),
            vec!["awaiting_documents", "awaiting_confirmation", "issuing", "completed"],
        ),
        (
            c.as_str(),
            vec!["awaiting_documents", "awaiting_confirmation", "issuing", "completed"],
        ),
        (b.as_str(), vec!["refused"]),
    ]);
    let arrived = receiver.wait_for(60, |r| {
        let g = per_application(r);
        g.get(a.as_str()).map(|m| m.len()) == Some(4) && g.get(c.as_str()).map(|m| m.len()) == Some(4)
    });
    assert!(arrived, "not everything arrived: {:?}", receiver.received().len());
    let parked = eventually(10, "b's message parked", || {
        Some(queue(&d)).filter(|q| q["parked"] == 1)
    });
    assert_eq!(parked["parked"], 1, "{parked}");
    assert_eq!(parked["parked_messages"][0]["application"], b.as_str());
    assert_eq!(parked["parked_messages"][0]["last_http_status"], 400);
    assert!(!per_application(&receiver.received()).contains_key(b.as_str()));

    // Fixed on the receiver's side, the administrator sends it again.
    receiver.accept_all();
    let id = parked["parked_messages"][0]["message_id"].as_str().unwrap();
    let (status, body) = d.admin_post(&format!("/api/v1/admin/monitoring/{id}/retry"), "{}");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(receiver.wait_for(30, |r| per_application(r).contains_key(b.as_str())));

    let groups = per_application(&receiver.received());
    for (number, want) in &expected {
        let msgs = &groups[*number];
        assert_eq!(statuses(msgs), *want, "{number}");
        // Compared with the application's own history: its steps end where the last message is.
        let (_, v) = d.get(&format!("/api/v1/applications/{number}?iin={IIN}"));
        let v = json(&v);
        assert_eq!(v["status"], *want.last().unwrap());
        for m in msgs {
            let j = &m.json;
            assert_eq!(j["correlationId"], *number);
            assert_eq!(j["messageType"], "NOTIFICATION");
            assert_eq!(j["serviceId"], "NCA-P1");
            assert_eq!(j["data"]["application"], *number);
            assert_eq!(j["data"]["channel"], "portal");
            assert!(j["messageDate"].as_str().unwrap().ends_with("+05:00"), "{j}");
            assert!(j["data"]["step"].as_str().is_some_and(|s| !s.is_empty()), "{j}");
        }
    }
    assert_eq!(
        groups[b.as_str()][0].json["data"]["refusal"]["code"],
        "registry_mismatch"
    );
    let all: Vec<Received> = groups.values().flatten().cloned().collect();
    verify_signatures(&d, &all, work.path());

    let done = queue(&d);
    assert_eq!(done["pending"], 0, "{done}");
    assert_eq!(done["parked"], 0, "{done}");
    assert_eq!(done["delivered"], 9, "{done}");
    let (_, metrics) = d.get("/metrics");
    assert!(
        String::from_utf8_lossy(&metrics).contains("nca_outbox_messages{channel=\"monitoring\",state=\"delivered\"} 9")
    );
}

#[test]
fn two_instances_on_one_postgresql_deliver_each_message_once() {
    let port = free_port();
    let receiver = Receiver::start(port);
    let mut first = Deployment::with_database(Some(fresh_postgres_database()));
    monitored(&mut first, port);
    // Hold the messages back until both instances run: neither may start with a head start.
    first.env.push(("NCA_MONITORING_URL".into(), String::new()));
    first.init();
    first.start();
    let centre = first.first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&first, "920708497088", "Сейітқали", &centre, work.path());
    let mut numbers = Vec::new();
    for i in 0..6 {
        let n = identified(&first, &op, &centre, work.path(), &format!("n{i}"));
        if i % 2 == 0 {
            confirm_completed(&first, &op, &n, work.path());
        }
        numbers.push(n);
    }
    first.kill();
    first.env.retain(|(k, v)| !(k == "NCA_MONITORING_URL" && v.is_empty()));
    let mut second = first.sibling();
    first.start();
    second.start();

    // 3 applications of 2 messages and 3 of 4.
    let total = 18;
    assert!(
        receiver.wait_for(60, |r| r.len() >= total),
        "{} of {total} arrived",
        receiver.received().len()
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let received = receiver.received();
    let ids: Vec<&str> = received.iter().map(|r| r.message_id()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "a message was delivered twice");
    assert_eq!(unique.len(), total);
    let groups = per_application(&received);
    for (i, n) in numbers.iter().enumerate() {
        let want: Vec<&str> = if i % 2 == 0 {
            vec!["awaiting_documents", "awaiting_confirmation", "issuing", "completed"]
        } else {
            vec!["awaiting_documents", "awaiting_confirmation"]
        };
        assert_eq!(statuses(&groups[n.as_str()]), want, "{n}");
    }
    assert_eq!(queue(&second)["delivered"], total as i64);
}

#[test]
fn messages_go_out_over_https_to_a_receiver_the_ca_file_trusts() {
    let port = free_port();
    let receiver = Receiver::start(port);
    let work = tempfile::tempdir().unwrap();
    let (ca, chain, key) = crate::kit::tls::tls_files(work.path());
    let (tls_port, _relay) = tls_relay(&chain, &key, port);
    let mut d = Deployment::new();
    d.env.push((
        "NCA_MONITORING_URL".into(),
        format!("https://127.0.0.1:{tls_port}/messages"),
    ));
    d.env.push(("NCA_MONITORING_CA_FILE".into(), ca.display().to_string()));
    d.env.push(("NCA_OUTBOX_RETRY_MAX_SECONDS".into(), "1".into()));
    d.init();
    d.start();
    let centre = d.first_centre();
    let (status, v) = submit(&d, &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "t"));
    assert_eq!(status, 201, "{v}");
    let number = v["number"].as_str().unwrap().to_string();
    assert!(
        receiver.wait_for(30, |r| r.iter().any(|m| m.application() == number)),
        "nothing arrived over TLS: {}",
        queue(&d)
    );
    verify_signatures(&d, &receiver.received(), work.path());
}

/// A receiver in the test's own process for the worker's overlapped rounds: it notes every
/// message it is given, in the order given, and answers 503 to the first attempt of every
/// third application's second message (so a retry sits between an application's messages).
#[derive(Default)]
struct Noting {
    seen: std::sync::Mutex<Vec<(String, String, i64, bool)>>,
}

impl Noting {
    fn fails(m: &nca::store::DueMessage) -> bool {
        let app: usize = m.application.trim_start_matches("app-").parse().unwrap();
        app.is_multiple_of(3) && m.seq == 2 && m.attempts == 0
    }
    fn seen(&self) -> Vec<(String, String, i64, bool)> {
        self.seen.lock().unwrap().clone()
    }
}

impl nca::outbox::Deliver for Noting {
    async fn deliver(&self, m: &nca::store::DueMessage) -> Result<Option<u16>, nca::outbox::DeliveryError> {
        // A little time on the wire, so that rounds overlap as they do over a network.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let fail = Self::fails(m);
        self.seen
            .lock()
            .unwrap()
            .push((m.message_id.clone(), m.application.clone(), m.seq, !fail));
        if fail {
            Err(nca::outbox::DeliveryError::Status { status: 503 })
        } else {
            Ok(Some(200))
        }
    }
}

/// The worker's overlapped rounds (the next claimed and the last recorded while one is
/// delivered) keep what one round at a time kept, through a kill in the middle and a clean
/// stop: each application's messages reach the receiver in order (no message before an earlier
/// one of its application was taken), every message is delivered, every attempt after the kill
/// is recorded and at most the two rounds in flight at the kill are not; a clean stop gives back
/// the round claimed ahead, so nothing waits for its lease. On SQLite and on PostgreSQL.
#[test]
fn overlapped_rounds_keep_the_order_and_the_records_through_a_kill_and_a_stop() {
    use nca::outbox::{MONITORING, Policy, run};
    use nca::store::{OutboxMessage, Store};
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    for url in [sqlite, fresh_postgres_database()] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Store::open(&url).await.unwrap();
            let (apps, per_app, batch) = (60usize, 4usize, 8i64);
            // Appended application by application, as a day's changes would leave them.
            let messages: Vec<OutboxMessage> = (0..per_app)
                .flat_map(|s| {
                    (0..apps).map(move |a| OutboxMessage {
                        channel: MONITORING,
                        message_id: format!("m-{a}-{s}"),
                        application: format!("app-{a}"),
                        body: format!("{{\"a\":{a},\"s\":{s}}}"),
                    })
                })
                .collect();
            store.add_outbox(&messages).await.unwrap();
            let policy = Policy {
                batch,
                concurrency: 4,
                lease_seconds: 1,
                retry_initial_ms: 1,
                retry_max_seconds: 1,
            };
            let noting = Arc::new(Noting::default());

            // A kill in the middle: the worker's task is dropped where it stands.
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let killed = tokio::spawn(run(store.clone(), MONITORING, policy, Arc::clone(&noting), stopped));
            while noting.seen().len() < 60 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            killed.abort();
            let _ = killed.await;
            let before_kill = noting.seen().len();

            // A new worker takes up what the killed one left, once its claims run out.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let worker = tokio::spawn(run(store.clone(), MONITORING, policy, Arc::clone(&noting), stopped));
            for _ in 0..3000 {
                if store.outbox_counts(MONITORING).await.unwrap().pending == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            stop.send(true).unwrap();
            worker.await.unwrap();
            let seen = noting.seen();
            assert_eq!(
                store.outbox_counts(MONITORING).await.unwrap().pending,
                0,
                "not all delivered"
            );

            // In order: a message is given only after every earlier one of its application was
            // taken.
            let mut taken: HashMap<String, i64> = HashMap::new();
            for (id, app, seq, ok) in &seen {
                let last = taken.get(app).copied().unwrap_or(0);
                assert!(
                    *seq <= last + 1,
                    "{id} ({app}, {seq}) given before {app}'s {} was taken",
                    last + 1
                );
                if *ok && *seq == last + 1 {
                    taken.insert(app.clone(), *seq);
                }
            }
            assert!(taken.values().all(|s| *s == per_app as i64), "{taken:?}");
            // Recorded: every attempt after the kill, and every failure's retry.
            let mut recorded = 0;
            for a in 0..apps {
                let app = format!("app-{a}");
                let rows = store.outbox_of(MONITORING, &app).await.unwrap();
                // Numbered 1, 2, 3, 4 though the append took two statements (200 rows each).
                let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
                assert_eq!(seqs, (1..=per_app as i64).collect::<Vec<_>>(), "{app}");
                for r in &rows {
                    assert_eq!(r.state, "delivered", "{app} {}", r.seq);
                    let n = store.outbox_attempt_count(&r.message_id).await.unwrap();
                    assert!(
                        n >= 1 && n == r.attempts,
                        "{}: {n} attempts recorded, {} counted",
                        r.message_id,
                        r.attempts
                    );
                    let given = seen.iter().filter(|s| s.0 == r.message_id).count() as i64;
                    assert!(n <= given, "{}: {n} recorded, given {given}", r.message_id);
                    recorded += n as usize;
                }
            }
            assert!(seen.iter().any(|s| !s.3), "no failure was given");
            assert!(
                recorded >= seen.len() - before_kill,
                "an attempt after the kill went unrecorded"
            );
            assert!(
                seen.len() - recorded <= 2 * batch as usize,
                "{} attempts unrecorded: more than the two rounds in flight at the kill",
                seen.len() - recorded
            );

            // A clean stop in the middle gives back the round claimed ahead: all that is left is
            // claimable at once, though the lease is a minute.
            let more: Vec<OutboxMessage> = (0..apps)
                .map(|a| OutboxMessage {
                    channel: MONITORING,
                    message_id: format!("m-{a}-more"),
                    application: format!("app-{a}"),
                    body: "{}".into(),
                })
                .collect();
            store.add_outbox(&more).await.unwrap();
            let policy = Policy {
                lease_seconds: 60,
                ..policy
            };
            let given = noting.seen().len();
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let worker = tokio::spawn(run(store.clone(), MONITORING, policy, Arc::clone(&noting), stopped));
            while noting.seen().len() < given + 10 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            stop.send(true).unwrap();
            worker.await.unwrap();
            let left = store.outbox_counts(MONITORING).await.unwrap().pending;
            assert!(left > batch, "the stop came too late to test anything: {left} left");
            let claimable = store.claim_outbox(MONITORING, "other", 1000, 60).await.unwrap();
            assert_eq!(claimable.len() as i64, left, "a claim was kept past the stop");
            store.close().await;
        });
    }
}
