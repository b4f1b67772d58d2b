//! P1 (issue via the portal) and P3 (revoke via the portal), end to end: the citizen's request,
//! the registry check, the operator's identity step, the to-be-signed document signed with
//! openssl, issuance; then the revocation request signed with the citizen's own SIGN key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

pub(crate) fn application(
    iin: &str,
    surname: &str,
    name: &str,
    patronymic: &str,
    centre: &str,
    work: &Path,
    tag: &str,
) -> String {
    let (_, auth) = openssl_csr(work, &format!("{tag}-auth"), "ec:P-256");
    let (_, sign) = openssl_csr(work, &format!("{tag}-sign"), "ec:P-256");
    serde_json::json!({
        "service": "issue",
        "applicant": {"iin": iin, "surname": surname, "name": name, "patronymic": patronymic, "email": "abai@example.kz"},
        "registration_centre": centre,
        "storage": "file",
        "requests": {"auth": std::fs::read_to_string(auth).unwrap(), "sign": std::fs::read_to_string(sign).unwrap()},
    })
    .to_string()
}

pub(crate) fn submit(d: &Deployment, json: &str) -> (u16, serde_json::Value) {
    let (status, body) = curl(&[
        "-H",
        "content-type: application/json",
        "--data-binary",
        json,
        &format!("{}/api/v1/applications", d.public),
    ]);
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// An operator's request with their AUTH credentials: method GET unless a body is given.
pub(crate) fn as_operator(d: &Deployment, op: &Path, path: &str, body: Option<(&str, &str)>) -> (u16, Vec<u8>) {
    let (cert, key) = (
        op.join("auth.crt").display().to_string(),
        op.join("auth.key").display().to_string(),
    );
    let url = format!("{}{path}", d.operator);
    let cacert = d.path("ca/root.pem").display().to_string();
    let mut args = vec!["--cacert", &cacert, "--cert", &cert, "--key", &key];
    if let Some((ctype, data)) = body {
        args.extend(["-H", ctype, "--data-binary", data]);
    }
    args.push(&url);
    curl(&args)
}

/// A running deployment, its first centre, and a working directory.
pub(crate) fn running() -> (Deployment, String, tempfile::TempDir) {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let centre = d.first_centre();
    (d, centre, tempfile::tempdir().unwrap())
}

/// An operator of `centre` with P-256 credentials in files; returns their directory.
pub(crate) fn add_operator(d: &Deployment, iin: &str, surname: &str, centre: &str, work: &Path) -> PathBuf {
    let dir = work.join(format!("op-{iin}"));
    let dir_s = dir.display().to_string();
    let args = [
        "operator",
        "add",
        "--iin",
        iin,
        "--surname",
        surname,
        "--name",
        "Оператор",
        "--centre",
        centre,
        "--out",
        &dir_s,
        "--key-algorithm",
        "ec-p256",
    ];
    run_ok(&mut d.nca(&args));
    dir
}

pub(crate) fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or(serde_json::Value::Null)
}

/// Sends the CMS in the file `cms` as the operator's confirmation of `number`.
pub(crate) fn post_confirmation(d: &Deployment, op: &Path, number: &str, cms: &Path) -> (u16, Vec<u8>) {
    let body = format!("@{}", cms.display());
    as_operator(
        d,
        op,
        &format!("/api/v1/operator/applications/{number}/confirmation"),
        Some(("content-type: application/pkcs7-mime", &body)),
    )
}

/// Signs and sends the confirmation of `number`, which completes it.
pub(crate) fn confirm_completed(d: &Deployment, op: &Path, number: &str, work: &Path) {
    let cms = confirmation(d, op, number, work);
    let (status, body) = post_confirmation(d, op, number, &cms);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["status"], "completed");
}

/// The operator's identity step on `number` with this JSON body.
pub(crate) fn post_identity(d: &Deployment, op: &Path, number: &str, body: &str) -> (u16, Vec<u8>) {
    as_operator(
        d,
        op,
        &format!("/api/v1/operator/applications/{number}/identity"),
        Some(("content-type: application/json", body)),
    )
}

/// Signs the to-be-signed document of `number` with the operator in `op`; returns the CMS file.
pub(crate) fn confirmation(d: &Deployment, op: &Path, number: &str, work: &Path) -> PathBuf {
    let (status, tbs) = as_operator(
        d,
        op,
        &format!("/api/v1/operator/applications/{number}/to-be-signed"),
        None,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&tbs));
    let tbs_file = work.join(format!("{number}.tbs"));
    write(&tbs_file, &tbs);
    let out = work.join(format!("{number}.p7s"));
    cms_sign(&tbs_file, &op.join("sign.crt"), &op.join("sign.key"), &out);
    out
}

#[test]
fn p1_issues_p2_reissues_and_p3_revokes_from_the_portal_and_refusals_are_results() {
    let (d, centre, work) = running();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let mut sc = Scenario::new("P1, P2, P3 from the portal");

    // The citizen's request: registered, awaiting the visit to the centre.
    let number = sc.step("P1 registered, awaiting the visit", || {
        let (status, app) = submit(
            &d,
            &application(IIN, "құнанбай", "Абай", "Құнанбайұлы", &centre, work.path(), "a"),
        );
        assert_eq!(status, 201, "{app}");
        assert_eq!(app["status"], "awaiting_documents");
        let number = app["number"].as_str().unwrap().to_string();
        let steps = step_names(&app);
        assert_eq!(
            steps,
            ["request", "registry_check", "register", "notify_number", "identity"],
            "{app}"
        );
        assert_eq!(app["steps"][4]["deadline_seconds"], 900);
        assert!(app["steps"][4]["finished_at"].is_null());
        number
    });
    // Only the applicant's IIN finds it.
    sc.check("only the applicant's IIN finds it", || {
        assert_eq!(d.get(&format!("/api/v1/applications/{number}?iin={IIN}")).0, 200);
        assert_eq!(d.get(&format!("/api/v1/applications/{number}?iin=000101594515")).0, 404);
    });
    // The operator's queue has it; identity confirmed gives the receipt.
    sc.step("P1 identity confirmed at the centre", || {
        let (status, body) = as_operator(&d, &op, "/api/v1/operator/applications?status=awaiting_documents", None);
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains(&number));
        let (status, body) = post_identity(&d, &op, &number, r#"{"confirmed":true,"documents":["identity card"]}"#);
        let v = json(&body);
        assert_eq!(
            (status, v["status"].as_str()),
            (200, Some("awaiting_confirmation")),
            "{v}"
        );
        assert!(v["receipt"].as_str().is_some_and(|r| r.contains(&number)), "{v}");
    });
    // The operator signs the to-be-signed bytes; the pair is issued.
    let (cms, issued) = sc.step("P1 confirmed: the pair issued", || {
        let cms = confirmation(&d, &op, &number, work.path());
        let (status, resp) = post_confirmation(&d, &op, &number, &cms);
        let v = json(&resp);
        assert_eq!((status, v["status"].as_str()), (200, Some("completed")), "{v}");
        assert_eq!(v["certificates"].as_array().unwrap().len(), 2);
        let issued = d.certificate_count("issued");
        (cms, issued)
    });
    // A replayed confirmation issues nothing.
    sc.check("a replayed confirmation issues nothing", || {
        let (status, resp) = post_confirmation(&d, &op, &number, &cms);
        assert_eq!(status, 409, "{}", String::from_utf8_lossy(&resp));
        assert_eq!(d.certificate_count("issued"), issued);
    });
    // The install link: the pair and the chain, verifying.
    let text = sc.step("the install link gives the pair and the chain", || {
        let (status, pem) = d.get(&format!("/api/v1/applications/{number}/certificates?iin={IIN}"));
        assert_eq!(status, 200);
        let text = String::from_utf8(pem).unwrap();
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 4);
        let first = text.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap();
        let leaf = work.path().join("leaf.pem");
        write(&leaf, first.as_bytes());
        assert!(openssl_verify(&d, &leaf).status.success());
        let subject = stdout(&run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-subject", "-nameopt", "utf8", "-in"])
                .arg(&leaf),
        ));
        assert!(
            subject.contains("ҚҰНАНБАЙ АБАЙ") && subject.contains("IIN850315306048"),
            "{subject}"
        );
        text
    });
    sc.check("refusals are results and a malformed request records nothing", || {
        // Refusals are results: not in the registry; names that are not the registry's.
        let (status, v) = submit(
            &d,
            &application("760101300016", "Әкімші", "Бас", "", &centre, work.path(), "b"),
        );
        assert_eq!(
            (status, v["refusal"]["code"].as_str()),
            (422, Some("registry_not_found")),
            "{v}"
        );
        assert_eq!(v["status"], "refused");
        let (status, v) = submit(&d, &application(IIN, "Басқа", "Абай", "", &centre, work.path(), "c"));
        assert_eq!(
            (status, v["refusal"]["code"].as_str()),
            (422, Some("registry_mismatch")),
            "{v}"
        );
        // A malformed request records nothing.
        let (status, v) = submit(&d, r#"{"service":"issue"}"#);
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("request_invalid")),
            "{v}"
        );
    });

    // Another operator's signature, even of this centre, does not confirm.
    sc.check("another operator's signature does not confirm", || {
        let other = add_operator(&d, "000101594515", "Ким", &centre, work.path());
        let (_, app) = submit(&d, &application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "d"));
        let number = app["number"].as_str().unwrap().to_string();
        post_identity(&d, &op, &number, r#"{"confirmed":true}"#);
        let (_, tbs) = as_operator(
            &d,
            &op,
            &format!("/api/v1/operator/applications/{number}/to-be-signed"),
            None,
        );
        let tbs_file = work.path().join("d.tbs");
        write(&tbs_file, &tbs);
        let forged = work.path().join("d.p7s");
        cms_sign(&tbs_file, &other.join("sign.crt"), &other.join("sign.key"), &forged);
        let (status, resp) = post_confirmation(&d, &op, &number, &forged);
        let v = json(&resp);
        assert_eq!(
            (status, v["refusal"]["code"].as_str()),
            (422, Some("operator_signature_invalid")),
            "{v}"
        );
        assert!(
            v["refusal"]["message"]
                .as_str()
                .unwrap()
                .contains("operator_signature_other_operator"),
            "{v}"
        );
    });

    // P2: the applicant asks for a new pair with a request signed by their current SIGN key;
    // no visit to a centre, the operator confirms.
    let (certs_now, re_number) = sc.step("P2 reissued on a request signed by the current SIGN key", || {
        let certs_now: Vec<&str> = text.split_inclusive("-----END CERTIFICATE-----\n").collect();
        let current_sign = work.path().join("current-sign.crt");
        write(&current_sign, certs_now[1].as_bytes());
        let reissue =
            application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "r").replace("\"issue\"", "\"reissue\"");
        let reissue_file = work.path().join("reissue.json");
        write(&reissue_file, reissue.as_bytes());
        let signed = work.path().join("reissue.p7s");
        cms_sign(&reissue_file, &current_sign, &work.path().join("a-sign.key"), &signed);
        let (status, body) = curl(&[
            "-H",
            "content-type: application/pkcs7-mime",
            "--data-binary",
            &format!("@{}", signed.display()),
            &format!("{}/api/v1/applications", d.public),
        ]);
        let v = json(&body);
        assert_eq!(
            (status, v["status"].as_str(), v["service"].as_str()),
            (201, Some("awaiting_confirmation"), Some("reissue")),
            "{v}"
        );
        let re_number = v["number"].as_str().unwrap().to_string();
        let cms = confirmation(&d, &op, &re_number, work.path());
        let (status, resp) = post_confirmation(&d, &op, &re_number, &cms);
        let v = json(&resp);
        assert_eq!((status, v["status"].as_str()), (200, Some("completed")), "{v}");
        assert_eq!(v["certificates"].as_array().unwrap().len(), 2);
        (certs_now, re_number)
    });
    // The superseded pair is revoked once the new one exists.
    sc.check("P2: the superseded pair is revoked", || {
        for old in [certs_now[0], certs_now[1]] {
            let f = work.path().join("old.pem");
            write(&f, old.as_bytes());
            let (_, body) = d.get(&format!("/api/v1/certificates/{}", serial_of(&f)));
            let c = json(&body);
            assert_eq!(
                (c["status"].as_str(), c["revocation_reason"].as_str()),
                (Some("revoked"), Some("superseded")),
                "{c}"
            );
        }
    });

    // P3: the applicant revokes the new pair with a request signed by its SIGN key.
    let (auth_pem, sign_pem, serials, request) = sc.step("P3: the new pair and the revocation request", || {
        let (_, new_pem) = d.get(&format!("/api/v1/applications/{re_number}/certificates?iin={IIN}"));
        let new_text = String::from_utf8(new_pem).unwrap();
        let certs: Vec<&str> = new_text.split_inclusive("-----END CERTIFICATE-----\n").collect();
        let (auth_pem, sign_pem) = (work.path().join("r-auth.crt"), work.path().join("r-sign.crt"));
        write(&auth_pem, certs[0].as_bytes());
        write(&sign_pem, certs[1].as_bytes());
        let serials = [serial_of(&auth_pem), serial_of(&sign_pem)];
        let request = work.path().join("revoke.json");
        write(
            &request,
            serde_json::json!({"service": "revoke", "applicant": {"iin": IIN}, "certificates": serials, "reason": "keyCompromise"})
                .to_string()
                .as_bytes(),
        );
        (auth_pem, sign_pem, serials, request)
    });
    let signed_with = |cert: &Path, key: &Path, out: &Path| {
        cms_sign(&request, cert, key, out);
        let (status, body) = curl(&[
            "-H",
            "content-type: application/pkcs7-mime",
            "--data-binary",
            &format!("@{}", out.display()),
            &format!("{}/api/v1/applications", d.public),
        ]);
        (status, json(&body))
    };
    // Signed with the AUTH key: not a signature in law; refused, nothing revoked.
    sc.check("P3 signed with the AUTH key is refused and revokes nothing", || {
        let (status, v) = signed_with(&auth_pem, &work.path().join("r-auth.key"), &work.path().join("r1.p7s"));
        assert_eq!(
            (status, v["refusal"]["code"].as_str()),
            (422, Some("applicant_signature_invalid")),
            "{v}"
        );
        let (_, body) = d.get(&format!("/api/v1/certificates/{}", serials[1]));
        assert_eq!(json(&body)["status"], "valid");
    });
    sc.step("P3 signed with the SIGN key completes", || {
        let (status, v) = signed_with(&sign_pem, &work.path().join("r-sign.key"), &work.path().join("r2.p7s"));
        assert_eq!((status, v["status"].as_str()), (201, Some("completed")), "{v}");
        let steps = step_names(&v);
        assert_eq!(steps, ["signed_request", "revoke"]);
    });
    sc.check("P3: both certificates revoked for keyCompromise", || {
        for serial in &serials {
            let (_, body) = d.get(&format!("/api/v1/certificates/{serial}"));
            let c = json(&body);
            assert_eq!(
                (c["status"].as_str(), c["revocation_reason"].as_str()),
                (Some("revoked"), Some("keyCompromise")),
                "{c}"
            );
        }
    });
    // Garbage is a bad request, recorded nowhere.
    sc.check("garbage is a bad request", || {
        let (status, body) = curl(&[
            "-H",
            "content-type: application/pkcs7-mime",
            "--data-binary",
            "junk",
            &format!("{}/api/v1/applications", d.public),
        ]);
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    });
    sc.finish();
}

#[test]
fn p5_revokes_at_a_service_centre_after_identity_and_the_operators_confirmation() {
    let (d, centre, work) = running();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let (_, _, serial) = d.issue_individual(work.path(), "citizen", IIN, "ec:P-256");
    let (_, _, strangers) = d.issue_individual(work.path(), "stranger", "000101594515", "ec:P-256");

    let file = |certs: &[&str]| {
        serde_json::json!({"service": "revoke", "applicant": {"iin": IIN}, "certificates": certs, "reason": "cessationOfOperation"})
            .to_string()
    };
    // Someone else's certificate cannot be named.
    let (status, _) = as_operator(
        &d,
        &op,
        "/api/v1/operator/applications",
        Some(("content-type: application/json", &file(&[&strangers]))),
    );
    assert_eq!(status, 400);
    let (status, body) = as_operator(
        &d,
        &op,
        "/api/v1/operator/applications",
        Some(("content-type: application/json", &file(&[&serial]))),
    );
    let v = json(&body);
    assert_eq!(
        (status, v["status"].as_str(), v["channel"].as_str()),
        (201, Some("awaiting_documents"), Some("service_centre")),
        "{v}"
    );
    let number = v["number"].as_str().unwrap().to_string();

    let (status, body) = post_identity(&d, &op, &number, r#"{"confirmed":true,"documents":["identity card"]}"#);
    assert_eq!(
        (status, json(&body)["status"].as_str()),
        (200, Some("awaiting_confirmation"))
    );
    let (_, tbs) = as_operator(
        &d,
        &op,
        &format!("/api/v1/operator/applications/{number}/to-be-signed"),
        None,
    );
    assert!(
        String::from_utf8_lossy(&tbs).contains("decision: revoke"),
        "{}",
        String::from_utf8_lossy(&tbs)
    );
    let cms = confirmation(&d, &op, &number, work.path());
    let (status, resp) = post_confirmation(&d, &op, &number, &cms);
    let v = json(&resp);
    assert_eq!((status, v["status"].as_str()), (200, Some("completed")), "{v}");
    let steps = step_names(&v);
    assert_eq!(
        steps,
        ["identity", "confirmation", "operator_signature_check", "revoke"],
        "{v}"
    );
    assert_eq!(v["steps"][3]["deadline_seconds"], 172800);
    let (_, body) = d.get(&format!("/api/v1/certificates/{serial}"));
    let c = json(&body);
    assert_eq!(
        (c["status"].as_str(), c["revocation_reason"].as_str()),
        (Some("revoked"), Some("cessationOfOperation")),
        "{c}"
    );
    let (_, body) = d.get(&format!("/api/v1/certificates/{strangers}"));
    assert_eq!(json(&body)["status"], "valid");
    // Naming none means all of the applicant's certificates in force: here there are none left.
    let (status, body) = as_operator(
        &d,
        &op,
        "/api/v1/operator/applications",
        Some(("content-type: application/json", &file(&[]))),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("no certificate in force"));
}

#[test]
fn p4_issues_onto_an_id_card_from_the_csrs_made_on_it() {
    let (d, centre, work) = running();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let filing =
        serde_json::json!({"service": "issue", "applicant": {"iin": IIN, "surname": "Құнанбай", "name": "Абай"}})
            .to_string();
    let (status, body) = as_operator(
        &d,
        &op,
        "/api/v1/operator/applications",
        Some(("content-type: application/json", &filing)),
    );
    let v = json(&body);
    assert_eq!(
        (status, v["status"].as_str(), v["channel"].as_str()),
        (201, Some("awaiting_documents"), Some("service_centre")),
        "{v}"
    );
    let number = v["number"].as_str().unwrap().to_string();
    let steps = step_names(&v);
    assert_eq!(steps, ["identity", "request", "registry_check", "card_keys"], "{v}");

    // The CSRs made on the card (here by openssl: the station issue does it on a token).
    let (_, auth) = openssl_csr(work.path(), "card-auth", "rsa:2048");
    let (_, sign) = openssl_csr(work.path(), "card-sign", "rsa:2048");
    let (_, weak) = openssl_csr(work.path(), "card-weak", "rsa:1024");
    let pair = |a: &PathBuf, s: &PathBuf| {
        serde_json::json!({"auth": std::fs::read_to_string(a).unwrap(), "sign": std::fs::read_to_string(s).unwrap()})
            .to_string()
    };
    let path = format!("/api/v1/operator/applications/{number}/requests");
    let (status, _) = as_operator(
        &d,
        &op,
        &path,
        Some(("content-type: application/json", &pair(&auth, &weak))),
    );
    assert_eq!(status, 400, "a weak key is refused and changes nothing");
    let (status, body) = as_operator(
        &d,
        &op,
        &path,
        Some(("content-type: application/json", &pair(&auth, &sign))),
    );
    let v = json(&body);
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("awaiting_confirmation")),
        "{v}"
    );

    let cms = confirmation(&d, &op, &number, work.path());
    let (status, resp) = post_confirmation(&d, &op, &number, &cms);
    let v = json(&resp);
    // Issued, and issuing until the certificates are on the card.
    assert_eq!((status, v["status"].as_str()), (200, Some("issuing")), "{v}");
    let steps = step_names(&v);
    assert_eq!(
        steps,
        [
            "identity",
            "request",
            "registry_check",
            "card_keys",
            "register",
            "confirmation",
            "operator_signature_check",
            "write_card"
        ],
        "{v}"
    );
    assert!(v["steps"][7]["finished_at"].is_null(), "{v}");
    let serials = v["certificates"].clone();
    let (status, pem) = as_operator(
        &d,
        &op,
        &format!("/api/v1/operator/applications/{number}/certificates"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(pem).unwrap().matches("BEGIN CERTIFICATE").count(), 4);

    // The station wrote them onto the card: only the application's own pair completes it.
    let card = format!("/api/v1/operator/applications/{number}/card");
    let wrong = serde_json::json!({"auth": serials[1], "sign": serials[0]}).to_string();
    let (status, _) = as_operator(&d, &op, &card, Some(("content-type: application/json", &wrong)));
    assert_eq!(status, 400);
    let written = serde_json::json!({"auth": serials[0], "sign": serials[1]}).to_string();
    let (status, body) = as_operator(&d, &op, &card, Some(("content-type: application/json", &written)));
    let v = json(&body);
    assert_eq!((status, v["status"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(v["steps"][7]["outcome"], "written", "{v}");
    let (status, pem) = d.get(&format!("/api/v1/applications/{number}/certificates?iin={IIN}"));
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(pem).unwrap().matches("BEGIN CERTIFICATE").count(), 4);
}

#[test]
fn a_legal_entitys_employee_gets_the_legal_profiles_with_organisation_and_role() {
    let (d, centre, work) = running();
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let mut request: serde_json::Value = serde_json::from_str(&application(
        IIN,
        "Құнанбай",
        "Абай",
        "Құнанбайұлы",
        &centre,
        work.path(),
        "l",
    ))
    .unwrap();
    request["organization"] = serde_json::json!({"bin": BIN, "name": "ТОО «Дала Технолоджис»", "role": "first-head"});
    let (status, app) = submit(&d, &request.to_string());
    assert_eq!(status, 201, "{app}");
    let number = app["number"].as_str().unwrap().to_string();
    post_identity(
        &d,
        &op,
        &number,
        r#"{"confirmed":true,"documents":["identity card","power of attorney"]}"#,
    );
    let cms = confirmation(&d, &op, &number, work.path());
    let (status, resp) = post_confirmation(&d, &op, &number, &cms);
    assert_eq!((status, json(&resp)["status"].as_str()), (200, Some("completed")));
    let (_, pem) = d.get(&format!("/api/v1/applications/{number}/certificates?iin={IIN}"));
    let text = String::from_utf8(pem).unwrap();
    for (i, policy) in [(0, "1.2.398.3.3.2.2"), (1, "1.2.398.3.3.2.1")] {
        let cert = text.split_inclusive("-----END CERTIFICATE-----\n").nth(i).unwrap();
        let f = work.path().join(format!("legal-{i}.pem"));
        write(&f, cert.as_bytes());
        let shown = stdout(&run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-text", "-nameopt", "utf8", "-in"])
                .arg(&f),
        ));
        assert!(
            shown.contains("O=ТОО «Дала Технолоджис»") || shown.contains("O = ТОО «Дала Технолоджис»"),
            "{shown}"
        );
        assert!(shown.contains("BIN150540041064"), "{shown}");
        assert!(
            shown.contains("1.2.398.3.3.4.1.2.1") && shown.contains(policy),
            "{shown}"
        );
    }

    // A bad BIN is a malformed request: nothing recorded.
    request["organization"]["bin"] = serde_json::json!("150540041065");
    let (status, v) = submit(&d, &request.to_string());
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("request_invalid")),
        "{v}"
    );
}
