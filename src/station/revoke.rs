//! P5 at the workstation (`nca station revoke`): the operator files the revocation for the
//! applicant in front of them, records the identity check and the documents, and confirms with
//! their SIGN key on their token. The service revokes at once; OCSP answers so immediately.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::client::Server;
use super::{OperatorToken, StationError, blocking, sign_cms};

/// What `nca station revoke` was asked to do.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub server: String,
    pub ca_file: PathBuf,
    pub module: PathBuf,
    pub operator_token: String,
    pub iin: String,
    /// The applicant's certificates to revoke; none means all of theirs in force.
    pub serials: Vec<String>,
    /// RFC 5280 reason name.
    pub reason: String,
    /// The documents the operator checked (condition 1 of P5).
    pub documents: Vec<String>,
}

/// What was revoked.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub application: String,
    pub serials: Vec<String>,
}

/// Runs P5 for the applicant: filing, identity, confirmation, revocation.
pub async fn revoke(r: Revocation) -> Result<Revoked, StationError> {
    let operator = blocking(|| OperatorToken::open(r.module.clone(), &r.operator_token))?;
    let server = Server::new(
        &r.server,
        &r.ca_file,
        Arc::clone(&operator.auth),
        operator.auth_cert.clone(),
    )?;

    let path = "/api/v1/operator/applications";
    let filing =
        json!({"service": "revoke", "applicant": {"iin": r.iin}, "certificates": r.serials, "reason": r.reason});
    let view = answer(&server.post_json(path, &filing).await?, path, &[201, 422])?;
    let number = view["number"].as_str().unwrap_or_default().to_string();
    tracing::info!("revocation: application=[{number}] filed");

    let path = format!("/api/v1/operator/applications/{number}/identity");
    let identity = json!({"confirmed": true, "documents": r.documents});
    answer(&server.post_json(&path, &identity).await?, &path, &[200, 422])?;

    let path = format!("/api/v1/operator/applications/{number}/to-be-signed");
    let reply = server.get(&path).await?;
    if reply.status != 200 {
        return Err(reply.error().into());
    }
    let tbs = reply.body.to_vec();
    let doc = String::from_utf8_lossy(&tbs).into_owned();
    // The operator's signature revokes: it goes only on this application's revocation document.
    for line in [
        format!("application: {number}"),
        format!("applicant: IIN{}", r.iin),
        "decision: revoke".to_string(),
    ] {
        if !doc.lines().any(|l| l == line) {
            return Err(StationError::Mismatch(format!(
                "the document to sign for application {number} lacks {line:?}: not signed"
            )));
        }
    }
    let serials: Vec<String> = doc
        .lines()
        .find_map(|l| l.strip_prefix("certificates: "))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let signed = blocking(|| sign_cms(operator.sign.as_ref(), &operator.sign_cert, &tbs))?;
    let path = format!("/api/v1/operator/applications/{number}/confirmation");
    let reply = server
        .send(hyper::Method::POST, &path, Some(("application/pkcs7-mime", signed)))
        .await?;
    let done = answer(&reply, &path, &[200, 422])?;
    if done["status"] != "completed" {
        return Err(StationError::Mismatch(format!(
            "application {number} is {} after the confirmation",
            done["status"]
        )));
    }
    tracing::info!(target: "audit", "revocation: application=[{number}] serials=[{}]", serials.join(" "));
    Ok(Revoked {
        application: number,
        serials,
    })
}

/// The application from an answer with one of the `ok` statuses; a refusal is an error that
/// says why.
fn answer(reply: &super::client::Reply, path: &str, ok: &[u16]) -> Result<Value, StationError> {
    if !ok.contains(&reply.status) {
        return Err(reply.error().into());
    }
    let v = reply.json(path)?;
    if v["status"] == "refused" {
        return Err(StationError::Refused {
            number: v["number"].as_str().unwrap_or("").to_string(),
            code: v["refusal"]["code"].as_str().unwrap_or("").to_string(),
            message: v["refusal"]["message"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(v)
}
