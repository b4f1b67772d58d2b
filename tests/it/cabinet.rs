//! The personal cabinet: sign-in with the citizen's AUTH key (openssl makes the signatures),
//! sessions, the holder's lists, and the expiry reminders with a clock the test moves.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;
use crate::workflow::{add_operator, application, confirm_completed, json, post_identity, running, submit};

/// Another person of the demo registry.
const OTHER: (&str, &str, &str) = ("781123342860", "Жұмабаев", "Ерлан");

/// A citizen's issued pair: certificates and keys in files.
struct Pair {
    number: String,
    auth_crt: PathBuf,
    auth_key: PathBuf,
    sign_crt: PathBuf,
    sign_key: PathBuf,
    auth_serial: String,
}

/// P1 for `iin` through an operator of `centre`, keys tagged `tag` in `work`.
fn issued_pair(d: &Deployment, op: &Path, centre: &str, work: &Path, who: (&str, &str, &str), tag: &str) -> Pair {
    let (iin, surname, name) = who;
    let (status, app) = submit(d, &application(iin, surname, name, "", centre, work, tag));
    assert_eq!(status, 201, "{app}");
    let number = app["number"].as_str().unwrap().to_string();
    let (status, _) = post_identity(d, op, &number, r#"{"confirmed":true,"documents":["identity card"]}"#);
    assert_eq!(status, 200);
    confirm_completed(d, op, &number, work);
    pair_of(d, work, &number, iin, tag)
}

/// The pair an application issued, written beside the keys made for it.
fn pair_of(d: &Deployment, work: &Path, number: &str, iin: &str, tag: &str) -> Pair {
    let (status, pem) = d.get(&format!("/api/v1/applications/{number}/certificates?iin={iin}"));
    assert_eq!(status, 200);
    let text = String::from_utf8(pem).unwrap();
    let certs: Vec<&str> = text.split_inclusive("-----END CERTIFICATE-----\n").collect();
    let auth_crt = work.join(format!("{tag}-auth.crt"));
    let sign_crt = work.join(format!("{tag}-sign.crt"));
    write(&auth_crt, certs[0].as_bytes());
    write(&sign_crt, certs[1].as_bytes());
    Pair {
        number: number.to_string(),
        auth_serial: serial_of(&auth_crt),
        auth_crt,
        sign_crt,
        auth_key: work.join(format!("{tag}-auth.key")),
        sign_key: work.join(format!("{tag}-sign.key")),
    }
}

/// `curl` with extra arguments, keeping the response headers: (status, headers, body).
fn curl_with_headers(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let headers_s = headers.display().to_string();
    let mut all = vec!["-D", headers_s.as_str()];
    all.extend_from_slice(args);
    let (status, body) = curl(&all);
    (status, std::fs::read_to_string(&headers).unwrap_or_default(), body)
}

fn new_challenge(d: &Deployment) -> String {
    let (status, body) = curl(&["-X", "POST", &format!("{}/api/v1/cabinet/challenge", d.public)]);
    let v = json(&body);
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        v["to_sign"].as_str().unwrap(),
        format!("nca-cabinet-sign-in:{}", v["challenge"].as_str().unwrap())
    );
    v["challenge"].as_str().unwrap().to_string()
}

/// The sign-in body: `challenge` signed with `key` (openssl dgst, SHA-256), `cert` presented.
fn signed(work: &Path, challenge: &str, cert: &Path, key: &Path) -> String {
    let msg = work.join("challenge.txt");
    write(&msg, format!("nca-cabinet-sign-in:{challenge}").as_bytes());
    let sig = work.join("challenge.sig");
    run_ok(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(key)
            .arg("-out")
            .arg(&sig)
            .arg(&msg),
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({
        "challenge": challenge,
        "certificate": std::fs::read_to_string(cert).unwrap(),
        "signature": b64.encode(std::fs::read(&sig).unwrap()),
    })
    .to_string()
}

/// POST the sign-in: (status, JSON, the session cookie's `name=value` when one was set).
fn sign_in(d: &Deployment, cookie: Option<&str>, body: &str) -> (u16, serde_json::Value, Option<String>, String) {
    let cookie = format!("cookie: {}", cookie.unwrap_or(""));
    let (status, headers, body) = curl_with_headers(&[
        "-H",
        "content-type: application/json",
        "-H",
        &cookie,
        "--data-binary",
        body,
        &format!("{}/api/v1/cabinet/session", d.public),
    ]);
    let set_cookie = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(|l| l["set-cookie:".len()..].trim().to_string())
        .unwrap_or_default();
    let cookie = set_cookie
        .split(';')
        .next()
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    (status, json(&body), cookie, set_cookie)
}

/// A cabinet GET with the cookie (if any): (status, body).
fn cabinet_get(d: &Deployment, path: &str, cookie: Option<&str>) -> (u16, Vec<u8>) {
    let url = format!("{}{path}", d.public);
    match cookie {
        Some(c) => curl(&["-H", &format!("cookie: {c}"), &url]),
        None => curl(&[&url]),
    }
}

fn code(body: &[u8]) -> String {
    json(body)["error"]["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn sign_in_with_the_auth_key_opens_a_session_and_every_wrong_challenge_key_or_certificate_is_refused() {
    let (d, centre, work) = running();
    let w = work.path();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, w);
    let p = issued_pair(&d, &op, &centre, w, (IIN, "Құнанбай", "Абай"), "a");
    let mut sc = Scenario::new("sign-in and its refusals");

    // Signed with the AUTH key: a session, in an HttpOnly, SameSite=Strict cookie (not Secure:
    // this service's base URL is plain HTTP).
    let cookie = sc.step("signed in with the AUTH key: a session in a strict cookie", || {
        let (status, v, cookie, set_cookie) =
            sign_in(&d, None, &signed(w, &new_challenge(&d), &p.auth_crt, &p.auth_key));
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["iin"], IIN);
        assert_eq!(v["certificate"], p.auth_serial.as_str());
        let cookie = cookie.expect("a session cookie");
        assert!(cookie.starts_with("nca_cabinet="), "{set_cookie}");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
            assert!(set_cookie.contains(attr), "{set_cookie}");
        }
        assert!(!set_cookie.contains("Secure"), "{set_cookie}");
        cookie
    });
    // The holder's certificates, applications, and one certificate with its chain.
    sc.check("the holder's certificates, applications and chain", || {
        let (status, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", Some(&cookie));
        let list = json(&body);
        assert_eq!(status, 200, "{list}");
        let certs = list["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 2, "{list}");
        let kinds: Vec<_> = certs.iter().map(|c| c["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"auth") && kinds.contains(&"sign"), "{list}");
        assert!(certs.iter().all(|c| c["status"] == "valid"), "{list}");
        let (status, body) = cabinet_get(&d, "/api/v1/cabinet/applications", Some(&cookie));
        assert_eq!(status, 200);
        assert_eq!(json(&body)["applications"][0]["number"], p.number.as_str());
        let (status, body) = cabinet_get(&d, "/api/v1/cabinet/session", Some(&cookie));
        let me = json(&body);
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["applicant"]["email"], "abai@example.kz", "{me}");
        assert_eq!(me["registration_centre"], centre.as_str(), "{me}");
        let (status, pem) = cabinet_get(
            &d,
            &format!("/api/v1/cabinet/certificates/{}", p.auth_serial),
            Some(&cookie),
        );
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(pem).unwrap().matches("BEGIN CERTIFICATE").count(), 3);
    });
    // Signing in again from the same browser ends the session it had: one cookie, one session.
    let cookie = sc.step("signing in again ends the session the browser had", || {
        let (status, _, renewed, _) = sign_in(
            &d,
            Some(&cookie),
            &signed(w, &new_challenge(&d), &p.auth_crt, &p.auth_key),
        );
        assert_eq!(status, 201);
        let (status, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", Some(&cookie));
        assert_eq!((status, code(&body)), (401, "session_ended".into()));
        let cookie = renewed.unwrap();
        assert_eq!(cabinet_get(&d, "/api/v1/cabinet/certificates", Some(&cookie)).0, 200);
        cookie
    });
    // Someone else's certificate is not shown to this holder.
    let other = sc.step("another holder's pair, not shown to this one", || {
        let other = issued_pair(&d, &op, &centre, w, OTHER, "o");
        let (status, body) = cabinet_get(
            &d,
            &format!("/api/v1/cabinet/certificates/{}", other.auth_serial),
            Some(&cookie),
        );
        assert_eq!((status, code(&body)), (404, "certificate_not_found".into()));
        other
    });
    // A challenge is spent once: the same signed answer again is a replay.
    sc.check("a challenge is spent once", || {
        let challenge = new_challenge(&d);
        let body = signed(w, &challenge, &p.auth_crt, &p.auth_key);
        assert_eq!(sign_in(&d, None, &body).0, 201);
        let (status, v, cookie2, _) = sign_in(&d, None, &body);
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (401, Some("challenge_used")),
            "{v}"
        );
        assert!(cookie2.is_none());
    });
    // One the service never gave.
    sc.check("a challenge the service never gave", || {
        let (status, v, _, _) = sign_in(&d, None, &signed(w, "bm90LWdpdmVu", &p.auth_crt, &p.auth_key));
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (401, Some("challenge_unknown")),
            "{v}"
        );
    });
    // The AUTH certificate with a signature by another key (the SIGN key of the same pair).
    sc.check("a signature by another key", || {
        let (status, v, _, _) = sign_in(&d, None, &signed(w, &new_challenge(&d), &p.auth_crt, &p.sign_key));
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (401, Some("sign_in_signature_invalid")),
            "{v}"
        );
    });
    // The SIGN certificate with its own key: not for signing in.
    sc.check("the SIGN certificate is not for signing in", || {
        let (status, v, _, _) = sign_in(&d, None, &signed(w, &new_challenge(&d), &p.sign_crt, &p.sign_key));
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (403, Some("sign_in_not_auth_certificate")),
            "{v}"
        );
    });
    // A certificate this CA did not issue, self-signed by its key.
    sc.check("a certificate this CA did not issue", || {
        let stranger = w.join("stranger.crt");
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509", "-new", "-subj", "/CN=stranger", "-days", "1", "-key"])
                .arg(&p.auth_key)
                .arg("-out")
                .arg(&stranger),
        );
        let (status, v, _, _) = sign_in(&d, None, &signed(w, &new_challenge(&d), &stranger, &p.auth_key));
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (401, Some("sign_in_certificate_unknown")),
            "{v}"
        );
    });
    // Malformed: refused, no session.
    sc.check("a malformed sign-in", || {
        let (status, v, cookie3, _) = sign_in(&d, None, r#"{"challenge":"x"}"#);
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("request_invalid")),
            "{v}"
        );
        assert!(cookie3.is_none());
    });
    // Sessions: none, forged, signed out.
    sc.check("sessions: none, forged, signed out", || {
        let (status, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", None);
        assert_eq!((status, code(&body)), (401, "session_required".into()));
        let (status, body) = cabinet_get(
            &d,
            "/api/v1/cabinet/certificates",
            Some("nca_cabinet=Zm9yZ2VkLXNlc3Npb24tdG9rZW4tb2YtMzItYnl0ZXM"),
        );
        assert_eq!((status, code(&body)), (401, "session_invalid".into()));
        let (status, _, out_body) = curl_with_headers(&[
            "-X",
            "DELETE",
            "-H",
            &format!("cookie: {cookie}"),
            &format!("{}/api/v1/cabinet/session", d.public),
        ]);
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&out_body));
        let (status, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", Some(&cookie));
        assert_eq!((status, code(&body)), (401, "session_ended".into()));
    });
    // A revoked AUTH certificate: no new session, and the open one ends.
    sc.step(
        "a revoked AUTH certificate: no new session, and the open one ends",
        || {
            let (_, _, live, _) = sign_in(&d, None, &signed(w, &new_challenge(&d), &p.auth_crt, &p.auth_key));
            let live = live.unwrap();
            let (status, body) = d.admin_post(
                "/api/v1/admin/revocations",
                &format!(r#"{{"serial":"{}","reason":"keyCompromise"}}"#, p.auth_serial),
            );
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            let (status, v, _, _) = sign_in(&d, None, &signed(w, &new_challenge(&d), &p.auth_crt, &p.auth_key));
            assert_eq!(
                (status, v["error"]["code"].as_str()),
                (403, Some("sign_in_certificate_revoked")),
                "{v}"
            );
            let (status, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", Some(&live));
            assert_eq!((status, code(&body)), (401, "session_certificate_revoked".into()));
        },
    );
    // The other holder's session shows the revocation of nothing of theirs; theirs is valid.
    sc.check("the other holder's certificates stay valid", || {
        let (_, _, theirs, _) = sign_in(
            &d,
            None,
            &signed(w, &new_challenge(&d), &other.auth_crt, &other.auth_key),
        );
        let (status, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", theirs.as_deref());
        assert_eq!(status, 200);
        assert!(
            json(&body)["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] == "valid")
        );
    });
    sc.finish();
}

#[test]
fn challenges_and_sessions_run_out() {
    let mut d = Deployment::new();
    d.env.push(("NCA_CABINET_CHALLENGE_SECONDS".into(), "2".into()));
    d.env.push(("NCA_CABINET_SESSION_SECONDS".into(), "2".into()));
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let centre = d.first_centre();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, w);
    let p = issued_pair(&d, &op, &centre, w, (IIN, "Құнанбай", "Абай"), "a");

    let stale = new_challenge(&d);
    let (status, _, cookie, _) = sign_in(&d, None, &signed(w, &new_challenge(&d), &p.auth_crt, &p.auth_key));
    assert_eq!(status, 201);
    let cookie = cookie.unwrap();
    assert_eq!(cabinet_get(&d, "/api/v1/cabinet/certificates", Some(&cookie)).0, 200);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let (status, v, _, _) = sign_in(&d, None, &signed(w, &stale, &p.auth_crt, &p.auth_key));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("challenge_expired")),
        "{v}"
    );
    let (status, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", Some(&cookie));
    assert_eq!((status, code(&body)), (401, "session_expired".into()));
}

/// `nca cabinet remind --at TIME`: what it printed as sent, as (application, days).
fn remind_at(d: &Deployment, at: i64) -> Vec<(String, i64)> {
    let at = time::OffsetDateTime::from_unix_timestamp(at)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = stdout(&run_ok(&mut d.nca(&["cabinet", "remind", "--at", &at])));
    out.lines()
        .filter_map(|l| l.strip_prefix("reminded: application="))
        .map(|l| {
            let (a, days) = l.split_once(" days=").unwrap();
            (a.to_string(), days.parse().unwrap())
        })
        .collect()
}

fn unix(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

#[test]
fn reminders_go_out_30_and_7_days_before_expiry_once_and_never_for_revoked_or_reissued_pairs() {
    // On PostgreSQL: the sign-in test runs the cabinet's SQL on SQLite, this one on the other
    // backend (challenge, session, lists, the expiring pairs and the reminder rows).
    let mut d = Deployment::with_database(Some(fresh_postgres_database()));
    let mail = d.dir.path().join("mail");
    d.env.push(("NCA_MAIL".into(), format!("file:{}", mail.display())));
    // A production run (the SoftHSM2 suite's) may not move the clock.
    let production = d.env.iter().any(|(k, v)| k == "NCA_DEVELOPMENT" && v == "false");
    d.init();
    if production {
        let out = run(&mut d.nca(&["cabinet", "remind", "--at", "2030-01-01T00:00:00Z"]));
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--at moves the clock"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        let out = run(d
            .nca(&["cabinet", "remind", "--at", "2030-01-01T00:00:00Z"])
            .env("NCA_DEVELOPMENT", "false"));
        assert!(!out.status.success(), "a production run refuses to move the clock");
    }
    // From here on a development run, whose clock the test may move.
    d.env.push(("NCA_DEVELOPMENT".into(), "true".into()));
    d.start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let centre = d.first_centre();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, w);

    // Three pairs: one reissued (P2), one revoked, and a third person's in force.
    let a = issued_pair(&d, &op, &centre, w, (IIN, "Құнанбай", "Абай"), "a");
    let b = issued_pair(&d, &op, &centre, w, OTHER, "b");
    let (status, body) = d.admin_post(
        "/api/v1/admin/revocations",
        &format!(r#"{{"serial":"{}","reason":"cessationOfOperation"}}"#, b.auth_serial),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let reissue = application(IIN, "Құнанбай", "Абай", "", &centre, w, "a2").replace("\"issue\"", "\"reissue\"");
    let reissue_file = w.join("reissue.json");
    write(&reissue_file, reissue.as_bytes());
    let cms = w.join("reissue.p7s");
    cms_sign(&reissue_file, &a.sign_crt, &a.sign_key, &cms);
    let (status, body) = curl(&[
        "-H",
        "content-type: application/pkcs7-mime",
        "-H",
        "accept-language: en",
        "--data-binary",
        &format!("@{}", cms.display()),
        &format!("{}/api/v1/applications", d.public),
    ]);
    let v = json(&body);
    assert_eq!(status, 201, "{v}");
    let renewed = v["number"].as_str().unwrap().to_string();
    confirm_completed(&d, &op, &renewed, w);

    // When the new pair ends, from the cabinet.
    let a2 = pair_of(&d, w, &renewed, IIN, "a2");
    let (_, _, cookie, _) = sign_in(&d, None, &signed(w, &new_challenge(&d), &a2.auth_crt, &a2.auth_key));
    let (_, body) = cabinet_get(&d, "/api/v1/cabinet/certificates", cookie.as_deref());
    let list = json(&body);
    let new_sign = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "sign" && c["status"] == "valid")
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    let ends = unix(new_sign["not_after"].as_str().unwrap());
    let superseded: Vec<_> = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "revoked")
        .map(|c| c["revocation"]["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(superseded, ["superseded", "superseded"], "{list}");

    let day = 86_400;
    // 31 days ahead: nothing yet.
    assert_eq!(remind_at(&d, ends - 31 * day), []);
    // 30 days: the renewed pair only; not the pair it superseded, not the revoked one.
    let sent = remind_at(&d, ends - 30 * day + 60);
    assert_eq!(
        sent,
        [(renewed.clone(), 30)],
        "reissued {} revoked {}",
        a.number,
        b.number
    );
    // Once: the same time again, and a day later, send nothing.
    assert_eq!(remind_at(&d, ends - 30 * day + 60), []);
    assert_eq!(remind_at(&d, ends - 29 * day), []);
    // 7 days: the second reminder, once.
    let sent7 = remind_at(&d, ends - 7 * day + 60);
    assert_eq!(sent7, [(renewed.clone(), 7)]);
    assert_eq!(remind_at(&d, ends - 6 * day), []);

    // The letters are delivered through the outbox, in the language of the reissue (English);
    // wait for the reminders themselves (the other letters go out meanwhile, in any order).
    let reminders = eventually(20, "the two reminder letters", || {
        let r: Vec<String> = all_letters(&mail)
            .into_iter()
            .filter(|t| t.contains("expire on"))
            .collect();
        (r.len() >= 2).then_some(r)
    });
    assert_eq!(reminders.len(), 2, "{reminders:?}");
    assert!(
        reminders
            .iter()
            .any(|t| t.contains("in 30 days") && t.contains("/cabinet/"))
    );
    assert!(
        reminders
            .iter()
            .any(|t| t.contains("in 7 days") && t.contains(&renewed))
    );
}

/// The letters' texts in the file transport's directory.
fn all_letters(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| crate::notices::letter_text(&std::fs::read_to_string(e.path()).unwrap_or_default()))
        .collect()
}
