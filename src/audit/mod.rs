//! The audit chain: every decision and signature, appended (by the store, in the same
//! transaction as the change) to a hash-chained table, with checkpoints signed by the service
//! key. Verification walks the chain and names the first record that was changed, removed or
//! reordered.

/// Who acted lives beneath the store, which names it in every record ([`crate::model::actor`]);
/// named here too for one release, for code written against the old path.
pub use crate::model::actor;

use base64::Engine;

use crate::keys;
use crate::pki::Ca;
use crate::store::{AuditEvent, MAIN_CHAIN, Store, StoreError, ZERO_HASH, chain_hash};

/// How often the audit chain's heads are signed by the service key (the cluster's checkpoint
/// duty).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why the chain does not verify, or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The first record that does not fit its chain: its chain and place on it.
    #[error("audit record {}: {why}", label(chain, *seq))]
    Broken { chain: String, seq: i64, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyStore(#[from] keys::KeyStoreError),
}

/// How a record is named: by its number on the main chain (every record of a single-instance
/// deployment), by chain and number on the others.
fn label(chain: &str, seq: i64) -> String {
    if chain == MAIN_CHAIN {
        seq.to_string()
    } else {
        format!("{chain}/{seq}")
    }
}

/// A chain that verified.
#[derive(Debug, serde::Serialize)]
pub struct Verified {
    /// Records on every chain.
    pub records: i64,
    /// What a checkpoint signs now: the main chain's head hash when it is the only chain, else
    /// the digest of every chain's head ([`heads_digest`]).
    pub head: String,
    pub checkpoints: i64,
    /// How many chains the records are on.
    pub chains: usize,
}

const PAGE: i64 = 10_000;

/// What a checkpoint covers and signs for a set of chain heads: with the main chain alone, its
/// last number and hash (as before there were several chains); otherwise the number of records
/// on all chains and SHA-256 over one line "chain seq hash" per chain, in the chains' order.
pub fn heads_digest(heads: &[(String, i64, String)]) -> (i64, String) {
    if let [(chain, seq, hash)] = heads
        && chain == MAIN_CHAIN
    {
        return (*seq, hash.clone());
    }
    let mut sorted: Vec<_> = heads.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let text: String = sorted.iter().map(|(c, s, h)| format!("{c} {s} {h}\n")).collect();
    let covers = sorted.iter().map(|(_, s, _)| s).sum();
    (
        covers,
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())),
    )
}

/// Walks every chain from its first record to its head. When several records are bad, the one
/// named is the earliest written (by its time, then chain).
pub async fn verify(ca: &Ca, store: &Store) -> Result<Verified, AuditError> {
    let heads = store.audit_heads().await?;
    let mut first: Option<(i64, AuditError)> = None;
    let (mut records, mut checkpoints) = (0, 0);
    let chains = store.audit_chains().await?;
    for chain in &chains {
        let head = heads.iter().find(|h| &h.0 == chain).map(|h| (h.1, h.2.clone()));
        match verify_chain(ca, store, chain, head).await {
            Ok((n, c)) => {
                records += n;
                checkpoints += c;
            }
            Err((at, e)) => {
                if first.as_ref().is_none_or(|(t, _)| at < *t) {
                    first = Some((at, e));
                }
            }
        }
    }
    if let Some((_, e)) = first {
        return Err(e);
    }
    Ok(Verified {
        records,
        head: heads_digest(&heads).1,
        checkpoints,
        chains: chains.len(),
    })
}

/// One chain: (records, checkpoints), or the first bad record with its time (the time of the
/// record after a gap; none for a missing tail).
async fn verify_chain(
    ca: &Ca,
    store: &Store,
    chain: &str,
    head: Option<(i64, String)>,
) -> Result<(i64, i64), (i64, AuditError)> {
    let (mut seq, mut hash) = (0i64, ZERO_HASH.to_string());
    let mut checkpoints = 0;
    let fault = |at: i64, e: AuditError| (at, e);
    let mut head = head;
    // The service goes on writing while it is verified: records past the head read at the start
    // are walked too, and the head read again, until the walk ends where a head says (a few
    // rounds at most; a tail that no head ever names is still "missing").
    for round in 0.. {
        loop {
            let rows = store
                .audit_rows(chain, seq, PAGE)
                .await
                .map_err(|e| fault(i64::MIN, e.into()))?;
            for r in &rows {
                let broken = |why: &str| {
                    (
                        r.at,
                        AuditError::Broken {
                            chain: chain.to_string(),
                            seq: seq + 1,
                            why: why.to_string(),
                        },
                    )
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
                    let at = r.at;
                    check_checkpoint(ca, chain, r.seq, &r.detail).map_err(|e| fault(at, e))?;
                    check_checkpoint_heads(store, chain, r.seq, &r.detail)
                        .await
                        .map_err(|e| fault(at, e))?;
                    check_checkpoint_token(ca, chain, r.seq, &r.detail)
                        .await
                        .map_err(|e| fault(at, e))?;
                    checkpoints += 1;
                }
                seq = r.seq;
                hash = r.hash.clone();
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        let (head_seq, head_hash) = head.clone().unwrap_or((0, ZERO_HASH.to_string()));
        if head_seq == seq && head_hash == hash {
            break;
        }
        if round < 5 && head_seq < seq {
            head = store
                .audit_heads()
                .await
                .map_err(|e| fault(i64::MIN, e.into()))?
                .into_iter()
                .find(|(c, _, _)| c == chain)
                .map(|(_, s, h)| (s, h));
            if head.as_ref().is_some_and(|(s, _)| *s > head_seq) {
                continue;
            }
        }
        return Err((
            i64::MAX,
            AuditError::Broken {
                chain: chain.to_string(),
                seq: seq + 1,
                why: format!("missing: the head says {head_seq} records"),
            },
        ));
    }
    Ok((seq, checkpoints))
}

/// A checkpoint of several chains lists their heads: each must be the record it names, and
/// their digest what was signed.
async fn check_checkpoint_heads(store: &Store, chain: &str, seq: i64, detail: &str) -> Result<(), AuditError> {
    let bad = |why: String| AuditError::Broken {
        chain: chain.to_string(),
        seq,
        why: format!("checkpoint: {why}"),
    };
    let v: serde_json::Value = serde_json::from_str(detail).map_err(|_| bad("detail is not JSON".into()))?;
    let Some(list) = v["heads"].as_array() else {
        return Ok(());
    };
    let mut heads = Vec::new();
    for h in list {
        let (Some(c), Some(s), Some(hash)) = (h[0].as_str(), h[1].as_i64(), h[2].as_str()) else {
            return Err(bad("a head is not [chain, seq, hash]".into()));
        };
        heads.push((c.to_string(), s, hash.to_string()));
    }
    let (covers, digest) = heads_digest(&heads);
    if Some(covers) != v["covers"].as_i64() || Some(digest.as_str()) != v["hash"].as_str() {
        return Err(bad("the heads listed are not what was signed".into()));
    }
    for (c, s, hash) in &heads {
        let found = match *s {
            0 => Some(ZERO_HASH.to_string()),
            _ => store.audit_record(c, *s).await?.map(|r| r.hash),
        };
        if found.as_deref() != Some(hash.as_str()) {
            return Err(bad(format!("the head {} it signed is not on its chain", label(c, *s))));
        }
    }
    Ok(())
}

/// A checkpoint's signature: the service key over "nca-audit-checkpoint {seq} {hash}" of the
/// record before it.
fn check_checkpoint(ca: &Ca, chain: &str, seq: i64, detail: &str) -> Result<(), AuditError> {
    let bad = |why: &str| AuditError::Broken {
        chain: chain.to_string(),
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
async fn check_checkpoint_token(ca: &Ca, chain: &str, seq: i64, detail: &str) -> Result<(), AuditError> {
    let bad = |why: String| AuditError::Broken {
        chain: chain.to_string(),
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

/// Appends a checkpoint signed by the service key over every chain's head ([`heads_digest`]),
/// with a time-stamp token of the same message from this centre's TSA when it can give one (a
/// clock it cannot trust leaves the checkpoint without, and says so in the log). Under a
/// `fence` (the checkpoint duty's), written only while the duty is still held under it.
pub async fn checkpoint(ca: &Ca, store: &Store, fence: Option<&crate::store::Fence>) -> Result<(), AuditError> {
    let Some(service) = &ca.service else { return Ok(()) };
    let heads = store.audit_heads().await?;
    let (seq, hash) = heads_digest(&heads);
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
    if !matches!(heads.as_slice(), [(c, _, _)] if c == MAIN_CHAIN) {
        detail["heads"] = serde_json::json!(
            heads
                .iter()
                .map(|(c, s, h)| serde_json::json!([c, s, h]))
                .collect::<Vec<_>>()
        );
    }
    if let Some(t) = token {
        detail["timestamp"] = serde_json::json!(t);
    }
    store
        .audit_under(&[AuditEvent::new("audit.checkpoint", &seq.to_string(), detail)], fence)
        .await?;
    Ok(())
}
