//! P4 at the workstation (`nca station enroll`): the application filed for the applicant in
//! front of the operator, the applicant's PIN, the AUTH and SIGN key pairs made on the ID card,
//! their requests, the operator's confirmation signed on the operator's token, the certificates
//! written onto the card and read back, the service told.
//!
//! Every step can be interrupted (the card pulled out, the network gone) and the same command
//! run again: the application says how far it got, the card's key labels name the application,
//! so a rerun picks up where the last one stopped and never makes a second pair. Keys made by a
//! run that failed before their requests were sent are removed again, so the card is as it was.

use std::path::PathBuf;
use std::sync::Arc;

use cryptoki::types::AuthPin;
use serde_json::{Value, json};
use x509_cert::Certificate;

use super::card::{self, Card, CardError, Usage};
use super::client::{Server, ServerError};
use super::{OperatorToken, StationError, blocking, sign_cms};
use crate::keys::KeyAlgorithm;
use crate::pki::normalise_serial;

/// The applicant as the operator types them; names left out are filled by the service from
/// the state database.
#[derive(Debug, Clone)]
pub struct Applicant {
    pub iin: String,
    pub surname: Option<String>,
    pub name: Option<String>,
    pub patronymic: Option<String>,
    pub email: Option<String>,
}

/// What `nca station enroll` was asked to do.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The operator listener, `https://host:port`.
    pub server: String,
    /// CA certificates (PEM) that the server's TLS certificate chains to.
    pub ca_file: PathBuf,
    /// The PKCS#11 module of the operator's token and the card.
    pub module: PathBuf,
    pub operator_token: String,
    pub card_token: String,
    pub applicant: Applicant,
    pub key_algorithm: KeyAlgorithm,
    /// An application to resume; without it, an open one whose keys are on the card, or a new one.
    pub application: Option<String>,
}

/// What the enrolment made.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub application: String,
    pub auth_serial: String,
    pub sign_serial: String,
    pub subject: String,
}

/// Statuses of an application that an enrolment can go on from.
const OPEN: [&str; 3] = ["awaiting_documents", "awaiting_confirmation", "issuing"];

/// `NCA_STATION_STOP_AFTER=card_keys|requests|confirmation` stops the enrolment after that
/// step, as a card pulled out there would: the tests of resumption use it.
fn stop_after(step: &'static str, number: &str) -> Result<(), StationError> {
    if std::env::var("NCA_STATION_STOP_AFTER").is_ok_and(|v| v == step) {
        return Err(StationError::Stopped {
            step,
            number: number.to_string(),
        });
    }
    Ok(())
}

/// Runs P4 for the applicant. `announce` hears the application number as soon as it is known,
/// so that an operator whose enrolment breaks off knows what to resume.
pub async fn enroll(e: Enrolment, pin: AuthPin, announce: impl FnOnce(&str)) -> Result<Enrolled, StationError> {
    let operator = blocking(|| OperatorToken::open(e.module.clone(), &e.operator_token))?;
    // The PIN is tried before anything is filed or made: a wrong one leaves no trace anywhere.
    let card = blocking(|| Card::open(&e.module, &e.card_token, &pin))?;
    drop(pin);
    let server = Server::new(
        &e.server,
        &e.ca_file,
        Arc::clone(&operator.auth),
        operator.auth_cert.clone(),
    )?;
    let iin = e.applicant.iin.as_str();

    let mut view = match &e.application {
        Some(n) => application(&server, n, iin)
            .await?
            .ok_or_else(|| StationError::NoApplication {
                number: n.clone(),
                iin: iin.to_string(),
            })?,
        None => match resumable(&server, &card, iin).await? {
            Some(v) => v,
            None => file(&server, &e.applicant).await?,
        },
    };
    let number = text(&view, "number")?;
    announce(&number);
    tracing::info!("enrolment: application=[{number}] status=[{}]", text(&view, "status")?);
    refused(&view)?;

    let mut requests: Option<(String, String)> = None;
    if text(&view, "status")? == "awaiting_documents" {
        let (v, pair) = make_requests(&server, &card, &number, iin, e.key_algorithm).await?;
        view = v;
        requests = Some(pair);
        stop_after("requests", &number)?;
    }
    if text(&view, "status")? == "awaiting_confirmation" {
        // The keys behind the requests must be on this card before the operator confirms them.
        for usage in [Usage::Auth, Usage::Sign] {
            blocking(|| card.key_of(usage, &number))?.ok_or_else(|| CardError::KeysMissing(number.clone()))?;
        }
        view = confirm(&server, &operator, &number, iin, requests.as_ref()).await?;
        stop_after("confirmation", &number)?;
    }
    let status = text(&view, "status")?;
    if status != "issuing" && status != "completed" {
        return Err(StationError::Mismatch(format!(
            "application {number} is {status}: nothing to write onto the card"
        )));
    }
    let (auth_serial, sign_serial, subject) = write_pair(&server, &card, &view, &number, iin).await?;
    if status == "issuing" {
        let path = format!("/api/v1/operator/applications/{number}/card");
        let reply = server
            .post_json(&path, &json!({"auth": auth_serial, "sign": sign_serial}))
            .await?;
        if reply.status != 200 {
            return Err(reply.error().into());
        }
    }
    tracing::info!("enrolment done: application=[{number}] auth=[{auth_serial}] sign=[{sign_serial}]");
    Ok(Enrolled {
        application: number,
        auth_serial,
        sign_serial,
        subject,
    })
}

fn text(v: &Value, field: &str) -> Result<String, StationError> {
    v[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| StationError::Mismatch(format!("the service's answer has no {field}: {v}")))
}

/// A refused application stops the enrolment with the refusal's reason.
fn refused(v: &Value) -> Result<(), StationError> {
    if v["status"] == "refused" {
        return Err(StationError::Refused {
            number: v["number"].as_str().unwrap_or("").to_string(),
            code: v["refusal"]["code"].as_str().unwrap_or("").to_string(),
            message: v["refusal"]["message"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(())
}

/// The application `n` when it is the applicant's at this operator's centre.
async fn application(server: &Server, n: &str, iin: &str) -> Result<Option<Value>, StationError> {
    // Checked here, check character included: a number misread off a printed application
    // fails before it reaches the service.
    let n = crate::ids::number::parse(n)
        .ok_or_else(|| StationError::Invalid(format!("{n:?} is not an application number")))?;
    if !iin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StationError::Invalid(format!("{iin:?} is not an IIN")));
    }
    let path = format!("/api/v1/operator/applications/{n}?iin={iin}");
    let reply = server.get(&path).await?;
    match reply.status {
        200 => Ok(Some(reply.json(&path)?)),
        404 => Ok(None),
        _ => Err(reply.error().into()),
    }
}

/// An open P4 application of the applicant whose keys are already on the card: an earlier
/// enrolment that broke off.
async fn resumable(server: &Server, card: &Card, iin: &str) -> Result<Option<Value>, StationError> {
    for n in blocking(|| card.applications())? {
        // Keys labelled by something else than an application number are not ours to resume.
        if crate::ids::number::parse(&n).is_none() {
            continue;
        }
        if let Some(v) = application(server, &n, iin).await?
            && v["service"] == "issue"
            && v["channel"] == "service_centre"
            && v["status"].as_str().is_some_and(|s| OPEN.contains(&s))
        {
            tracing::info!("enrolment: resuming application=[{n}] whose keys are on the card");
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// P4 steps 3–5: the operator files the request; the service asks the state database.
async fn file(server: &Server, a: &Applicant) -> Result<Value, StationError> {
    let path = "/api/v1/operator/applications";
    let filing = json!({
        "service": "issue",
        "applicant": {"iin": a.iin, "surname": a.surname, "name": a.name, "patronymic": a.patronymic, "email": a.email},
        "storage": "id_card",
    });
    let reply = server.post_json(path, &filing).await?;
    match reply.status {
        201 | 422 => {
            let v = reply.json(path)?;
            refused(&v)?;
            Ok(v)
        }
        _ => Err(reply.error().into()),
    }
}

/// P4 step 6: the key pairs on the card (made now, or found from an earlier run) and their
/// requests sent. Keys this run made are removed again when the requests are not sent or the
/// service turns them down; once they may have reached the service, they stay for a rerun.
async fn make_requests(
    server: &Server,
    card: &Card,
    number: &str,
    iin: &str,
    alg: KeyAlgorithm,
) -> Result<(Value, (String, String)), StationError> {
    let mut made = Vec::new();
    let result = async {
        let mut labels = Vec::new();
        for usage in [Usage::Auth, Usage::Sign] {
            let label = match blocking(|| card.key_of(usage, number))? {
                Some(l) => l,
                None => {
                    let l = blocking(|| card.generate(usage, number, alg))?;
                    made.push(l.clone());
                    l
                }
            };
            labels.push(label);
        }
        tracing::info!(
            "enrolment: keys on the card: made=[{}] reused=[{}]",
            made.len(),
            2 - made.len()
        );
        stop_after("card_keys", number)?;
        let auth = blocking(|| {
            card.key(&labels[0])
                .map_err(StationError::from)
                .and_then(|k| card::request(k.as_ref(), iin))
        })?;
        let sign = blocking(|| {
            card.key(&labels[1])
                .map_err(StationError::from)
                .and_then(|k| card::request(k.as_ref(), iin))
        })?;
        Ok::<_, StationError>((auth, sign))
    }
    .await;
    let (auth, sign) = match result {
        Ok(pair) => pair,
        Err(e @ StationError::Stopped { .. }) => return Err(e),
        Err(e) => {
            undo(card, &made);
            return Err(e);
        }
    };
    let path = format!("/api/v1/operator/applications/{number}/requests");
    let reply = server.post_json(&path, &json!({"auth": auth, "sign": sign})).await;
    match reply {
        Ok(r) if r.status == 200 => Ok((r.json(&path)?, (auth, sign))),
        // The service looked at the requests and changed nothing: the keys go.
        Ok(r) if r.status == 400 => {
            undo(card, &made);
            Err(r.error().into())
        }
        Ok(r) => Err(r.error().into()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the key pairs this run made; a card that is gone keeps them, and a rerun reuses them.
fn undo(card: &Card, made: &[String]) {
    for label in made {
        if let Err(e) = blocking(|| card.destroy(label)) {
            tracing::warn!("enrolment: could not remove key {label} made by this run: {e}");
        }
    }
}

/// P4 step 8: the operator signs the to-be-signed document on their token, after checking it
/// is this application's, for this applicant, and (when this run sent them) these requests.
async fn confirm(
    server: &Server,
    operator: &OperatorToken,
    number: &str,
    iin: &str,
    requests: Option<&(String, String)>,
) -> Result<Value, StationError> {
    let path = format!("/api/v1/operator/applications/{number}/to-be-signed");
    let reply = server.get(&path).await?;
    if reply.status != 200 {
        return Err(reply.error().into());
    }
    let tbs = reply.body.to_vec();
    let doc = String::from_utf8_lossy(&tbs);
    let sha = |s: &str| hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()));
    let mut expected = vec![
        format!("application: {number}"),
        format!("applicant: IIN{iin}"),
        "decision: issue".to_string(),
    ];
    if let Some((auth, sign)) = requests {
        expected.push(format!("auth-request-sha256: {}", sha(auth)));
        expected.push(format!("sign-request-sha256: {}", sha(sign)));
    }
    if let Some(missing) = expected.iter().find(|l| !doc.lines().any(|d| d == l.as_str())) {
        return Err(StationError::Mismatch(format!(
            "the document to sign for application {number} lacks {missing:?}: not signed"
        )));
    }
    let signed = blocking(|| sign_cms(operator.sign.as_ref(), &operator.sign_cert, &tbs))?;
    let path = format!("/api/v1/operator/applications/{number}/confirmation");
    let reply = server
        .send(hyper::Method::POST, &path, Some(("application/pkcs7-mime", signed)))
        .await?;
    match reply.status {
        200 | 422 => {
            let v = reply.json(&path)?;
            refused(&v)?;
            Ok(v)
        }
        _ => Err(reply.error().into()),
    }
}

/// P4 step 10: the issued pair onto the card beside its keys, each read back and checked.
/// Returns the AUTH and SIGN serials and the subject.
async fn write_pair(
    server: &Server,
    card: &Card,
    view: &Value,
    number: &str,
    iin: &str,
) -> Result<(String, String, String), StationError> {
    let serials: Vec<String> = view["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().and_then(normalise_serial))
        .collect();
    let [auth_serial, sign_serial] = <[String; 2]>::try_from(serials)
        .map_err(|_| StationError::Mismatch(format!("application {number} names no issued pair")))?;
    let path = format!("/api/v1/operator/applications/{number}/certificates");
    let reply = server.get(&path).await?;
    if reply.status != 200 {
        return Err(reply.error().into());
    }
    let chain = Certificate::load_pem_chain(&reply.body).map_err(|e| ServerError::Body {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut subject = String::new();
    for (usage, serial) in [(Usage::Auth, &auth_serial), (Usage::Sign, &sign_serial)] {
        let cert = chain
            .iter()
            .find(|c| {
                normalise_serial(&hex::encode(c.tbs_certificate.serial_number.as_bytes())).as_ref() == Some(serial)
            })
            .ok_or_else(|| StationError::Mismatch(format!("certificate {serial} is not in the answer")))?;
        let shown = crate::pki::subject::display(&cert.tbs_certificate.subject);
        let holder = format!("SERIALNUMBER=IIN{iin}");
        if !shown.split(", ").any(|part| part == holder) {
            return Err(StationError::Mismatch(format!(
                "certificate {serial} is not the applicant's (subject {shown})"
            )));
        }
        let der = der::Encode::to_der(cert)?;
        let label =
            blocking(|| card.key_of(usage, number))?.ok_or_else(|| CardError::KeysMissing(number.to_string()))?;
        blocking(|| card.write_certificate(&label, &der))?;
        if usage == Usage::Auth {
            subject = shown;
        }
    }
    Ok((auth_serial, sign_serial, subject))
}
