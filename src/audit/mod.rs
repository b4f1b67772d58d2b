//! The audit chain: every decision and signature, appended (by the store, in the same
//! transaction as the change) to a hash-chained table, with checkpoints signed by the service
//! key. Verification walks the chain and names the first record that was changed, removed or
//! reordered.

pub mod actor;

use base64::Engine;

use crate::keys;
use crate::pki::Ca;
use crate::store::{AuditEvent, StoreError, chain_hash};

/// Why the chain does not verify, or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The first record that does not fit the chain.
    #[error("audit record {seq}: {why}")]
    Broken { seq: i64, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyStore(#[from] keys::KeyStoreError),
}

/// A chain that verified.
#[derive(Debug, serde::Serialize)]
pub struct Verified {
    pub records: i64,
    pub head: String,
    pub checkpoints: i64,
}

const PAGE: i64 = 10_000;

/// Walks the chain from the first record to the head.
pub async fn verify(ca: &Ca) -> Result<Verified, AuditError> {
    let store = &ca.store;
    let (mut seq, mut hash) = (0i64, "0".repeat(64));
    let mut checkpoints = 0;
    loop {
        let rows = store.audit_rows(seq, PAGE).await?;
        for r in &rows {
            let broken = |why: &str| AuditError::Broken {
                seq: seq + 1,
                why: why.to_string(),
            };
            if r.seq != seq + 1 {
                return Err(broken(&format!("missing (the next record present is {})", r.seq)));
            }
            if r.prev_hash != hash {
                return Err(broken("does not follow the record before it"));
            }
            if chain_hash(&r.prev_hash, r.seq, r.at, &r.kind, &r.subject, &r.detail) != r.hash {
                return Err(broken("changed after it was written"));
            }
            if r.kind == "audit.checkpoint" {
                check_checkpoint(ca, r.seq, &r.detail)?;
                check_checkpoint_token(ca, r.seq, &r.detail).await?;
                checkpoints += 1;
            }
            seq = r.seq;
            hash = r.hash.clone();
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    let (head_seq, head_hash) = store.audit_head().await?;
    if head_seq != seq || head_hash != hash {
        return Err(AuditError::Broken {
            seq: seq + 1,
            why: format!("missing: the head says {head_seq} records"),
        });
    }
    Ok(Verified {
        records: seq,
        head: hash,
        checkpoints,
    })
}

/// A checkpoint's signature: the service key over "nca-audit-checkpoint {seq} {hash}" of the
/// record before it.
fn check_checkpoint(ca: &Ca, seq: i64, detail: &str) -> Result<(), AuditError> {
    let bad = |why: &str| AuditError::Broken {
        seq,
        why: format!("checkpoint: {why}"),
    };
    let v: serde_json::Value = serde_json::from_str(detail).map_err(|_| bad("detail is not JSON"))?;
    let (Some(covers), Some(hash), Some(sig)) = (v["covers"].as_i64(), v["hash"].as_str(), v["signature"].as_str())
    else {
        return Err(bad("fields missing"));
    };
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .map_err(|_| bad("signature is not base64"))?;
    let service = ca
        .service
        .as_ref()
        .ok_or_else(|| bad("no service key to check it with"))?;
    let spki: spki::SubjectPublicKeyInfoOwned =
        der::Decode::from_der(service.signer.spki_der()).map_err(|_| bad("service key does not decode"))?;
    let key = spki.subject_public_key.raw_bytes();
    let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = if service.signer.algorithm().is_rsa() {
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256
    } else {
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1
    };
    let msg = format!("nca-audit-checkpoint {covers} {hash}");
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, key)
        .verify(msg.as_bytes(), &sig)
        .map_err(|_| bad("signature does not verify"))
}

/// A checkpoint's time-stamp token, when it has one: this centre's TSA over the same message
/// the service key signed, recorded as issued (`Ca::verify_token`).
async fn check_checkpoint_token(ca: &Ca, seq: i64, detail: &str) -> Result<(), AuditError> {
    let bad = |why: String| AuditError::Broken {
        seq,
        why: format!("checkpoint: {why}"),
    };
    let v: serde_json::Value = serde_json::from_str(detail).map_err(|_| bad("detail is not JSON".into()))?;
    let Some(token) = v["timestamp"].as_str() else {
        return Ok(());
    };
    let token = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad("time-stamp is not base64".into()))?;
    let msg = format!(
        "nca-audit-checkpoint {} {}",
        v["covers"].as_i64().unwrap_or(-1),
        v["hash"].as_str().unwrap_or("")
    );
    ca.verify_token(&token, msg.as_bytes())
        .await
        .map(|_| ())
        .map_err(|e| bad(format!("time-stamp: {e}")))
}

/// Appends a checkpoint signed by the service key over the current head, with a time-stamp
/// token of the same message from this centre's TSA when it can give one (a clock it cannot
/// trust leaves the checkpoint without, and says so in the log).
pub async fn checkpoint(ca: &Ca) -> Result<(), AuditError> {
    let Some(service) = &ca.service else { return Ok(()) };
    let (seq, hash) = ca.store.audit_head().await?;
    let msg = format!("nca-audit-checkpoint {seq} {hash}");
    let token = match ca.timestamp_token(msg.as_bytes()).await {
        Ok(t) => Some(base64::engine::general_purpose::STANDARD.encode(t)),
        Err(e) => {
            tracing::warn!("audit checkpoint {seq} without a time-stamp: {e}");
            None
        }
    };
    let sig = keys::sign(&service.signer, msg.into_bytes()).await?;
    let mut detail = serde_json::json!({
        "covers": seq, "hash": hash, "signature": base64::engine::general_purpose::STANDARD.encode(sig),
        "actor": actor::Actor::Service.audit(),
    });
    if let Some(t) = token {
        detail["timestamp"] = serde_json::json!(t);
    }
    ca.store
        .audit(&[AuditEvent::new("audit.checkpoint", &seq.to_string(), detail)])
        .await?;
    Ok(())
}
