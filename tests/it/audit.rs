//! The audit chain: every change recorded, and tampering found and named.

use std::process::Command;

use crate::harness::*;

fn sql(d: &Deployment, statement: &str) {
    run_ok(Command::new("python3").args([
        "-c",
        &format!(
            "import sqlite3; c=sqlite3.connect('{}'); c.execute(\"{statement}\"); c.commit()",
            d.path("nca.db").display()
        ),
    ]));
}

fn query(d: &Deployment, statement: &str) -> String {
    stdout(&run_ok(Command::new("python3").args([
        "-c",
        &format!(
            "import sqlite3; c=sqlite3.connect('{}'); print(c.execute(\"{statement}\").fetchall())",
            d.path("nca.db").display()
        ),
    ])))
}

#[test]
fn every_change_is_chained_and_tampering_is_named() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let (_, _, serial) = d.issue_individual(work.path(), "a", IIN, "ec:P-256");
    run_ok(&mut d.nca(&["cert", "revoke", &serial, "--reason", "superseded"]));
    run_ok(&mut d.nca(&["crl", "publish"]));

    let kinds = query(&d, "SELECT kind FROM audit ORDER BY seq");
    for k in [
        "ceremony.key",
        "certificate.issued",
        "certificate.revoked",
        "crl.published",
        "audit.checkpoint",
    ] {
        assert!(kinds.contains(k), "{k} not in the audit: {kinds}");
    }
    let issued = query(
        &d,
        &format!("SELECT count(*) FROM audit WHERE kind = 'certificate.issued' AND subject = '{serial}'"),
    );
    assert_eq!(issued.trim(), "[(1,)]", "one record of the issuance");

    let out = run_ok(&mut d.nca(&["audit", "verify"]));
    assert!(stdout(&out).contains("audit chain intact"), "{}", stdout(&out));
    let (status, body) = d.admin_get("/api/v1/admin/audit/verify");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["intact"], true, "{v}");

    // An edit in the middle: named.
    let target: i64 = query(&d, "SELECT seq FROM audit WHERE kind = 'certificate.revoked'")
        .trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')' || c == ',' || c == '\n')
        .parse()
        .unwrap();
    sql(
        &d,
        &format!(
            "UPDATE audit SET detail = replace(detail, '\\\"reason\\\":4', '\\\"reason\\\":1') WHERE seq = {target}"
        ),
    );
    let changed = query(&d, &format!("SELECT detail FROM audit WHERE seq = {target}"));
    assert!(
        changed.contains("\"reason\":1"),
        "the tampering did not take: {changed}"
    );
    let out = run(&mut d.nca(&["audit", "verify"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("audit record {target}: changed")), "{err}");
    let (_, body) = d.admin_get("/api/v1/admin/audit/verify");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["intact"].as_bool(), v["first_bad"].as_i64()),
        (Some(false), Some(target)),
        "{v}"
    );

    // Put it back, then remove a record: named as missing.
    sql(
        &d,
        &format!(
            "UPDATE audit SET detail = replace(detail, '\\\"reason\\\":1', '\\\"reason\\\":4') WHERE seq = {target}"
        ),
    );
    assert!(run(&mut d.nca(&["audit", "verify"])).status.success());
    sql(&d, "DELETE FROM audit WHERE seq = 2");
    let out = run(&mut d.nca(&["audit", "verify"]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit record 2: missing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
