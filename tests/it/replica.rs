//! A status instance on a PostgreSQL streaming replica (issue #16): `nca serve --role status`
//! on a `pg_basebackup -R` copy of a primary, both started here with scripts/pg-start.sh.
//!
//! The primary is a server of this test's own, not the suite's: the test stops it, and the
//! suite's server carries the tests running beside this one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::presign::{answer_times, ocsp_request, openssl_ocsp, post_ocsp, until_status};

/// A PostgreSQL server of scripts/pg-start.sh, stopped when dropped (also the primary and
/// replica of tests/it/topology.rs).
pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    pub(crate) url: String,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

impl Postgres {
    /// A new server, or (`replica_of`) a streaming replica of one.
    pub(crate) fn start(replica_of: Option<u16>) -> Postgres {
        let dir = tempfile::Builder::new().prefix("pg").tempdir_in("/tmp").unwrap();
        // The postgres OS user must reach the directory (pg-start.sh runs it as that user).
        run_ok(Command::new("chmod").arg("711").arg(dir.path()));
        let port = free_port();
        let mut c = Command::new(script("pg-start.sh"));
        c.arg(dir.path().join("s")).arg(port.to_string());
        if let Some(p) = replica_of {
            c.env("PG_REPLICA_OF", p.to_string());
        }
        let url = stdout(&run_ok(&mut c)).trim().lines().last().unwrap().to_string();
        Postgres { dir, port, url }
    }

    fn stop(&self) {
        run_ok(Command::new(script("pg-stop.sh")).arg(self.dir.path().join("s")));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(script("pg-stop.sh"))
            .arg(self.dir.path().join("s"))
            .output();
    }
}

pub(crate) fn readyz(url: &str) -> serde_json::Value {
    let (_, body) = curl(&[&format!("{url}/readyz")]);
    serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&body)))
}

#[test]
fn a_status_instance_on_a_replica_answers_revocations_within_2_seconds_refuses_writes_and_outlives_the_primary() {
    let primary_db = Postgres::start(None);
    let mut primary = Deployment::with_database(Some(primary_db.url.clone()));
    // Answers of 20 s, signed anew 12 s before they run out: once the primary is gone, the
    // kept answers run out within the test.
    primary.env.extend([
        ("NCA_OCSP_PRESIGN_VALIDITY_SECONDS".to_string(), "20".to_string()),
        ("NCA_OCSP_PRESIGN_RENEW_BEFORE_SECONDS".to_string(), "12".to_string()),
        ("NCA_OCSP_PRESIGN_ROUND_SECONDS".to_string(), "1".to_string()),
    ]);
    primary.init();
    primary.start();
    let replica_db = Postgres::start(Some(primary_db.port));

    let mut status = primary.sibling();
    status.env.retain(|(k, _)| k != "NCA_DATABASE_URL");
    status.env.push(("NCA_DATABASE_URL".into(), replica_db.url.clone()));
    status.env.push(("NCA_ROLE".into(), "status".into()));
    status.start();
    let s = status.public.clone();

    // It says what it is, and how far behind the primary it is.
    let r = readyz(&s);
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(r["role"], "status", "{r}");
    let lag = r["replica_lag_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("no lag in {r}"));
    assert!((0.0..30.0).contains(&lag), "{r}");
    assert_eq!(readyz(&primary.public)["role"], "primary");

    let work = tempfile::tempdir().unwrap();
    let (cert, _, serial) = primary.issue_individual(work.path(), "a", IIN, "ec:P-256");
    until_status(&primary, &s, &cert, "good", Instant::now(), 15);

    // A revocation through the primary's API: revoked from the status instance within 2 s.
    let started = Instant::now();
    let (code, body) = primary.admin_post(
        "/api/v1/admin/revocations",
        &format!(r#"{{"serial":"{serial}","reason":"keyCompromise"}}"#),
    );
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let took = until_status(&primary, &s, &cert, "revoked", started, 10);
    assert!(took < Duration::from_secs(2), "revoked on the replica after {took:?}");

    // A nonce request gets the kept answer without its nonce: the status instance signs nothing.
    let text = openssl_ocsp(&primary, &s, &cert, true);
    assert!(text.contains(": revoked") && text.contains("no nonce"), "{text}");

    // Writes are refused with a stable code, and change nothing.
    for (path, body, ty) in [
        ("/api/v1/applications", "{}", "application/json"),
        ("/tsp", "x", "application/timestamp-query"),
    ] {
        let (code, resp) = curl(&[
            "-H",
            &format!("content-type: {ty}"),
            "--data-binary",
            body,
            &format!("{s}{path}"),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (421, Some("status_instance_read_only")),
            "{path}: {v}"
        );
    }
    // The portal is not there at all; CRLs and CA certificates are.
    assert_eq!(curl(&[&format!("{s}/")]).0, 404);
    assert_eq!(curl(&[&format!("{s}/crl/nca.crl")]).0, 200);
    assert_eq!(curl(&[&format!("{s}/cert/nca.cer")]).0, 200);

    // The primary instance and its database stop: the status instance keeps answering.
    primary.kill();
    primary_db.stop();
    let req = ocsp_request(&primary, work.path(), &cert, false);
    for _ in 0..3 {
        let (st, times) = answer_times(&post_ocsp(&s, &req));
        assert_eq!(st, x509_ocsp::OcspResponseStatus::Successful);
        assert!(times.is_some());
    }
    let text = openssl_ocsp(&primary, &s, &cert, false);
    assert!(
        text.contains(": revoked") && text.contains("Response verify OK"),
        "{text}"
    );
    assert_eq!(curl(&[&format!("{s}/crl/nca.crl")]).0, 200);
    assert_eq!(readyz(&s)["database"], "ok");

    // Nobody signs them anew now: once past its nextUpdate, a kept answer is not served, and
    // the answer is tryLater (unsigned) until a primary is back.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    eventually(40, "tryLater once the kept answer ran out", || {
        let (st, times) = answer_times(&post_ocsp(&s, &req));
        if let Some((_, next)) = times {
            assert!(now() <= next, "served past its nextUpdate {next}");
        }
        (st == x509_ocsp::OcspResponseStatus::TryLater).then_some(())
    });
}

#[test]
fn a_status_instance_refuses_a_database_whose_schema_is_not_its_own() {
    // An empty database: nothing migrated, and a status instance migrates nothing.
    let d = Deployment::with_database(Some(fresh_postgres_database()));
    let out = run(&mut d.nca(&["serve", "--role", "status"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("migrates nothing"), "{err}");
}
