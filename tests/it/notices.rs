//! What the applicant is told: letters (the embedded file transport, and SMTP to a real listener
//! on loopback), refusal messages in the language asked for; and the SLA report of the steps.

use std::path::Path;

use base64::Engine;

use crate::harness::*;
use crate::kit::smtp::smtp_listener;
use crate::workflow::{add_operator, application, confirm_completed, json, post_identity};

/// Submits with an `Accept-Language`.
fn submit_in(d: &Deployment, lang: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, body) = curl(&[
        "-H",
        "content-type: application/json",
        "-H",
        &format!("accept-language: {lang}"),
        "--data-binary",
        body,
        &format!("{}/api/v1/applications", d.public),
    ]);
    (status, json(&body))
}

/// A letter's text: the body after the headers, decoded from base64 when so encoded.
pub(crate) fn letter_text(raw: &str) -> String {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    if head.to_ascii_lowercase().contains("content-transfer-encoding: base64") {
        let joined: String = body.split_whitespace().collect();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(joined).unwrap()).unwrap()
    } else if head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        quoted_printable(body)
    } else {
        body.to_string()
    }
}

/// RFC 2045 quoted-printable: soft line breaks dropped, `=XX` octets put back.
fn quoted_printable(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        if let (b'=', Some(v)) = (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The letters in the file transport's directory, as (raw, text), waiting up to 20 s for `n`.
fn letters(dir: &Path, n: usize) -> Vec<(String, String)> {
    let read = || -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| {
                let raw = std::fs::read_to_string(e.path()).unwrap();
                let text = letter_text(&raw);
                (raw, text)
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    };
    eventually(20, &format!("{n} letters in {}", dir.display()), || {
        Some(read()).filter(|l| l.len() >= n)
    })
}

#[test]
fn letters_go_out_in_the_applicants_language_and_refusals_speak_it_too() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());

    // A malformed request: 400, every wrong field named, nothing recorded.
    let mut bad: serde_json::Value =
        serde_json::from_str(&application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "bad")).unwrap();
    bad["applicant"]["iin"] = "850315306049".into();
    bad["requests"]["auth"] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into();
    bad["registration_centre"] = "nowhere".into();
    let (status, v) = submit_in(&d, "en", &bad.to_string());
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "request_invalid");
    let fields: Vec<(&str, &str)> = v["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("applicant.iin", "iin_invalid"),
            ("registration_centre", "centre_not_found"),
            ("requests.auth", "csr_malformed")
        ]
    );
    let (status, v) = submit_in(
        &d,
        "en",
        r#"{"service": "issue", "applicant": {"iin": "850315306048"}}"#,
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["fields"][0]["field"], "surname", "{v}");
    let (status, v) = submit_in(&d, "en", "{not json");
    assert_eq!(status, 400);
    assert_eq!(v["error"]["fields"][0]["field"], "body", "{v}");
    let (_, queue) = d.admin_get("/api/v1/admin/monitoring");
    assert_eq!(json(&queue)["pending"], 0, "a malformed request records nothing");

    // A refusal in Russian, Kazakh and (detailed) English; the code is the same.
    let refused = application(IIN, "Басқа", "Абай", "", &centre, work.path(), "x");
    for (lang, words) in [
        ("ru-RU,ru;q=0.9", "не совпадают"),
        ("kk", "сәйкес келмейді"),
        ("en-GB", "differ from the state database"),
    ] {
        let (status, v) = submit_in(&d, lang, &refused);
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["refusal"]["code"], "registry_mismatch");
        let message = v["refusal"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{lang}: {message}");
    }

    // P1 in Russian: the order-number letter, then the issue notice with the install link.
    let (status, v) = submit_in(
        &d,
        "ru",
        &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "a"),
    );
    assert_eq!(status, 201, "{v}");
    let number = v["number"].as_str().unwrap().to_string();
    let mail = d.path("mail");
    let first = letters(&mail, 1);
    assert_eq!(first.len(), 1, "a refused application gets no letter");
    let (raw, text) = &first[0];
    assert!(raw.contains("To: abai@example.kz"), "{raw}");
    assert!(
        raw.contains("Subject: =?utf-8?"),
        "a non-ASCII subject is encoded: {raw}"
    );
    assert!(
        text.contains(&format!("зарегистрирована под номером {number}")),
        "{text}"
    );

    let (status, _) = post_identity(&d, &op, &number, r#"{"confirmed": true, "documents": ["id_card"]}"#);
    assert_eq!(status, 200);
    confirm_completed(&d, &op, &number, work.path());
    let both = letters(&mail, 2);
    let notice = both
        .iter()
        .map(|(_, t)| t)
        .find(|t| t.contains("выданы"))
        .expect("the issue notice");
    let link = format!("/api/v1/applications/{number}/certificates?iin={IIN}");
    assert!(notice.contains(&link), "{notice}");
    // The link in the letter works.
    let (status, pem) = d.get(&link);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&pem).matches("BEGIN CERTIFICATE").count(), 4);

    // The SLA report: P1's steps counted, with the regulation's deadlines.
    let (status, body) = d.admin_get("/api/v1/admin/reports/sla");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let report = json(&body);
    let p1 = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["process"] == "P1")
        .unwrap();
    let step = |name: &str| {
        p1["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap()
            .clone()
    };
    // Four requests (three refused at the registry check); one identity, one issue.
    assert_eq!(step("request")["count"], 4, "{p1}");
    assert_eq!(step("registry_check")["count"], 4, "{p1}");
    assert_eq!(step("identity")["count"], 1, "{p1}");
    assert_eq!(step("identity")["deadline_seconds"], 900);
    assert_eq!(step("identity")["over_deadline"], 0);
    assert!(step("identity")["p95_seconds"].as_i64().is_some());
    assert_eq!(step("issue")["count"], 1, "{p1}");
    let (status, _) = curl(&[&format!("{}/api/v1/admin/reports/sla", d.operator), "-k"]);
    assert_ne!(status, 200, "the report is for administrators only");
}

#[test]
fn letters_are_handed_to_an_smtp_relay() {
    let (port, got) = smtp_listener();
    let mut d = Deployment::new();
    d.env.push(("NCA_MAIL".into(), format!("smtp://127.0.0.1:{port}")));
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let (status, v) = submit_in(
        &d,
        "en",
        &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "s"),
    );
    assert_eq!(status, 201, "{v}");
    let number = v["number"].as_str().unwrap();
    eventually(20, "a letter at the relay", || {
        (!got.lock().unwrap().is_empty()).then_some(())
    });
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one letter");
    let (rcpt, data) = &got[0];
    assert_eq!(rcpt, "<abai@example.kz>");
    let text = letter_text(&data.replace("\r\n..", "\r\n."));
    assert!(text.contains(&format!("registered under number {number}")), "{data}");
    // Delivered: the queue says so.
    let delivered = eventually(10, "the letter recorded delivered", || {
        let v = json(&d.admin_get("/api/v1/admin/monitoring").1);
        v["mail"]["delivered"].as_i64().filter(|n| *n == 1)
    });
    assert_eq!(delivered, 1);
}
