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

/// Every audit record names who made the decision, by role: the ceremony and the `nca`
/// subcommands are the console's, the admin routes the administrator's (with the certificate
/// they authenticated with), the portal request the applicant's, the identity step and the
/// confirmation the operator's, and the result step, the scheduled CRLs and the checkpoints the
/// service's (`nca`, with its instance).
#[test]
fn every_audit_record_names_its_actor_by_role() {
    let (d, centre, work) = crate::workflow::running();
    // Console: an operator added with `nca operator add`, a certificate issued and revoked, a CRL.
    let op = crate::workflow::add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let (_, _, console_serial) = d.issue_individual(work.path(), "c", IIN, "ec:P-256");
    run_ok(&mut d.nca(&["cert", "revoke", &console_serial, "--reason", "superseded"]));
    run_ok(&mut d.nca(&["crl", "publish"]));
    // Administrator: a certificate issued and revoked, a CRL, an operator suspended and resumed.
    let (_, csr) = openssl_csr(work.path(), "admin-issued", "ec:P-256");
    let body = format!(
        r#"{{"profile":"individual-auth","csr":{},"subject":{{"iin":"{IIN}","surname":"Құнанбай","name":"Абай"}}}}"#,
        js(&std::fs::read_to_string(csr).unwrap())
    );
    let (status, pem) = d.admin_post("/api/v1/admin/certificates", &body);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&pem));
    let pem_path = work.path().join("admin-issued.pem");
    write(&pem_path, &pem);
    let admin_serial = serial_of(&pem_path);
    let (status, _) = d.admin_post(
        "/api/v1/admin/revocations",
        &format!(r#"{{"serial":"{admin_serial}","reason":"keyCompromise"}}"#),
    );
    assert_eq!(status, 201);
    assert_eq!(d.admin_post("/api/v1/admin/crl", "{}").0, 201);
    assert_eq!(
        d.admin_post("/api/v1/admin/operators/920708497088/suspend", "{}").0,
        200
    );
    assert_eq!(d.admin_post("/api/v1/admin/operators/920708497088/resume", "{}").0, 200);
    // Applicant, operator, service: a P1 to its end.
    let (status, app) = crate::workflow::submit(
        &d,
        &crate::workflow::application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "p1"),
    );
    assert_eq!(status, 201, "{app}");
    let number = app["number"].as_str().unwrap().to_string();
    crate::workflow::post_identity(&d, &op, &number, r#"{"confirmed":true,"documents":["identity card"]}"#);
    crate::workflow::confirm_completed(&d, &op, &number, work.path());
    let v = crate::workflow::json(&d.get(&format!("/api/v1/applications/{number}?iin={IIN}")).1);
    let pair: Vec<String> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();

    let out = stdout(&run_ok(Command::new("python3").args([
        "-c",
        "import sys, sqlite3, json\n\
         for k, s, d in sqlite3.connect(sys.argv[1]).execute('SELECT kind, subject, detail FROM audit ORDER BY seq'):\n\
         \x20   print(json.dumps([k, s, json.loads(d)]))",
        &d.path("nca.db").display().to_string(),
    ])));
    let records: Vec<(String, String, serde_json::Value)> =
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.len() > 20, "{records:?}");
    let role_of = |kind: &str, subject: &str| -> Vec<&str> {
        records
            .iter()
            .filter(|(k, s, _)| k == kind && s == subject)
            .map(|(_, _, d)| d["actor"]["role"].as_str().unwrap_or(""))
            .collect()
    };
    // Every record has one, of a known role, and a person's has their IIN and certificate.
    for (kind, subject, detail) in &records {
        let actor = &detail["actor"];
        match actor["role"].as_str() {
            Some("service") => assert_eq!(actor["name"], "nca", "{kind} {subject}: {actor}"),
            Some("console") => assert!(actor["user"].is_string(), "{kind} {subject}: {actor}"),
            Some("administrator" | "operator") => {
                assert!(actor["iin"].as_str().is_some_and(|i| i.len() == 12), "{kind}: {actor}");
                assert!(
                    actor["certificate"].as_str().is_some_and(|c| !c.is_empty()),
                    "{kind}: {actor}"
                );
            }
            Some("applicant") => assert_eq!(actor["iin"], IIN, "{kind}: {actor}"),
            _ => panic!("{kind} {subject} has no actor: {detail}"),
        }
    }
    // And the right one.
    assert!(
        records
            .iter()
            .filter(|(k, _, _)| k == "ceremony.key")
            .all(|(_, _, d)| d["actor"]["role"] == "console")
    );
    assert_eq!(role_of("operator.added", "920708497088"), ["console"]);
    assert_eq!(role_of("certificate.issued", &console_serial), ["console"]);
    assert_eq!(role_of("certificate.revoked", &console_serial), ["console"]);
    assert_eq!(role_of("certificate.issued", &admin_serial), ["administrator"]);
    assert_eq!(role_of("certificate.revoked", &admin_serial), ["administrator"]);
    assert_eq!(role_of("operator.suspended", "920708497088"), ["administrator"]);
    assert_eq!(role_of("operator.active", "920708497088"), ["administrator"]);
    for serial in &pair {
        assert_eq!(role_of("certificate.issued", serial), ["service"]);
    }
    let crls: Vec<&str> = records
        .iter()
        .filter(|(k, _, _)| k == "crl.published")
        .map(|(_, _, d)| d["actor"]["role"].as_str().unwrap())
        .collect();
    for role in ["service", "console", "administrator"] {
        assert!(crls.contains(&role), "no CRL published by the {role}: {crls:?}");
    }
    let app_roles: Vec<&str> = records
        .iter()
        .filter(|(k, s, _)| k.starts_with("application.") && *s == number)
        .map(|(_, _, d)| d["actor"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(app_roles, ["applicant", "operator", "operator", "service"]);
    let admin = records
        .iter()
        .find(|(k, s, _)| k == "certificate.issued" && *s == admin_serial)
        .map(|(_, _, d)| d["actor"].clone())
        .unwrap();
    // The administrator of the ceremony, as nca.toml names them.
    assert!(admin["iin"].as_str().is_some_and(|i| i.len() == 12), "{admin}");
    // The chain still verifies with the actors in it.
    assert!(stdout(&run_ok(&mut d.nca(&["audit", "verify"]))).contains("audit chain intact"));
}
