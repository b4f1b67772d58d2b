//! OCSP answers signed ahead (issue #16): a signed no-nonce answer for every certificate of the
//! issuing CA still answered for, kept in the database (`ocsp_answers`), so that every instance,
//! a status instance on a replica included, serves a no-nonce request with one read and no
//! signature.
//!
//! Which certificates: every issued certificate of the issuing CA until `[ocsp]
//! presign_grace_days` after its notAfter, good or revoked (a revoked certificate keeps its
//! `revoked` answer as long as it would otherwise be answered `good`, and a week past expiry a
//! relying party checking a signature made just before it still gets an answer). CertIDs are
//! SHA-1 (RFC 5019 §2.1.1, what `openssl ocsp` and browsers send); a SHA-256 CertID, several
//! CertIDs or a nonce are answered live, signed, as before.
//!
//! Two passes, both idempotent and safe to run on every instance at once (the store keeps the
//! answer whose status was read last, `as_of_ms`):
//! - [`round`]: answers missing or due for renewal (less than `presign_renew_before_seconds`
//!   before nextUpdate), in pages of `presign_batch` certificates by serial, each page signed
//!   with `presign_concurrency` signatures in flight and written in one transaction; and the
//!   answers of certificates past the grace period dropped.
//! - [`changes`]: what changed since a watermark (a revocation or hold recorded, a hold lifted,
//!   a scheduled revocation come into effect, a certificate issued), signed anew only where the
//!   kept answer says otherwise. [`run`] calls it every quarter second and at once when this
//!   instance revoked ([`Ca::ocsp_changed`]): a revocation through any instance is in the kept
//!   answer within a second.

use std::sync::Arc;
use std::time::Duration;

use der::Encode;
use der::asn1::{Null, OctetString};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspResponse, ResponderId, ResponseData, RevokedInfo, SingleResponse,
};

use super::{Answer, Freshness, OcspError, SHA1, Status, digest, gtime, reason, status_of};
use crate::pki::Ca;
use crate::store::{DueAnswer, PresignedAnswer, Store, now};

/// How often [`run`] looks for changes without being told.
pub const CHANGES_EVERY: Duration = Duration::from_millis(250);

/// How far back each look for changes reaches past the previous one: a revocation's
/// `recorded_at` is taken before its transaction commits, so a commit that lands after a look
/// may carry a second that look already passed.
const LOOKBACK: i64 = 5;

/// A new certificate is looked for among those created this long ago (a pending certificate
/// waits for its signature at most that long in practice); older ones wait for the next round.
const NEW_WITHIN: i64 = 900;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Answers signed.
    pub signed: u64,
    /// Rows written (an answer a newer one had overtaken is not).
    pub written: u64,
    /// Answers dropped, their certificates past the grace period.
    pub pruned: u64,
    /// Pages read.
    pub batches: u64,
}

impl std::ops::AddAssign for RoundReport {
    fn add_assign(&mut self, o: RoundReport) {
        self.signed += o.signed;
        self.written += o.written;
        self.pruned += o.pruned;
        self.batches += o.batches;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn state_key(s: Status) -> String {
    match s {
        Status::Revoked { at, reason } => format!("revoked {at} {reason}"),
        Status::Good | Status::Unknown => "good".into(),
    }
}

/// The earliest notAfter still answered for at `t`.
fn answered_after(ca: &Ca, t: i64) -> i64 {
    t - ca.config.ocsp.presign_grace_days * 86_400
}

/// The CertID a relying party's SHA-1 request carries for `serial` (parameters NULL, as
/// `openssl ocsp` writes them).
fn cert_id(hashes: &(Vec<u8>, Vec<u8>), serial: &str) -> Result<CertId, der::Error> {
    let bytes = hex::decode(serial).map_err(|_| der::Error::from(der::ErrorKind::Value { tag: der::Tag::Integer }))?;
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(hashes.0.clone())?,
        issuer_key_hash: OctetString::new(hashes.1.clone())?,
        serial_number: SerialNumber::new(&bytes)?,
    })
}

/// Signs the answers of `due` at `t`, `concurrency` signatures in flight (each a blocking task
/// that builds and signs its share in turn), and keeps them in `store`.
async fn sign_and_keep(
    ca: &Ca,
    store: &Store,
    due: Vec<DueAnswer>,
    as_of_ms: i64,
    t: i64,
) -> Result<RoundReport, OcspError> {
    let (Some(responder), Some(delegated)) = (&ca.responder, &ca.ocsp) else {
        return Err(OcspError::NoResponder);
    };
    if due.is_empty() {
        return Ok(RoundReport::default());
    }
    let validity = ca.config.ocsp.presign_validity_seconds;
    let shares = ca.config.ocsp.presign_concurrency.max(1);
    let per = due.len().div_ceil(shares);
    let hashes = Arc::new(responder.hashes.sha1.clone());
    let responder_id = responder.responder_key_hash.clone();
    let cert = Arc::new(<Certificate as der::Decode>::from_der(&delegated.cert_der)?);
    let issuer = ca.issuing.id.clone();
    let mut tasks = tokio::task::JoinSet::new();
    let mut due = due;
    while !due.is_empty() {
        let share: Vec<DueAnswer> = due.drain(..per.min(due.len())).collect();
        let signer = Arc::clone(&delegated.signer);
        let (hashes, cert, responder_id, issuer) = (
            Arc::clone(&hashes),
            Arc::clone(&cert),
            responder_id.clone(),
            issuer.clone(),
        );
        tasks.spawn_blocking(move || -> Result<Vec<PresignedAnswer>, OcspError> {
            let mut out = Vec::with_capacity(share.len());
            for d in share {
                let status = status_of(true, d.revocation.as_ref(), t);
                let cert_status = match status {
                    Status::Revoked { at, reason: code } => CertStatus::Revoked(RevokedInfo {
                        revocation_time: gtime(at)?,
                        revocation_reason: Some(reason(code)),
                    }),
                    Status::Good | Status::Unknown => CertStatus::Good(Null),
                };
                let data = ResponseData {
                    version: x509_ocsp::Version::V1,
                    responder_id: ResponderId::ByKey(OctetString::new(responder_id.clone())?),
                    produced_at: gtime(t)?,
                    responses: vec![SingleResponse {
                        cert_id: cert_id(&hashes, &d.serial)?,
                        cert_status,
                        this_update: gtime(t)?,
                        next_update: Some(gtime(t + validity)?),
                        single_extensions: None,
                    }],
                    response_extensions: None,
                };
                let sig = signer.sign_blocking(&data.to_der()?)?;
                let basic = BasicOcspResponse {
                    tbs_response_data: data,
                    signature_algorithm: signer.algorithm().signature_algorithm(),
                    signature: der::asn1::BitString::from_bytes(&sig)?,
                    certs: Some(vec![(*cert).clone()]),
                };
                out.push(PresignedAnswer {
                    serial: d.serial,
                    issuer: issuer.clone(),
                    state: state_key(status),
                    as_of_ms,
                    this_update: t,
                    next_update: t + validity,
                    not_after: d.not_after,
                    der: OcspResponse::successful(basic)?.to_der()?,
                });
            }
            Ok(out)
        });
    }
    let mut answers = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let share = r.map_err(|e| OcspError::Store(crate::store::StoreError::Unavailable(e.to_string())))??;
        answers.extend(share);
    }
    let signed = answers.len() as u64;
    let written = store.put_presigned(answers).await?;
    Ok(RoundReport {
        signed,
        written,
        pruned: 0,
        batches: 1,
    })
}

/// One full pass over the answers `store` keeps: every answer missing or due for renewal signed
/// and kept, page by page; the answers of certificates past the grace period dropped.
pub async fn round(ca: &Ca, store: &Store) -> Result<RoundReport, OcspError> {
    let t = now();
    let o = &ca.config.ocsp;
    let renew_by = t + o.presign_renew_before_seconds;
    let mut report = RoundReport::default();
    let mut after = String::new();
    loop {
        // Taken before the read: an answer made from it loses to one made from a later read.
        let as_of = now_ms();
        let due = store
            .presign_due(&ca.issuing.id, answered_after(ca, t), renew_by, &after, o.presign_batch)
            .await?;
        let Some(last) = due.last().map(|d| d.serial.clone()) else {
            break;
        };
        let full = due.len() as i64 == o.presign_batch;
        report += sign_and_keep(ca, store, due, as_of, now()).await?;
        if !full {
            break;
        }
        after = last;
    }
    report.pruned = store.prune_presigned(answered_after(ca, t)).await?;
    Ok(report)
}

/// Signs anew what changed since `since` (seconds) where the kept answer says otherwise;
/// returns the report and the watermark for the next call.
pub async fn changes(ca: &Ca, store: &Store, since: i64) -> Result<(RoundReport, i64), OcspError> {
    let t = now();
    let as_of = now_ms();
    let rows = store
        .presign_changed(&ca.issuing.id, since, t, t - NEW_WITHIN, answered_after(ca, t))
        .await?;
    let mut seen = std::collections::HashSet::new();
    let due: Vec<DueAnswer> = rows
        .into_iter()
        .filter(|d| seen.insert(d.serial.clone()))
        .filter(|d| d.kept_state.as_deref() != Some(state_key(status_of(true, d.revocation.as_ref(), t)).as_str()))
        .collect();
    let report = sign_and_keep(ca, store, due, as_of, t).await;
    // After the write, and every serial seen, not only those signed here: another instance may
    // have signed it, and the look reaches `LOOKBACK` back, so a forget that raced a read of the
    // older answer comes again at the next look.
    if let Some(r) = &ca.responder
        && !seen.is_empty()
    {
        r.hot.forget(seen.iter().map(String::as_str));
    }
    Ok((report?, t - LOOKBACK))
}

/// The pre-signer, until `stop`: [`round`] every `presign_round_seconds`, [`changes`] every
/// quarter second and when this instance revokes, while `held` says this instance holds the
/// OCSP duty (one instance of a cluster signs). The one call site is `service::serve`.
pub async fn run(
    ca: Arc<Ca>,
    store: Store,
    held: Box<dyn Fn() -> bool + Send + Sync>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(responder) = &ca.responder else {
        tracing::warn!("OCSP answers are not signed ahead: no responder key");
        return;
    };
    let every = Duration::from_secs(ca.config.ocsp.presign_round_seconds.max(1));
    let mut since = now() - LOOKBACK;
    let mut next_round = tokio::time::Instant::now();
    while !*stop.borrow() {
        if !held() {
            // Not this instance's duty (now): wait for it, and take up a full round at once
            // when it comes, as the previous holder's last round is of unknown age.
            next_round = tokio::time::Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(CHANGES_EVERY) => {}
                _ = stop.changed() => break,
            }
            continue;
        }
        if tokio::time::Instant::now() >= next_round {
            let started = std::time::Instant::now();
            match round(&ca, &store).await {
                Ok(r) if r.signed > 0 || r.pruned > 0 => tracing::info!(
                    signed = r.signed,
                    written = r.written,
                    pruned = r.pruned,
                    batches = r.batches,
                    ms = started.elapsed().as_millis() as u64,
                    "OCSP answers signed ahead"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("OCSP pre-signing: {e}"),
            }
            next_round = tokio::time::Instant::now() + every;
        }
        match changes(&ca, &store, since).await {
            Ok((r, next)) => {
                if r.signed > 0 {
                    tracing::info!(signed = r.signed, "OCSP answers signed anew after a change");
                }
                since = next;
            }
            Err(e) => tracing::error!("OCSP pre-signing after a change: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(CHANGES_EVERY) => {}
            _ = responder.changed.notified() => {}
            _ = stop.changed() => break,
        }
    }
}

impl Ca {
    /// The kept answer to a single SHA-1 CertID of the issuing CA, if there is one still
    /// before its nextUpdate.
    pub(super) async fn presigned(&self, id: &CertId) -> Result<Option<Answer>, OcspError> {
        if id.hash_algorithm.oid != SHA1 {
            return Ok(None);
        }
        let serial = hex::encode(id.serial_number.as_bytes());
        let hot = self.responder.as_ref().map(|r| &r.hot);
        let read_at = std::time::Instant::now();
        if let Some(answer) = hot.and_then(|h| h.get(&serial, read_at, now())) {
            return Ok(Some(answer));
        }
        let epoch = hot.map(|h| h.epoch());
        let Some(kept) = self.store.presigned_answer(&self.issuing.id, &serial).await? else {
            return Ok(None);
        };
        if kept.next_update <= now() {
            return Ok(None);
        }
        let etag = format!(
            "\"{}\"",
            hex::encode(&digest(&aws_lc_rs::digest::SHA256, &kept.der)[..16])
        );
        let answer = Answer {
            der: Arc::new(kept.der),
            freshness: Some(Freshness {
                produced_at: kept.this_update,
                next_update: kept.next_update,
                etag,
            }),
        };
        if let (Some(hot), Some(epoch)) = (hot, epoch) {
            hot.put(serial, answer.clone(), kept.next_update, epoch, read_at);
        }
        Ok(Some(answer))
    }
}
