//! The server side of the portal, the console and the admin pages: pages and assets with their
//! content types and languages, the application form's rate limits and proof of work, the
//! quality survey, the console's view of an application and the admin pages' endpoints. The
//! pages themselves are exercised in a browser by tests/e2e/portal.mjs.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// curl: (status, headers as text, body).
fn fetch(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (body, headers) = (dir.path().join("body"), dir.path().join("headers"));
    let out = run(Command::new("curl")
        .args(["-s", "--max-time", "60", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "%{http_code}"])
        .args(args));
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (
        code,
        std::fs::read_to_string(&headers).unwrap_or_default().to_lowercase(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or(serde_json::Value::Null)
}

/// A deployment with these portal settings (the harness turns the limits off otherwise).
fn deployment(settings: &[(&str, &str)]) -> Deployment {
    let mut d = Deployment::new();
    for (k, v) in settings {
        d.env.retain(|(name, _)| name != k);
        d.env.push((k.to_string(), v.to_string()));
    }
    d.init();
    d.start();
    d
}

fn application(iin: &str, surname: &str, centre: &str, work: &Path, tag: &str) -> String {
    let (_, auth) = openssl_csr(work, &format!("{tag}-auth"), "ec:P-256");
    let (_, sign) = openssl_csr(work, &format!("{tag}-sign"), "ec:P-256");
    serde_json::json!({
        "service": "issue",
        "applicant": {"iin": iin, "surname": surname, "name": "Абай", "email": "abai@example.kz"},
        "registration_centre": centre,
        "storage": "file",
        "requests": {"auth": std::fs::read_to_string(auth).unwrap(), "sign": std::fs::read_to_string(sign).unwrap()},
    })
    .to_string()
}

/// POST /api/v1/applications with extra curl arguments: (status, headers, JSON).
fn submit(d: &Deployment, json_body: &str, extra: &[&str]) -> (u16, String, serde_json::Value) {
    let url = format!("{}/api/v1/applications", d.public);
    let mut args = vec!["-H", "content-type: application/json", "--data-binary", json_body];
    args.extend_from_slice(extra);
    args.push(&url);
    let (status, headers, body) = fetch(&args);
    (status, headers, json(&body))
}

/// A stamp `nca-pow1:BITS:NOW:IIN:RANDOM:COUNTER` whose SHA-256 has BITS leading zero bits.
fn mint(bits: u32, iin: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let random = random_hex(8);
    (0u64..)
        .map(|c| format!("nca-pow1:{bits}:{now}:{iin}:{random}:{c}"))
        .find(|s| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
            let zeros = d
                .as_ref()
                .iter()
                .position(|b| *b != 0)
                .map(|i| i as u32 * 8 + d.as_ref()[i].leading_zeros())
                .unwrap_or(256);
            zeros >= bits
        })
        .unwrap()
}

#[test]
fn pages_and_assets_are_served_with_their_types_languages_and_policy() {
    let d = deployment(&[]);
    let (status, headers, body) = fetch(&[&format!("{}/?lang=en", d.public)]);
    let html = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: text/html; charset=utf-8"), "{headers}");
    assert!(
        headers.contains("content-security-policy: default-src 'self'"),
        "{headers}"
    );
    assert!(headers.contains("content-language: en"), "{headers}");
    assert!(html.contains("<html lang=\"en\">"));
    for label in [
        "IIN",
        "Surname",
        "Name",
        "Patronymic",
        "E-mail",
        "Region",
        "Locality",
        "Registration centre",
        "Key storage",
    ] {
        assert!(html.contains(&format!("\">{label}</label>")), "label {label}");
    }
    assert!(html.contains(">Submit</button>"));
    assert!(html.contains("1.2.398.3.3.2.4") && html.find("policy-h") < html.find("application-form"));
    assert!(!html.contains("http://") && !html.contains("https://"), "no other host");

    // The language from Accept-Language, Kazakh when nothing matches.
    let (_, headers, body) = fetch(&["-H", "accept-language: ru-RU,ru;q=0.9", &format!("{}/", d.public)]);
    assert!(headers.contains("content-language: ru"));
    assert!(String::from_utf8(body).unwrap().contains(">ИИН</label>"));
    let (_, _, body) = fetch(&["-H", "accept-language: de", &format!("{}/status", d.public)]);
    assert!(String::from_utf8(body).unwrap().contains("<html lang=\"kk\">"));

    for (file, ctype) in [
        ("portal.js", "text/javascript"),
        ("pkcs12.js", "text/javascript"),
        ("pow-worker.js", "text/javascript"),
        ("nca.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = fetch(&[&format!("{}/assets/{file}", d.public)]);
        assert_eq!(status, 200, "{file}");
        assert!(headers.contains(&format!("content-type: {ctype}")), "{file}: {headers}");
        assert!(headers.contains("x-content-type-options: nosniff"));
        assert!(!body.is_empty());
    }
    let (status, _, body) = fetch(&[&format!("{}/assets/nope.js", d.public)]);
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // The console and the admin pages are on the operator listener only.
    assert_eq!(fetch(&[&format!("{}/console/", d.public)]).0, 404);
    for page in ["/console/", "/admin/", "/assets/console.js"] {
        let cacert = d.path("ca/root.pem").display().to_string();
        let cert = d.path("admin/auth.crt").display().to_string();
        let key = d.path("admin/auth.key").display().to_string();
        let url = format!("{}{page}", d.operator);
        let (status, headers, _) = fetch(&["--cacert", &cacert, "--cert", &cert, "--key", &key, &url]);
        assert_eq!(status, 200, "{page}");
        assert!(
            headers.contains("content-type: text/html") || headers.contains("content-type: text/javascript"),
            "{page}: {headers}"
        );
    }
}

#[test]
fn the_form_is_rate_limited_per_address_and_per_iin_and_a_proof_of_work_spares_the_address() {
    let d = deployment(&[
        ("NCA_RATE_PER_ADDRESS", "2"),
        ("NCA_RATE_PER_IIN", "3"),
        ("NCA_POW_BITS", "8"),
    ]);
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let other_iin = "781123342860";
    let app = application(IIN, "Құнанбай", &centre, work.path(), "a");
    let other = application(other_iin, "Жұмабаев", &centre, work.path(), "b");

    assert_eq!(submit(&d, &app, &[]).0, 201);
    assert_eq!(submit(&d, &other, &[]).0, 422, "a refusal counts too");
    let (status, headers, v) = submit(&d, &app, &[]);
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    assert!(headers.contains("retry-after: "), "{headers}");

    // The portal's proof of work spares the address's bucket, once per stamp.
    let stamp = format!("x-proof-of-work: {}", mint(8, IIN));
    assert_eq!(submit(&d, &app, &["-H", &stamp]).0, 201);
    let (status, _, v) = submit(&d, &app, &["-H", &stamp]);
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("proof_of_work_invalid")),
        "{v}"
    );
    // A stamp for another IIN, or with fewer bits than asked, proves nothing.
    let (status, _, _) = submit(&d, &app, &["-H", &format!("x-proof-of-work: {}", mint(8, other_iin))]);
    assert_eq!(status, 400);
    let (status, _, _) = submit(&d, &app, &["-H", &format!("x-proof-of-work: {}", mint(4, IIN))]);
    assert_eq!(status, 400);

    // The IIN's bucket holds whatever the proof: the third application naming it is refused.
    let (status, _, v) = submit(&d, &app, &["-H", &format!("x-proof-of-work: {}", mint(8, IIN))]);
    assert_eq!(status, 201, "{v}");
    let (status, _, v) = submit(&d, &app, &["-H", &format!("x-proof-of-work: {}", mint(8, IIN))]);
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("IIN"), "{v}");
}

#[test]
fn the_survey_is_stored_once_after_the_end_and_reported_and_the_console_sees_the_applicant() {
    let d = deployment(&[]);
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();

    // Refused at once (the names are not the registry's): finished, so the survey is open.
    let (status, _, refused) = submit(&d, &application(IIN, "Басқа", &centre, work.path(), "r"), &[]);
    assert_eq!(status, 422, "{refused}");
    let refused = refused["number"].as_str().unwrap().to_string();
    let (status, _, open) = submit(&d, &application(IIN, "Құнанбай", &centre, work.path(), "o"), &[]);
    assert_eq!(status, 201, "{open}");
    let open = open["number"].as_str().unwrap().to_string();

    let survey = |number: &str, iin: &str, body: Option<&str>| {
        let url = format!("{}/api/v1/applications/{number}/survey?iin={iin}", d.public);
        let (status, _, b) = match body {
            Some(b) => fetch(&["-H", "content-type: application/json", "--data-binary", b, &url]),
            None => fetch(&[&url]),
        };
        (status, json(&b))
    };
    let answer = r#"{"process":"partly","information":"satisfied"}"#;
    assert_eq!(
        survey(&refused, IIN, None),
        (200, serde_json::json!({"answered": false}))
    );
    let (status, v) = survey(&open, IIN, Some(answer));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("survey_not_open")),
        "{v}"
    );
    let (status, v) = survey(&refused, "920708497088", Some(answer));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("application_not_found")),
        "{v}"
    );
    let (status, v) = survey(&refused, IIN, Some(r#"{"process":"very","information":"satisfied"}"#));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("request_invalid")),
        "{v}"
    );
    assert_eq!(survey(&refused, IIN, Some(answer)).0, 201);
    let (status, v) = survey(&refused, IIN, Some(answer));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("survey_answered")),
        "{v}"
    );
    assert_eq!(
        survey(&refused, IIN, None),
        (
            200,
            serde_json::json!({"answered": true, "process": "partly", "information": "satisfied"})
        )
    );

    let (status, body) = d.admin_get("/api/v1/admin/reports/survey");
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["answers"], 1, "{v}");
    assert_eq!(v["process"]["partly"], 1);
    assert_eq!(v["information"]["satisfied"], 1);
    assert_eq!(v["information"]["not_satisfied"], 0);

    // The admin pages' other endpoints: CRLs per issuer, operators.
    let (status, body) = d.admin_get("/api/v1/admin/crl");
    assert_eq!(status, 200);
    let crls = json(&body)["crls"].as_array().unwrap().clone();
    assert!(
        crls.iter()
            .any(|c| c["issuer"] == "nca" && c["kind"] == "delta" && c["next_update"].is_string()),
        "{crls:?}"
    );
    let dir = work.path().join("op");
    let dir_s = dir.display().to_string();
    run_ok(&mut d.nca(&[
        "operator",
        "add",
        "--iin",
        "920708497088",
        "--surname",
        "Сейітқали",
        "--name",
        "Айгерім",
        "--centre",
        &centre,
        "--out",
        &dir_s,
        "--key-algorithm",
        "ec-p256",
    ]));
    let (status, body) = d.admin_get("/api/v1/admin/operators");
    assert_eq!(status, 200);
    let ops = json(&body);
    assert_eq!(ops["operators"][0]["iin"], "920708497088", "{ops}");
    assert_eq!(ops["operators"][0]["status"], "active");
    assert!(ops["operators"][0]["last_activity_at"].is_string());

    // The console's view of an application: the applicant's data, only for the operator's centre.
    let cacert = d.path("ca/root.pem").display().to_string();
    let (cert, key) = (
        dir.join("auth.crt").display().to_string(),
        dir.join("auth.key").display().to_string(),
    );
    let url = format!("{}/api/v1/operator/applications/{open}", d.operator);
    let (status, _, body) = fetch(&["--cacert", &cacert, "--cert", &cert, "--key", &key, &url]);
    let v = json(&body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "awaiting_documents");
    assert_eq!(v["applicant"]["surname"], "Құнанбай");
    assert_eq!(v["centre"]["id"], centre.as_str());
    // The administrator is not an operator of a centre.
    let (status, _) = d.admin_get(&format!("/api/v1/operator/applications/{open}"));
    assert_eq!(status, 403);
}
