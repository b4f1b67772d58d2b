//! The migrator (`sqlx::migrate!`, store/migrate.rs) on both backends: a database of the
//! hand-written migrator it replaced upgrades in place, a file changed after it was applied and a
//! version this binary lacks are refused at start (changing nothing), and instances starting
//! together on one PostgreSQL database apply each file once.

use std::path::PathBuf;

use nca::store::{Store, StoreError};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::harness::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn dir(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The repository's migration files of a backend, in version order: (version, path).
fn files(backend: Backend) -> Vec<(i64, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend.dir());
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name.split_once('_').unwrap().0.parse().unwrap(), p)
        })
        .collect();
    files.sort();
    files
}

async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(url).await.unwrap()
}

/// What the hand-written migrator left: the files up to `upto` applied, each in its
/// transaction, and their versions in `schema_migrations (version, applied_at)`.
async fn old_database(url: &str, backend: Backend, upto: i64) {
    let pool = pool(url).await;
    sqlx::raw_sql("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for (version, path) in files(backend).into_iter().filter(|(v, _)| *v <= upto) {
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(std::fs::read_to_string(path).unwrap()))
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(1_700_000_000_i64)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    pool.close().await;
}

/// `_sqlx_migrations` as (version, checksum, success), in version order.
async fn applied(url: &str) -> Vec<(i64, Vec<u8>, bool)> {
    let pool = pool(url).await;
    let rows = sqlx::query(
        "SELECT version, checksum, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) \
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get::<i64, _>(2) == 1))
    .collect();
    pool.close().await;
    rows
}

async fn count(url: &str, sql: &'static str) -> i64 {
    let pool = pool(url).await;
    let n = sqlx::query(sql).fetch_one(&pool).await.unwrap().get(0);
    pool.close().await;
    n
}

fn sha384(path: &PathBuf) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &std::fs::read(path).unwrap())
        .as_ref()
        .to_vec()
}

fn old_table_count(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name = 'schema_migrations'"
        }
    }
}

fn sqlite_deployment() -> (Deployment, String) {
    let d = Deployment::new();
    std::fs::create_dir_all(d.data()).unwrap();
    let url = format!("sqlite://{}?mode=rwc", d.path("nca.db").display());
    (d, url)
}

fn postgres_deployment() -> (Deployment, String) {
    let url = fresh_postgres_database();
    (Deployment::with_database(Some(url.clone())), url)
}

/// The old migrator's database at version 15 with a row of data: `nca serve` (its first start,
/// so it runs the ceremony too) adopts the 15 versions with the checksums sqlx computes,
/// applies only 0016, keeps the data, drops the old table, and starts again on the result.
fn upgrades_in_place(backend: Backend, (mut d, url): (Deployment, String)) {
    let rt = runtime();
    rt.block_on(old_database(&url, backend, 15));
    rt.block_on(async {
        let pool = pool(&url).await;
        sqlx::query("INSERT INTO meta (key, value) VALUES ('made_by', 'the old migrator')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    d.start();
    let (status, body) = d.get("/readyz");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let expected: Vec<(i64, Vec<u8>, bool)> = files(backend)
        .iter()
        .map(|(v, path)| (*v, sha384(path), true))
        .collect();
    assert!(expected.iter().any(|(v, _, _)| *v == 16), "0016 is among the files");
    assert_eq!(
        rt.block_on(applied(&url)),
        expected,
        "every file recorded once, with its SHA-384"
    );
    assert_eq!(
        rt.block_on(count(&url, old_table_count(backend))),
        0,
        "the old table stays"
    );
    assert_eq!(
        rt.block_on(count(&url, "SELECT COUNT(*) FROM meta WHERE key = 'made_by'")),
        1,
        "the data of the old database is kept (no file ran twice)"
    );
    // 0016 made the table (the pre-signer may have filled it by now).
    assert!(rt.block_on(count(&url, "SELECT COUNT(*) FROM ocsp_answers")) >= 0);

    // The second start validates the adopted checksums against the files, and passes.
    assert!(d.terminate(std::time::Duration::from_secs(15)));
    d.start();
    assert_eq!(d.get("/readyz").0, 200);
    assert!(d.terminate(std::time::Duration::from_secs(15)));
    assert_eq!(rt.block_on(applied(&url)), expected);
}

#[test]
fn a_database_of_the_old_migrator_upgrades_in_place_on_sqlite() {
    upgrades_in_place(Backend::Sqlite, sqlite_deployment());
}

#[test]
fn a_database_of_the_old_migrator_upgrades_in_place_on_postgres() {
    upgrades_in_place(Backend::Postgres, postgres_deployment());
}

/// A migrated database whose record of 0005 no longer matches the file (as when the file was
/// edited after it was applied): `nca serve` exits 1 naming the version, a status instance
/// refuses it too, and nothing is written (no ceremony).
fn refuses_a_changed_file((d, url): (Deployment, String)) {
    let rt = runtime();
    rt.block_on(async {
        Store::open(&url).await.unwrap().close().await;
        let pool = pool(&url).await;
        sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 5")
            .bind(vec![0u8; 48])
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });

    let out = run(&mut d.nca(&["serve"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("migration 5: changed after it was applied"), "{err}");
    assert_eq!(
        rt.block_on(count(&url, "SELECT COUNT(*) FROM ca_keys")),
        0,
        "the refused start ran the ceremony"
    );

    rt.block_on(async {
        for opened in [Store::open(&url).await, Store::open_read_only(&url).await] {
            match opened {
                Err(StoreError::Migration { version: 5, message }) => {
                    assert!(message.starts_with("changed after it was applied"), "{message}")
                }
                Err(e) => panic!("not the changed-file refusal: {e}"),
                Ok(_) => panic!("a changed migration file was accepted"),
            }
        }
    });
}

#[test]
fn a_migration_file_changed_after_it_was_applied_is_refused_on_sqlite() {
    refuses_a_changed_file(sqlite_deployment());
}

#[test]
fn a_migration_file_changed_after_it_was_applied_is_refused_on_postgres() {
    refuses_a_changed_file(postgres_deployment());
}

/// A database migrated by a newer binary (a version this one lacks) is refused by both roles
/// rather than run on a schema this binary does not know.
fn refuses_a_newer_schema(url: String) {
    runtime().block_on(async {
        Store::open(&url).await.unwrap().close().await;
        let pool = pool(&url).await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, $1, 0)",
        )
        .bind(vec![1u8; 48])
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        for opened in [Store::open(&url).await, Store::open_read_only(&url).await] {
            match opened {
                Err(StoreError::Migration { version, message }) => {
                    assert_eq!(version, 9999, "{message}");
                }
                Err(e) => panic!("not a migration refusal: {e}"),
                Ok(_) => panic!("a schema of a newer binary was accepted"),
            }
        }
    });
}

#[test]
fn a_schema_from_a_newer_binary_is_refused_on_sqlite() {
    refuses_a_newer_schema(sqlite_deployment().1);
}

#[test]
fn a_schema_from_a_newer_binary_is_refused_on_postgres() {
    refuses_a_newer_schema(fresh_postgres_database());
}

/// Four instances opening one PostgreSQL database at once, empty or left by the old migrator:
/// every one starts, and each file is applied and recorded once.
#[test]
fn instances_starting_together_on_postgres_apply_each_file_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let expected: Vec<i64> = files(Backend::Postgres).iter().map(|(v, _)| *v).collect();
    for old in [false, true] {
        let url = fresh_postgres_database();
        rt.block_on(async {
            if old {
                old_database(&url, Backend::Postgres, 9).await;
            }
            // One task polling four opens: each has its own connections, so their statements
            // meet in the database as separate instances' would.
            let opens = futures_util::future::join_all((0..4).map(|_| Store::open(&url))).await;
            for open in opens {
                match open {
                    Ok(store) => store.close().await,
                    Err(e) => panic!("a concurrent start failed (old database: {old}): {e}"),
                }
            }
            let versions: Vec<i64> = applied(&url).await.into_iter().map(|(v, _, _)| v).collect();
            assert_eq!(versions, expected, "old database: {old}");
            assert_eq!(count(&url, old_table_count(Backend::Postgres)).await, 0);
        });
    }
}

/// Every column of every certificate row, in one order: what 0017 must carry over unchanged.
async fn certificate_rows(url: &str) -> Vec<Vec<Option<String>>> {
    let pool = pool(url).await;
    let rows = sqlx::query(
        "SELECT issuer, serial, status, profile, subject, holder, key_sha256, CAST(not_before AS TEXT), \
         CAST(not_after AS TEXT), tbs, der, application, CAST(created_at AS TEXT), CAST(issued_at AS TEXT) \
         FROM certificates ORDER BY serial, issuer",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (0..14)
            .map(|i| match i {
                9 | 10 => r.get::<Option<Vec<u8>>, _>(i).map(hex::encode),
                _ => r.get::<Option<String>, _>(i),
            })
            .collect()
    })
    .collect();
    pool.close().await;
    rows
}

/// A certificate row written at 0016: (issuer, serial, status, der, application).
type Row0016 = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static [u8]>,
    Option<&'static str>,
);

/// A database at 0016 with certificates of every status under two issuers: 0017 re-keys the
/// table by (serial, issuer) and drops the index on serial alone, keeping every row as it was;
/// the key then refuses a second (serial, issuer) and not the same serial under another issuer,
/// and a lookup by serial alone goes through the key.
fn certificates_are_keyed_by_serial(backend: Backend, url: &str) {
    let rt = runtime();
    rt.block_on(async {
        old_database(url, backend, 16).await;
        let pool = pool(url).await;
        let rows: [Row0016; 4] = [
            ("issuing", "7a01", "issued", Some(b"der of 7a01"), Some("APP-1")),
            ("issuing", "0b02", "pending", None, None),
            ("root", "7a01", "issued", Some(b"root's 7a01"), None),
            ("issuing", "c3", "abandoned", None, Some("APP-1")),
        ];
        for (i, (issuer, serial, status, der, application)) in rows.into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO certificates (issuer, serial, status, profile, subject, holder, key_sha256, \
                 not_before, not_after, tbs, der, application, created_at, issued_at) \
                 VALUES ($1, $2, $3, 'individual-sign', 'CN=A', '850315306048', $4, 100, 200, $5, $6, $7, $8, $9)",
            )
            .bind(issuer)
            .bind(serial)
            .bind(status)
            .bind(format!("key{i}"))
            .bind(format!("tbs of {issuer} {serial}").into_bytes())
            .bind(der.map(<[u8]>::to_vec))
            .bind(application)
            .bind(1_000 + i as i64)
            .bind(der.map(|_| 2_000 + i as i64))
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    });
    let before = rt.block_on(certificate_rows(url));
    assert_eq!(before.len(), 4);

    let store = rt.block_on(Store::open(url)).unwrap();
    assert_eq!(rt.block_on(certificate_rows(url)), before, "every row kept as it was");
    let found = rt
        .block_on(store.certificate("0b02"))
        .unwrap()
        .expect("found by serial alone");
    assert_eq!((found.issuer.as_str(), found.der), ("issuing", None));
    rt.block_on(store.close());

    rt.block_on(async {
        let pool = pool(url).await;
        let (indexes, key) = match backend {
            Backend::Sqlite => (
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'certificates_serial'",
                // The plan of a lookup by serial alone names the key's index.
                sqlx::query("EXPLAIN QUERY PLAN SELECT issuer FROM certificates WHERE serial = '0b02'")
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(3))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Backend::Postgres => (
                "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'certificates' AND indexname = 'certificates_serial'",
                sqlx::query("SELECT indexdef FROM pg_indexes WHERE indexname = 'certificates_pkey'")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                    .get::<String, _>(0),
            ),
        };
        let n: i64 = sqlx::query(indexes).fetch_one(&pool).await.unwrap().get(0);
        assert_eq!(n, 0, "the index on serial alone is gone");
        match backend {
            Backend::Sqlite => assert!(key.contains("sqlite_autoindex_certificates"), "{key}"),
            Backend::Postgres => assert!(key.contains("(serial, issuer)"), "{key}"),
        }
        let insert = |issuer: &'static str| {
            sqlx::query(
                "INSERT INTO certificates (issuer, serial, status, profile, subject, holder, key_sha256, \
                 not_before, not_after, tbs, created_at) \
                 VALUES ($1, '0b02', 'pending', 'individual-sign', 'CN=A', 'h', 'k', 1, 2, $2, 3)",
            )
            .bind(issuer)
            .bind(b"tbs".to_vec())
        };
        let twice = insert("issuing").execute(&pool).await.unwrap_err();
        assert!(
            twice.as_database_error().is_some_and(|e| e.is_unique_violation()),
            "{twice}"
        );
        insert("root").execute(&pool).await.expect("the same serial under another issuer");
        pool.close().await;
    });
}

#[test]
fn certificates_are_keyed_by_serial_then_issuer_on_sqlite() {
    let (_d, url) = sqlite_deployment();
    certificates_are_keyed_by_serial(Backend::Sqlite, &url);
}

#[test]
fn certificates_are_keyed_by_serial_then_issuer_on_postgres() {
    certificates_are_keyed_by_serial(Backend::Postgres, &fresh_postgres_database());
}

/// A database at version 17 holding applications, their steps, a receipt and a survey: 0018 gives
/// the applications ids in the order they were created, keys each step by its application's id
/// (none lost, none moved to another application), keeps the receipt and the survey pointing at
/// their applications, and an application made afterwards takes the next id.
fn keys_steps_by_application_id(backend: Backend, (mut d, url): (Deployment, String)) {
    let rt = runtime();
    rt.block_on(old_database(&url, backend, 17));
    // Two applications, the later-made one first in the table, with two and one steps.
    let (early, late) = ("EARL-Y000-0000", "LATE-0000-0000");
    rt.block_on(async {
        let pool = pool(&url).await;
        for (number, created) in [(late, 2_000_i64), (early, 1_000)] {
            sqlx::query(
                "INSERT INTO applications (number, process, service, channel, status, iin, applicant, centre, storage, \
                 created_at, updated_at) VALUES ($1, 'issue', 'S', 'portal', 'completed', '850315306048', 'A B', 'c', \
                 'file', $2, $2)",
            )
            .bind(number)
            .bind(created)
            .execute(&pool)
            .await
            .unwrap();
        }
        for (number, seq, step, outcome) in [
            (late, 1_i64, "request", "accepted"),
            (early, 1, "request", "accepted"),
            (late, 2, "issue", "issued"),
        ] {
            sqlx::query(
                "INSERT INTO application_steps (number, seq, step, actor, started_at, finished_at, outcome) \
                 VALUES ($1, $2, $3, 'applicant', 10, 20, $4)",
            )
            .bind(number)
            .bind(seq)
            .bind(step)
            .bind(outcome)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO receipts (number, application, centre, operator, issued_at, documents) \
             VALUES ($1, $2, 'c', '920708497088', $3, '[]')",
        )
        .bind(format!("R-{late}"))
        .bind(late)
        // Issued now: the archive's retention sweep at start removes what is older than its period.
        .bind(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO surveys (number, process, information, answered_at) VALUES ($1, 'satisfied', 'partly', 40)",
        )
        .bind(early)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    d.start();
    assert_eq!(d.get("/readyz").0, 200);
    assert!(d.terminate(std::time::Duration::from_secs(15)));

    rt.block_on(async {
        let pool = pool(&url).await;
        let ids: Vec<(String, i64)> = sqlx::query("SELECT number, CAST(id AS BIGINT) FROM applications ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            ids,
            [(early.to_string(), 1), (late.to_string(), 2)],
            "ids follow creation"
        );
        let joined: i64 = sqlx::query(
            "SELECT COUNT(*) FROM receipts r JOIN applications a ON a.number = r.application WHERE a.number = $1",
        )
        .bind(late)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
        assert_eq!(joined, 1, "the receipt kept");
        let surveyed: i64 = sqlx::query("SELECT COUNT(*) FROM surveys WHERE number = $1")
            .bind(early)
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(surveyed, 1, "the survey kept");
        sqlx::query(
            "INSERT INTO applications (number, process, service, channel, status, iin, applicant, centre, storage, \
             created_at, updated_at) VALUES ('NEXT-0000-0000', 'issue', 'S', 'portal', 'completed', '850315306048', \
             'A B', 'c', 'file', 3000, 3000)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let next: i64 = sqlx::query("SELECT CAST(id AS BIGINT) FROM applications WHERE number = 'NEXT-0000-0000'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(next, 3, "a new application takes the next id");
        pool.close().await;

        let store = Store::open(&url).await.unwrap();
        let steps = |number: &'static str| {
            let store = &store;
            async move {
                store
                    .application_steps(number)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.seq, s.step.as_str().to_string(), s.outcome))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            steps(late).await,
            [
                (1, "request".to_string(), Some("accepted".to_string())),
                (2, "issue".to_string(), Some("issued".to_string()))
            ]
        );
        assert_eq!(
            steps(early).await,
            [(1, "request".to_string(), Some("accepted".to_string()))]
        );
        store.close().await;
    });
}

#[test]
fn application_steps_are_keyed_by_the_application_id_after_an_upgrade_on_sqlite() {
    keys_steps_by_application_id(Backend::Sqlite, sqlite_deployment());
}

#[test]
fn application_steps_are_keyed_by_the_application_id_after_an_upgrade_on_postgres() {
    keys_steps_by_application_id(Backend::Postgres, postgres_deployment());
}
