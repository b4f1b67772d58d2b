//! The storage layer against both backends: the same tests on SQLite and PostgreSQL.

use nca::model::{Refusal, Status, StepKind};
use nca::store::{Advance, ApplicationRecord, CertificateStatus, PendingCertificate, StepRecord, Store, StoreError};

use crate::harness::*;

fn pending(serial: &str, holder: &str, key: &str) -> PendingCertificate {
    PendingCertificate {
        issuer: "nca".into(),
        serial: serial.into(),
        profile: "individual-auth".into(),
        subject: format!("CN=X, SERIALNUMBER={holder}"),
        holder: holder.into(),
        key_sha256: key.into(),
        not_before: 1,
        not_after: 2,
        tbs: vec![0x30, 0x00],
        application: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn invariants(store: Store) {
    let s1 = format!("1{}", random_hex(19));
    let s2 = format!("2{}", random_hex(19));
    store.add_pending(&pending(&s1, "IIN1", "k1")).await.unwrap();
    // A serial is unique per issuer.
    assert!(matches!(
        store.add_pending(&pending(&s1, "IIN1", "k9")).await,
        Err(StoreError::SerialTaken)
    ));
    // A key belongs to its first holder.
    assert!(matches!(
        store.add_pending(&pending(&s2, "IIN2", "k1")).await,
        Err(StoreError::KeyBoundElsewhere)
    ));
    assert!(
        store.certificate(&s2).await.unwrap().is_none(),
        "a refused pending row was written"
    );
    store.add_pending(&pending(&s2, "IIN1", "k1")).await.unwrap();

    store
        .mark_issued("nca", &s1, &[0x30, 0x01], &nca::model::Actor::Service)
        .await
        .unwrap();
    let rec = store.certificate(&s1).await.unwrap().unwrap();
    assert_eq!(rec.status, CertificateStatus::Issued);
    assert_eq!(rec.der.as_deref(), Some(&[0x30, 0x01][..]));
    // Issued once: a second mark is a conflict, not a silent overwrite.
    assert!(matches!(
        store
            .mark_issued("nca", &s1, &[0x30, 0x02], &nca::model::Actor::Service)
            .await,
        Err(StoreError::StateConflict(_))
    ));

    // Start-up reconciliation: a pending row older than the cut-off is abandoned, and a late
    // `mark_issued` from a process that was thought dead cannot resurrect it.
    let stale = store.abandon_stale_pending(nca::store::now() + 10).await.unwrap();
    assert_eq!(stale, vec![("nca".to_string(), s2.clone())]);
    assert_eq!(
        store.certificate(&s2).await.unwrap().unwrap().status,
        CertificateStatus::Abandoned
    );
    assert!(
        store
            .mark_issued("nca", &s2, &[0x30, 0x03], &nca::model::Actor::Service)
            .await
            .is_err()
    );
    assert_eq!(
        store.certificate(&s1).await.unwrap().unwrap().status,
        CertificateStatus::Issued
    );

    // Opening again applies no migration twice.
    store.close().await;
}

/// Writes made at once share a group commit: each is answered as if it had been written alone,
/// in the order sent, and a refused one changes nothing of the others'.
async fn batched_answers(store: Store) {
    let actor = nca::model::Actor::Service;
    let taken = format!("3{}", random_hex(19));
    let abandoned = format!("4{}", random_hex(19));
    store.add_pending(&pending(&taken, "IIN3", "k3")).await.unwrap();
    store.add_pending(&pending(&abandoned, "IIN3", "k3")).await.unwrap();
    store.abandon_stale_pending(nca::store::now() + 10).await.unwrap();
    let fresh: Vec<String> = (0..4).map(|i| format!("{i}5{}", random_hex(18))).collect();
    let mut again = pending(&taken, "IIN4", "k4");
    again.tbs = vec![0x30, 0x01];
    let reqs = [
        pending(&fresh[0], "IIN4", "k4"),
        // The same new key for another holder, after the first: refused.
        pending(&fresh[1], "IIN5", "k4"),
        // A serial already used: refused, and its key is still bound to the first request's
        // holder, not to this one.
        again,
        // A key bound before, for its holder: written.
        pending(&fresh[2], "IIN3", "k3"),
        // ... and for someone else: refused.
        pending(&fresh[3], "IIN6", "k3"),
    ];
    let answers = futures_util::future::join_all(reqs.iter().map(|p| store.add_pending(p))).await;
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert!(
        matches!(answers[1], Err(StoreError::KeyBoundElsewhere)),
        "{:?}",
        answers[1]
    );
    assert!(matches!(answers[2], Err(StoreError::SerialTaken)), "{:?}", answers[2]);
    assert!(answers[3].is_ok(), "{:?}", answers[3]);
    assert!(
        matches!(answers[4], Err(StoreError::KeyBoundElsewhere)),
        "{:?}",
        answers[4]
    );
    for s in [&fresh[1], &fresh[3]] {
        assert!(
            store.certificate(s).await.unwrap().is_none(),
            "a refused pending row was written"
        );
    }
    assert_eq!(
        store.certificate(&taken).await.unwrap().unwrap().holder,
        "IIN3",
        "a refused request changed the row under its serial"
    );
    // Marked at once: the pending ones issued, the abandoned one refused and left abandoned.
    let marks = [(&fresh[0], 0x01u8), (&abandoned, 0x02), (&fresh[2], 0x03)];
    let ders: Vec<[u8; 2]> = marks.iter().map(|(_, b)| [0x30, *b]).collect();
    let answers = futures_util::future::join_all(
        marks
            .iter()
            .zip(&ders)
            .map(|((s, _), der)| store.mark_issued("nca", s, der, &actor)),
    )
    .await;
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert!(
        matches!(answers[1], Err(StoreError::StateConflict(_))),
        "{:?}",
        answers[1]
    );
    assert!(answers[2].is_ok(), "{:?}", answers[2]);
    for (s, b) in marks {
        let rec = store.certificate(s).await.unwrap().unwrap();
        if *s == abandoned {
            assert_eq!(rec.status, CertificateStatus::Abandoned);
        } else {
            assert_eq!(rec.status, CertificateStatus::Issued);
            assert_eq!(rec.der.as_deref(), Some(&[0x30, b][..]));
        }
    }
    store.close().await;
}

#[test]
fn batched_writes_answered_one_by_one_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    runtime().block_on(async { batched_answers(Store::open(&url).await.unwrap()).await });
}

#[test]
fn batched_writes_answered_one_by_one_on_postgres() {
    let url = fresh_postgres_database();
    runtime().block_on(async { batched_answers(Store::open(&url).await.unwrap()).await });
}

/// An application in `awaiting_documents` with its first step open.
async fn application_awaiting_documents(store: &Store) -> String {
    let number = format!("A{}", random_hex(15));
    let record = ApplicationRecord {
        number: number.clone(),
        process: "P1".into(),
        status: Status::AwaitingDocuments,
        iin: IIN.into(),
        centre: "c1".into(),
        storage: "file".into(),
        auth_csr: Some("auth".into()),
        sign_csr: Some("sign".into()),
        created_at: 1,
        updated_at: 1,
        ..Default::default()
    };
    let identity = step(1, StepKind::Identity, None);
    store
        .add_application(&record, &[identity], &[], &serde_json::json!("test"))
        .await
        .unwrap();
    number
}

fn step(seq: i64, step: StepKind, finished_at: Option<i64>) -> StepRecord {
    StepRecord {
        seq,
        step,
        actor: "operator".into(),
        started_at: 2,
        finished_at,
        deadline_seconds: None,
        outcome: None,
    }
}

fn to(status: Status, outcome: &str, steps: Vec<StepRecord>) -> Advance {
    Advance {
        to: status,
        outcome: outcome.into(),
        steps,
        ..Default::default()
    }
}

/// Changes of applications written in one group commit are answered as if written one after
/// another: a second change of the same application sees the first, a change whose application
/// has moved on writes nothing (not its steps either), the others are written whole.
/// `one_commit`: the four changes are known to share a commit (PostgreSQL's writer is a task of the
/// test's one-thread runtime, so it runs only once all four are sent; SQLite's has a thread of its
/// own and may take the first alone).
async fn batched_changes(store: Store, one_commit: bool) {
    let [twice, moved_on, refused] = [
        application_awaiting_documents(&store).await,
        application_awaiting_documents(&store).await,
        application_awaiting_documents(&store).await,
    ];
    let mut refusal = to(Status::Refused, "refused", vec![]);
    refusal.refusal = Some(Refusal {
        code: "identity_not_confirmed".into(),
        step: StepKind::Identity,
        message: "no".into(),
    });
    refusal.csr_digests = Some("[]".into());
    let changes = [
        (
            &twice,
            Status::AwaitingDocuments,
            to(
                Status::AwaitingConfirmation,
                "confirmed",
                vec![step(2, StepKind::Confirmation, None)],
            ),
        ),
        // Only after the first: in the same batch, in a second round.
        (
            &twice,
            Status::AwaitingConfirmation,
            to(Status::Issuing, "signed", vec![step(3, StepKind::Issue, None)]),
        ),
        // From a status it is not in: nothing of it is written.
        (
            &moved_on,
            Status::AwaitingConfirmation,
            to(Status::Issuing, "signed", vec![step(2, StepKind::Issue, None)]),
        ),
        (&refused, Status::AwaitingDocuments, refusal),
    ];
    let commits = store.group_commits()[0].1.commits;
    let answers = futures_util::future::join_all(
        changes
            .iter()
            .map(|(number, from, a)| store.advance_application(number, *from, a.clone())),
    )
    .await;
    if one_commit {
        assert_eq!(
            store.group_commits()[0].1.commits,
            commits + 1,
            "the four changes shared a commit"
        );
    }
    let answers: Vec<bool> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(answers, [true, true, false, true]);

    let a = store.application(&twice).await.unwrap().unwrap();
    assert_eq!(a.status, Status::Issuing);
    let steps = store.application_steps(&twice).await.unwrap();
    let seen: Vec<_> = steps
        .iter()
        .map(|s| (s.seq, s.step, s.outcome.as_deref(), s.finished_at.is_some()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, StepKind::Identity, Some("confirmed"), true),
            (2, StepKind::Confirmation, Some("signed"), true),
            (3, StepKind::Issue, None, false),
        ],
        "each change closed the steps open before it and opened its own"
    );

    let m = store.application(&moved_on).await.unwrap().unwrap();
    assert_eq!(m.status, Status::AwaitingDocuments);
    let steps = store.application_steps(&moved_on).await.unwrap();
    assert_eq!(steps.len(), 1, "a refused change wrote a step: {steps:?}");
    assert!(steps[0].finished_at.is_none(), "a refused change closed a step");

    // A number drawn twice: the second submission is refused alone, and changes nothing.
    let record = store.application(&moved_on).await.unwrap().unwrap();
    let again = store
        .add_application(
            &record,
            &[step(9, StepKind::Request, None)],
            &[],
            &serde_json::json!("test"),
        )
        .await;
    assert!(matches!(again, Err(StoreError::StateConflict(_))), "{again:?}");
    assert_eq!(store.application_steps(&moved_on).await.unwrap().len(), 1);

    let r = store.application(&refused).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Refused);
    assert_eq!(
        r.refusal.as_ref().map(|r| r.code.as_str()),
        Some("identity_not_confirmed")
    );
    assert_eq!(
        (r.auth_csr, r.sign_csr, r.csr_digests.as_deref()),
        (None, None, Some("[]"))
    );
    store.close().await;
}

#[test]
fn batched_changes_of_applications_answered_one_by_one_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    runtime().block_on(async { batched_changes(Store::open(&url).await.unwrap(), false).await });
}

#[test]
fn batched_changes_of_applications_answered_one_by_one_on_postgres() {
    let url = fresh_postgres_database();
    runtime().block_on(async { batched_changes(Store::open(&url).await.unwrap(), true).await });
}

/// The joined reads answer what their two separate reads answer: an application with its steps
/// in order, and a certificate with its revocation (none, a hold, a lifted hold, a revocation),
/// the revocation of its own issuer only; nothing for what does not exist.
async fn joined_reads(store: Store) {
    let number = application_awaiting_documents(&store).await;
    assert!(store.application_with_steps("A0000").await.unwrap().is_none());
    store
        .advance_application(
            &number,
            Status::AwaitingDocuments,
            to(
                Status::AwaitingConfirmation,
                "confirmed",
                vec![
                    step(2, StepKind::Receipt, Some(3)),
                    step(3, StepKind::Confirmation, None),
                ],
            ),
        )
        .await
        .unwrap();
    let (a, steps) = store.application_with_steps(&number).await.unwrap().unwrap();
    let alone = store.application(&number).await.unwrap().unwrap();
    assert_eq!(format!("{a:?}"), format!("{alone:?}"));
    assert_eq!(a.status, Status::AwaitingConfirmation);
    assert_eq!(
        format!("{steps:?}"),
        format!("{:?}", store.application_steps(&number).await.unwrap())
    );
    let kinds: Vec<(i64, StepKind)> = steps.iter().map(|s| (s.seq, s.step)).collect();
    assert_eq!(
        kinds,
        [
            (1, StepKind::Identity),
            (2, StepKind::Receipt),
            (3, StepKind::Confirmation)
        ]
    );

    assert!(store.certificate_and_revocation("00").await.unwrap().is_none());
    let serial = format!("6{}", random_hex(19));
    store.add_pending(&pending(&serial, "IIN7", "k7")).await.unwrap();
    store
        .mark_issued("nca", &serial, &[0x30, 0x01], &nca::model::Actor::Service)
        .await
        .unwrap();
    let same = |joined: Option<(nca::store::CertificateRecord, Option<nca::store::RevocationRecord>)>| {
        let (c, r) = joined.unwrap();
        (c.serial, c.issuer, c.status, c.der, r)
    };
    let check = || async {
        let joined = same(store.certificate_and_revocation(&serial).await.unwrap());
        let c = store.certificate(&serial).await.unwrap().unwrap();
        let r = store.revocation(&serial).await.unwrap();
        assert_eq!(joined, (c.serial, c.issuer, c.status, c.der, r.clone()));
        r
    };
    assert_eq!(check().await, None);
    let t = nca::store::now();
    store
        .revoke(&serial, t, 6, None, &nca::model::Actor::Service)
        .await
        .unwrap();
    assert_eq!(check().await.map(|r| (r.reason, r.lifted_at)), Some((6, None)));
    store.lift_hold(&serial, &nca::model::Actor::Service).await.unwrap();
    assert!(check().await.is_some_and(|r| r.lifted_at.is_some()));
    store
        .revoke(&serial, t + 1, 1, Some(t - 5), &nca::model::Actor::Service)
        .await
        .unwrap();
    let r = check().await.unwrap();
    assert_eq!((r.reason, r.revoked_at, r.invalidity_date), (1, t + 1, Some(t - 5)));
    store.close().await;
}

#[test]
fn joined_reads_answer_as_their_parts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    runtime().block_on(async { joined_reads(Store::open(&url).await.unwrap()).await });
}

#[test]
fn joined_reads_answer_as_their_parts_on_postgres() {
    let url = fresh_postgres_database();
    runtime().block_on(async { joined_reads(Store::open(&url).await.unwrap()).await });
}

#[test]
fn store_invariants_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    runtime().block_on(async {
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.journal_mode().await.unwrap().as_deref(), Some("wal"));
        invariants(store).await;
        Store::open(&url).await.unwrap().close().await;
    });
}

#[test]
fn store_invariants_on_postgres() {
    let url = fresh_postgres_database();
    runtime().block_on(async {
        invariants(Store::open(&url).await.unwrap()).await;
        Store::open(&url).await.unwrap().close().await;
    });
}

#[test]
fn a_deployment_runs_on_postgres() {
    let mut d = Deployment::with_database(Some(fresh_postgres_database()));
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let (_, csr) = openssl_csr(work.path(), "pg", "ec:P-256");
    let json = format!(
        r#"{{"profile":"individual-auth","csr":{},"iin":"{IIN}","surname":"A","name":"B"}}"#,
        js(&std::fs::read_to_string(csr).unwrap())
    );
    let (status, pem) = d.admin_post("/api/v1/admin/certificates", &json);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&pem));
    let crt = work.path().join("pg.crt");
    write(&crt, &pem);
    assert!(openssl_verify(&d, &crt).status.success());
    let (status, body) = d.get("/readyz");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(!d.path("nca.db").exists(), "a PostgreSQL deployment made a SQLite file");
    // A second ceremony against the same database refuses.
    assert!(!run(&mut d.nca(&["init"])).status.success());
}

/// SQLite's WAL is copied back into the database file by the store's background pass, not only
/// when a commit crosses `wal_autocheckpoint`'s 1,000 pages: a few rows, far under that, reach
/// the main file within a few ticks. In WAL mode only a checkpoint writes the main file, so
/// without the pass it would stay byte for byte as it was.
#[test]
fn the_wal_is_checkpointed_in_the_background_not_inside_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    runtime().block_on(async {
        let store = Store::open(&url).await.unwrap();
        // Let the pass copy what the migrations wrote, then take the file as it is.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let before = std::fs::read(&db).unwrap();
        for i in 0..3 {
            let serial = format!("{i}{}", random_hex(19));
            store
                .add_pending(&pending(&serial, &format!("IIN{i}"), &format!("k{i}")))
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read(&db).unwrap() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "the rows stayed in the WAL: no background checkpoint copied them to the database file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.close().await;
    });
}
