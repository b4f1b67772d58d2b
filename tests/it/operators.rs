//! Operators: the roll, the lifecycle of §15, and what the operator listener lets each one do.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// A valid IIN for an operator (not one of the applicants used elsewhere).
const OPERATOR_IIN: &str = "920708497088";

/// `GET /api/v1/operator/me` with an operator's AUTH credentials.
fn me(d: &Deployment, dir: &Path) -> (u16, serde_json::Value) {
    let (status, body) = curl(&[
        "--cacert",
        &d.path("ca/root.pem").display().to_string(),
        "--cert",
        &dir.join("auth.crt").display().to_string(),
        "--key",
        &dir.join("auth.key").display().to_string(),
        &format!("{}/api/v1/operator/me", d.operator),
    ]);
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

fn admin(d: &Deployment, path: &str, json: &str) -> (u16, serde_json::Value) {
    let (status, body) = d.admin_post(path, json);
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

fn add_operator(d: &Deployment, iin: &str, centre: &str, out: &Path, alg: &str) -> std::process::Output {
    run(&mut d.nca(&[
        "operator",
        "add",
        "--iin",
        iin,
        "--surname",
        "Сейітова",
        "--name",
        "Әсел",
        "--centre",
        centre,
        "--out",
        &out.display().to_string(),
        "--key-algorithm",
        alg,
    ]))
}

#[test]
fn an_operator_acts_while_active_and_is_refused_when_suspended_or_dismissed() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let dir: PathBuf = work.path().join("op");
    let out = add_operator(&d, OPERATOR_IIN, &centre, &dir, "rsa-2048");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "active");
    for f in ["auth.key", "auth.crt", "sign.key", "sign.crt", "chain.pem"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("sign.key")).unwrap().permissions().mode() & 0o077,
        0
    );
    for f in ["auth.crt", "sign.crt"] {
        assert!(openssl_verify(&d, &dir.join(f)).status.success(), "{f}");
    }
    let text = stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.join("sign.crt")),
    ));
    assert!(
        text.contains("Non Repudiation") && text.contains("1.2.398.3.3.4.2.3"),
        "{text}"
    );

    // The same person twice: refused.
    let again = add_operator(&d, OPERATOR_IIN, &centre, &work.path().join("again"), "ec-p256");
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("operator_exists"));

    let (status, v) = me(&d, &dir);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["iin"], OPERATOR_IIN);
    assert_eq!(v["centre"], centre);
    // An operator is not an administrator.
    let (status, body) = d.operator_post("/api/v1/admin/crl", &dir.join("auth.crt"), &dir.join("auth.key"), "{}");
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("not_administrator"));
    // The SIGN certificate does not log in: it has no clientAuth, and TLS refuses it.
    let (status, body) = curl(&[
        "--cacert",
        &d.path("ca/root.pem").display().to_string(),
        "--cert",
        &dir.join("sign.crt").display().to_string(),
        "--key",
        &dir.join("sign.key").display().to_string(),
        &format!("{}/api/v1/operator/me", d.operator),
    ]);
    assert_eq!(status, 0, "{}", String::from_utf8_lossy(&body));

    // Suspended and resumed by an administrator over the API.
    let (status, v) = admin(&d, &format!("/api/v1/admin/operators/{OPERATOR_IIN}/suspend"), "{}");
    assert_eq!((status, v["status"].as_str()), (200, Some("suspended")), "{v}");
    let (status, v) = me(&d, &dir);
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("operator_suspended")),
        "{v}"
    );
    let (status, v) = admin(&d, &format!("/api/v1/admin/operators/{OPERATOR_IIN}/suspend"), "{}");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("operator_status_conflict")),
        "{v}"
    );
    let (status, _) = admin(&d, &format!("/api/v1/admin/operators/{OPERATOR_IIN}/resume"), "{}");
    assert_eq!(status, 200);
    assert_eq!(me(&d, &dir).0, 200);

    // Sixteen days without activity: suspended by the rule, and it stays suspended.
    let db = d.path("nca.db");
    run_ok(Command::new("python3").args([
        "-c",
        &format!(
            "import sqlite3,time; c=sqlite3.connect('{}'); c.execute(\"UPDATE operators SET last_activity_at=? WHERE iin='{OPERATOR_IIN}'\", (int(time.time())-16*86400,)); c.commit()",
            db.display()
        ),
    ]));
    let (status, v) = me(&d, &dir);
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("operator_suspended")),
        "{v}"
    );
    let (_, v) = admin(&d, &format!("/api/v1/admin/operators/{OPERATOR_IIN}/resume"), "{}");
    assert_eq!(v["status"], "active");

    // Dismissal: too soon is refused; three days ahead schedules the revocation of both.
    let today = time::OffsetDateTime::now_utc().date();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let tomorrow = (today + time::Duration::days(1)).format(&fmt).unwrap();
    let out = run(&mut d.nca(&["operator", "dismiss", OPERATOR_IIN, "--on", &tomorrow]));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("dismissal_too_soon"));
    let later = (today + time::Duration::days(4)).format(&fmt).unwrap();
    let out = run_ok(&mut d.nca(&["operator", "dismiss", OPERATOR_IIN, "--on", &later]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Midnight of that day in local time (+05:00 by default), shown in UTC.
    let midnight = (today + time::Duration::days(4))
        .midnight()
        .assume_offset(time::macros::offset!(+5));
    let expected = midnight
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(v["dismissed_at"].as_str(), Some(expected.as_str()), "{v}");
    assert_eq!(me(&d, &dir).0, 200, "the operator works until the day");
    let serial = v["sign_serial"].as_str().unwrap();
    let (_, body) = d.get(&format!("/api/v1/certificates/{serial}"));
    assert!(String::from_utf8_lossy(&body).contains("\"status\":\"valid\""));

    // A lost key: dismissed at once, certificates revoked now.
    let out = run_ok(&mut d.nca(&[
        "operator",
        "dismiss",
        OPERATOR_IIN,
        "--now",
        "--reason",
        "keyCompromise",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "dismissed");
    let (status, v) = me(&d, &dir);
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("operator_dismissed")),
        "{v}"
    );
    let (_, body) = d.get(&format!("/api/v1/certificates/{serial}"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["revocation_reason"].as_str()),
        (Some("revoked"), Some("keyCompromise")),
        "{v}"
    );
}

#[test]
fn administrators_add_operators_from_csrs_and_bad_requests_are_refused() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let (_, auth) = openssl_csr(work.path(), "auth", "rsa:2048");
    let (_, sign) = openssl_csr(work.path(), "sign", "rsa:2048");
    let body = |iin: &str, centre: &str| {
        format!(
            r#"{{"iin":"{iin}","surname":"Ким","name":"Виктория","centre":"{centre}","auth_csr":{},"sign_csr":{}}}"#,
            js(&std::fs::read_to_string(&auth).unwrap()),
            js(&std::fs::read_to_string(&sign).unwrap())
        )
    };
    let (status, v) = admin(&d, "/api/v1/admin/operators", &body(OPERATOR_IIN, &centre));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["operator"]["role"], "operator");
    let pem = v["certificates"].as_str().unwrap();
    assert_eq!(
        pem.matches("-----BEGIN CERTIFICATE-----").count(),
        4,
        "AUTH, SIGN, issuing, root"
    );
    for (b, status, code) in [
        (body(OPERATOR_IIN, &centre), 409, "operator_exists"),
        (body("000101594515", "no-such-centre"), 422, "centre_not_found"),
        (body("920708497089", &centre), 422, "iin_invalid"),
    ] {
        let (got, v) = admin(&d, "/api/v1/admin/operators", &b);
        assert_eq!((got, v["error"]["code"].as_str()), (status, Some(code)), "{v}");
    }
    let (status, v) = admin(&d, "/api/v1/admin/operators/000101594515/suspend", "{}");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("operator_not_found")),
        "{v}"
    );
}
