//! Delivery of letters: `file:DIR` writes one RFC 5322 message file per letter (the embedded
//! default, and what a development run reads), `smtp://host:port` hands them to an SMTP relay
//! with lettre.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::letters::Letter;
use super::{Deliver, DeliveryError};
use crate::config::Config;
use crate::store::DueMessage;

pub enum Postman {
    Files {
        dir: PathBuf,
        from: String,
    },
    Smtp {
        relay: AsyncSmtpTransport<Tokio1Executor>,
        from: String,
    },
}

impl Postman {
    pub fn new(cfg: &Config) -> anyhow::Result<Postman> {
        let t = cfg.mail.transport.trim();
        let from = cfg.mail.from.clone();
        from.parse::<lettre::message::Mailbox>()
            .map_err(|e| anyhow::anyhow!("mail.from {from:?}: {e}"))?;
        if t.is_empty() {
            return Ok(Postman::Files {
                dir: cfg.data_dir.join("mail"),
                from,
            });
        }
        if let Some(dir) = t.strip_prefix("file:") {
            return Ok(Postman::Files { dir: dir.into(), from });
        }
        if let Some(rest) = t.strip_prefix("smtp://") {
            let (host, port) = rest.trim_end_matches('/').rsplit_once(':').unwrap_or((rest, "25"));
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow::anyhow!("NCA_MAIL {t:?}: the port is not a number"))?;
            let relay = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .timeout(Some(Duration::from_secs(10)))
                .build();
            return Ok(Postman::Smtp { relay, from });
        }
        anyhow::bail!("NCA_MAIL {t:?}: file:DIR or smtp://host:port")
    }

    fn from(&self) -> &str {
        match self {
            Postman::Files { from, .. } | Postman::Smtp { from, .. } => from,
        }
    }
}

/// The letter as a MIME message; its Message-ID is the outbox's, so a letter delivered twice is
/// recognisably the same one.
fn build(from: &str, m: &DueMessage) -> Result<Message, DeliveryError> {
    let letter: Letter = serde_json::from_str(&m.body).map_err(|e| DeliveryError::Prepare(e.to_string()))?;
    let bad = |e: &dyn std::fmt::Display| DeliveryError::Prepare(e.to_string());
    Message::builder()
        .from(from.parse().map_err(|e| bad(&e))?)
        .to(letter.to.parse().map_err(|e| bad(&e))?)
        .subject(letter.subject)
        .message_id(Some(format!("<{}@nca>", m.message_id)))
        .header(ContentType::TEXT_PLAIN)
        .body(letter.text)
        .map_err(|e| bad(&e))
}

impl Deliver for Postman {
    async fn deliver(&self, m: &DueMessage) -> Result<Option<u16>, DeliveryError> {
        let message = build(self.from(), m)?;
        match self {
            Postman::Files { dir, .. } => {
                let file = dir.join(format!("{}.eml", m.message_id));
                let tmp = dir.join(format!(".{}.tmp", m.message_id));
                let bytes = message.formatted();
                let (d, path) = (dir.clone(), file.clone());
                // One blocking task for the three calls, not one each (`tokio::fs` hands every
                // call to the blocking pool and back): two letters an application.
                let write = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&d)?;
                    std::fs::write(&tmp, &bytes)?;
                    // Whole or absent: a reader never sees half a letter.
                    std::fs::rename(&tmp, &path)
                });
                let failed = |e: &dyn std::fmt::Display| DeliveryError::Unreachable(format!("{}: {e}", file.display()));
                write.await.map_err(|e| failed(&e))?.map_err(|e| failed(&e))?;
                Ok(None)
            }
            Postman::Smtp { relay, .. } => match relay.send(message).await {
                Ok(r) => Ok(Some(u16::from(r.code()))),
                // A permanent SMTP refusal (5xx): the relay will never take it.
                Err(e) if e.is_permanent() => Err(DeliveryError::Refused(e.to_string())),
                Err(e) => Err(DeliveryError::Unreachable(e.to_string())),
            },
        }
    }
}
