//! Receipts and the document archive (regulation §15.4, §20): the identity step keeps the
//! receipt with the documents seen, `GET /api/v1/admin/archive` lists what a centre accepted in a
//! period with the numbers masked (administrators only), and the retention sweep deletes a
//! receipt only once its period has ended.

use std::process::Command;

use crate::harness::*;
use crate::workflow::{add_operator, application, as_operator, json, post_identity, submit};

/// One column of one row, through python3's sqlite3.
fn sql(d: &Deployment, statement: &str) -> String {
    stdout(&run_ok(Command::new("python3").args([
        "-c",
        "import sys, sqlite3\nc = sqlite3.connect(sys.argv[1])\nr = c.execute(sys.argv[2]).fetchall()\nc.commit()\nprint(r[0][0] if r else '')",
        &d.path("nca.db").display().to_string(),
        statement,
    ])))
    .trim()
    .to_string()
}

#[test]
fn receipts_are_archived_with_masked_numbers_and_kept_until_their_period_ends() {
    let mut d = Deployment::new();
    // The sweep every second, with the default period (1,827 days).
    d.env.push(("NCA_ARCHIVE_SWEEP_SECONDS".into(), "1".into()));
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());

    // Two applications, identity confirmed with a numbered document and a kind alone.
    let mut numbers = Vec::new();
    for tag in ["a", "b"] {
        let (status, app) = submit(&d, &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), tag));
        assert_eq!(status, 201, "{app}");
        let number = app["number"].as_str().unwrap().to_string();
        let (status, body) = post_identity(
            &d,
            &op,
            &number,
            r#"{"confirmed":true,"documents":[{"kind":"identity card","number":"041234567"},"power of attorney"]}"#,
        );
        let v = json(&body);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["receipt"], format!("R-{number}"), "{v}");
        // The identity step's outcome (a view) shows the number masked.
        let outcome = v["steps"].to_string();
        assert!(outcome.contains("identity card *****4567"), "{v}");
        assert!(!outcome.contains("041234567"), "{v}");
        numbers.push(number);
    }
    // The operator's console view of the application masks it too.
    let (_, body) = as_operator(&d, &op, &format!("/api/v1/operator/applications/{}", numbers[0]), None);
    assert!(!String::from_utf8_lossy(&body).contains("041234567"));

    // The archive lists both, oldest first, with the number masked; the period is [from, to).
    let (status, body) = d.admin_get(&format!(
        "/api/v1/admin/archive?from=2000-01-01&to=2100-01-01&centre={centre}"
    ));
    let v = json(&body);
    assert_eq!(status, 200, "{v}");
    let receipts = v["receipts"].as_array().unwrap();
    // Given within the same second: in the order of their numbers then.
    let mut listed: Vec<&str> = receipts.iter().map(|r| r["application"].as_str().unwrap()).collect();
    let mut wanted: Vec<&str> = numbers.iter().map(String::as_str).collect();
    listed.sort();
    wanted.sort();
    assert_eq!(listed, wanted, "{v}");
    assert_eq!(
        receipts[0]["documents"],
        serde_json::json!([{"kind": "identity card", "number": "*****4567"}, {"kind": "power of attorney"}])
    );
    assert_eq!(
        (receipts[0]["centre"].as_str(), receipts[0]["operator"].as_str()),
        (Some(centre.as_str()), Some("920708497088"))
    );
    assert_eq!(v["retention_days"], 1827);
    assert!(!v.to_string().contains("041234567"), "{v}");
    // The database keeps the number in full: the archive is the record.
    assert!(sql(&d, "SELECT documents FROM receipts ORDER BY issued_at LIMIT 1").contains("041234567"));
    // Another centre's listing, and a period before, hold none.
    let (_, body) = d.admin_get("/api/v1/admin/archive?from=2000-01-01&to=2100-01-01&centre=nowhere");
    assert_eq!(json(&body)["receipts"], serde_json::json!([]));
    let (_, body) = d.admin_get("/api/v1/admin/archive?from=2000-01-01&to=2001-01-01T00:00:00Z");
    assert_eq!(json(&body)["receipts"], serde_json::json!([]));
    // A period that is not one is the client's mistake; and the archive is the administrator's.
    let (status, body) = d.admin_get("/api/v1/admin/archive?from=yesterday&to=2100-01-01");
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (400, Some("request_invalid"))
    );
    let (status, _) = d.admin_get("/api/v1/admin/archive?from=2100-01-01&to=2000-01-01");
    assert_eq!(status, 400);
    let (status, _) = d.admin_get("/api/v1/admin/archive?to=2100-01-01");
    assert_eq!(status, 400);
    let (status, body) = as_operator(&d, &op, "/api/v1/admin/archive?from=2000-01-01&to=2100-01-01", None);
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (403, Some("not_administrator"))
    );

    // Both sides of the period: one receipt given a minute inside it, one a minute past it.
    let now = sql(&d, "SELECT CAST(strftime('%s','now') AS INTEGER)")
        .parse::<i64>()
        .unwrap();
    let period = 1827 * 86_400;
    sql(
        &d,
        &format!(
            "UPDATE receipts SET issued_at = {} WHERE application = '{}'",
            now - period + 60,
            numbers[0]
        ),
    );
    sql(
        &d,
        &format!(
            "UPDATE receipts SET issued_at = {} WHERE application = '{}'",
            now - period - 60,
            numbers[1]
        ),
    );
    eventually(20, "the sweep deletes the receipt past its period", || {
        (sql(
            &d,
            &format!("SELECT COUNT(*) FROM receipts WHERE application = '{}'", numbers[1]),
        ) == "0")
            .then_some(())
    });
    // More sweeps, and the one inside its period is still there.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        sql(
            &d,
            &format!("SELECT COUNT(*) FROM receipts WHERE application = '{}'", numbers[0])
        ),
        "1"
    );
    // The sweep is in the audit chain, by the service.
    let detail = sql(
        &d,
        "SELECT detail FROM audit WHERE kind = 'archive.swept' ORDER BY seq DESC LIMIT 1",
    );
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        (detail["deleted"].as_i64(), detail["actor"]["role"].as_str()),
        (Some(1), Some("service"))
    );
    // The application itself stays: only the archive's period ends.
    let (status, _) = d.get(&format!("/api/v1/applications/{}?iin={IIN}", numbers[1]));
    assert_eq!(status, 200);
}

/// The archive on PostgreSQL: the receipt written in the identity step's transaction, and the
/// listing with and without a centre (a NULL centre parameter is "all").
#[test]
fn the_archive_lists_receipts_on_postgresql_too() {
    let mut d = Deployment::with_database(Some(fresh_postgres_database()));
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let (status, app) = submit(
        &d,
        &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "pg"),
    );
    assert_eq!(status, 201, "{app}");
    let number = app["number"].as_str().unwrap().to_string();
    let (status, _) = post_identity(
        &d,
        &op,
        &number,
        r#"{"confirmed":true,"documents":[{"kind":"passport","number":"N12345678"}]}"#,
    );
    assert_eq!(status, 200);
    for query in ["", "&centre="] {
        let centre_q = if query.is_empty() {
            String::new()
        } else {
            format!("{query}{centre}")
        };
        let (status, body) = d.admin_get(&format!(
            "/api/v1/admin/archive?from=2000-01-01&to=2100-01-01{centre_q}"
        ));
        let v = json(&body);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["receipts"][0]["application"], number.as_str(), "{v}");
        assert_eq!(v["receipts"][0]["documents"][0]["number"], "*****5678", "{v}");
    }
}
