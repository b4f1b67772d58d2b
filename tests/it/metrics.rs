//! `/metrics` counts what the CA signs, wherever the request came from: the counter is
//! incremented where the signature is made (`pki::issue`), so the citizen's certificates issued
//! by the workflow count as the administrator's do, each once.

use std::path::{Path, PathBuf};

use crate::harness::*;
use crate::presign::{ocsp_request, until_kept};
use crate::workflow::{
    add_operator, application, confirmation, json, post_confirmation, post_identity, running, submit,
};

/// The value of the counter `name` in the service's `/metrics`.
fn counter(d: &Deployment, name: &str) -> u64 {
    value(d, name) as u64
}

/// An administrator's issuance of an individual-sign certificate for a new key of `kind`;
/// returns the request's file and the certificate's.
fn admin_issue(d: &Deployment, work: &Path, name: &str, kind: &str) -> (PathBuf, PathBuf) {
    let (_, csr) = openssl_csr(work, name, kind);
    let body = format!(
        r#"{{"profile":"individual-sign","csr":{},"iin":"{IIN}","surname":"Құнанбай","name":"Абай"}}"#,
        js(&std::fs::read_to_string(&csr).unwrap())
    );
    let (status, pem) = d.admin_post("/api/v1/admin/certificates", &body);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&pem));
    let cert = work.join(format!("{name}.pem"));
    std::fs::write(&cert, &pem).unwrap();
    (csr, cert)
}

/// Issues a certificate as [`admin_issue`] does and waits until the OCSP pre-signer has kept its
/// answer: the pre-signer's write goes through the same writer, a quarter second or so after the
/// certificate's.
fn admin_issue_and_presign(d: &Deployment, work: &Path, name: &str) {
    let (_, cert) = admin_issue(d, work, name, "ec:P-256");
    let req = ocsp_request(d, work, &cert, false);
    until_kept(&d.public, &req, 86_400);
}

#[test]
fn the_issued_count_includes_the_citizens_certificates_and_each_certificate_once() {
    let (d, centre, work) = running();
    // Added by `nca operator add`, another process: not this server's signatures.
    let op = add_operator(&d, "920708497088", "Сейітқали", &centre, work.path());
    let before = counter(&d, "nca_certificates_issued_total");
    let refused_before = counter(&d, "nca_issuance_refused_total");

    // P1 through the portal and the operator: the workflow issues the pair.
    let (status, app) = submit(
        &d,
        &application(IIN, "құнанбай", "Абай", "Құнанбайұлы", &centre, work.path(), "m"),
    );
    assert_eq!(status, 201, "{app}");
    let number = app["number"].as_str().unwrap().to_string();
    let (status, body) = post_identity(&d, &op, &number, r#"{"confirmed":true,"documents":["identity card"]}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let cms = confirmation(&d, &op, &number, work.path());
    let (status, resp) = post_confirmation(&d, &op, &number, &cms);
    let v = json(&resp);
    assert_eq!((status, v["status"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(
        counter(&d, "nca_certificates_issued_total"),
        before + 2,
        "the citizen's AUTH and SIGN certificates are counted"
    );

    // The administrator's issuance counts once (no second count at the HTTP layer), and a
    // refused request counts as refused, not issued.
    let (csr, _) = admin_issue(&d, work.path(), "admin-issued", "rsa:2048");
    assert_eq!(counter(&d, "nca_certificates_issued_total"), before + 3);
    let bad = format!(
        r#"{{"profile":"no-such-profile","csr":{},"iin":"{IIN}","surname":"Құнанбай","name":"Абай"}}"#,
        js(&std::fs::read_to_string(&csr).unwrap())
    );
    let (status, body) = d.admin_post("/api/v1/admin/certificates", &bad);
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("unknown_profile"));
    assert_eq!(counter(&d, "nca_certificates_issued_total"), before + 3);
    assert_eq!(counter(&d, "nca_issuance_refused_total"), refused_before + 1);
}

/// The value of the series `series` (a name, with its labels if it has any) in the service's
/// `/metrics`.
fn value(d: &Deployment, series: &str) -> f64 {
    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Each writer's histogram, in the order of its buckets, `+Inf` last.
fn buckets(d: &Deployment, writer: &str) -> Vec<u64> {
    let (_, body) = d.get("/metrics");
    let text = String::from_utf8(body).unwrap();
    let prefix = format!("nca_store_group_commit_operations_bucket{{writer=\"{writer}\",le=");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_group_commit_writer_shows_what_it_committed_operation_by_operation() {
    let (d, centre, work) = running();
    // A first certificate and its kept answer: the pre-signer's first full round is behind us,
    // and it writes nothing more until something changes.
    admin_issue_and_presign(&d, work.path(), "first");
    let sum = || value(&d, "nca_store_group_commit_operations_sum{writer=\"group\"}");
    let count = || value(&d, "nca_store_group_commit_operations_count{writer=\"group\"}");
    let busy = || value(&d, "nca_store_group_commit_busy_seconds_total{writer=\"group\"}");
    let (ops, commits, ones, busy_before) = (sum(), count(), buckets(&d, "group")[0], busy());

    // One certificate, nothing else at the same moment: its pending row, its issued row and the
    // pre-signer's answer for it, each a transaction of one operation.
    admin_issue_and_presign(&d, work.path(), "second");
    assert_eq!(sum(), ops + 3.0, "record pending, record issued, keep its OCSP answer");
    assert_eq!(count(), commits + 3.0);
    assert_eq!(buckets(&d, "group")[0], ones + 3, "three batches of one");
    assert!(busy() > busy_before, "the writer's time in its transactions is counted");
    value(&d, "nca_store_group_commit_wait_seconds_total{writer=\"group\"}");
    let parts = value(&d, "nca_store_group_commit_begin_seconds_total{writer=\"group\"}")
        + value(&d, "nca_store_group_commit_commit_seconds_total{writer=\"group\"}");
    assert!(
        parts > 0.0 && parts <= busy(),
        "BEGIN and COMMIT are parts of the time inside: {parts}"
    );

    // A new application goes through the same writer, as one operation; so do the mail worker's
    // claim of the letter it sends the applicant and the record of its delivery (with the next
    // claim), which used to be transactions of their own beside the writer.
    let (status, app) = submit(
        &d,
        &application(IIN, "құнанбай", "Абай", "Құнанбайұлы", &centre, work.path(), "g"),
    );
    assert_eq!(status, 201, "{app}");
    eventually(20, "the letter recorded delivered", || {
        let v = json(&d.admin_get("/api/v1/admin/monitoring").1);
        v["mail"]["delivered"].as_i64().filter(|n| *n == 1)
    });
    eventually(
        5,
        "the submission, the claim and the delivery's record in the writer",
        || (sum() == ops + 6.0).then_some(()),
    );

    // The histogram is cumulative, its +Inf bucket is the count, and nothing failed.
    let b = buckets(&d, "group");
    assert_eq!(b.len(), nca::store::BATCH_BUCKETS.len() + 1, "{b:?}");
    assert!(b.windows(2).all(|p| p[0] <= p[1]), "{b:?}");
    assert_eq!(*b.last().unwrap() as f64, count());
    assert_eq!(
        value(&d, "nca_store_group_commit_failures_total{writer=\"group\"}"),
        0.0
    );
}
