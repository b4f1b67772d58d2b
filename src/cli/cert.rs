//! `nca cert`: direct issuance and revocation for administrators.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use nca::model::Actor;
use nca::pki::IssueRequest;
use nca::pki::revocation::RevokeRequest;
use nca::pki::subject::SubjectInput;

use super::{ConfigArg, coded};

#[derive(Subcommand)]
pub enum CertCommand {
    /// Issue one certificate under a profile and print it in PEM.
    Issue(Box<IssueArgs>),
    /// Revoke a certificate now or at a given time; `--reason removeFromCRL` lifts a hold.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// Serial number, hexadecimal, any case.
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, removeFromCRL, privilegeWithdrawn.
        #[arg(long)]
        reason: String,
        /// When it takes effect (RFC 3339); later than now schedules it.
        #[arg(long)]
        at: Option<String>,
        /// When the key is known or suspected to have been compromised (RFC 3339).
        #[arg(long)]
        invalidity_date: Option<String>,
    },
}

#[derive(Args)]
pub struct IssueArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    profile: String,
    /// PKCS#10 request, PEM or DER.
    #[arg(long)]
    csr: PathBuf,
    #[arg(long)]
    iin: Option<String>,
    #[arg(long)]
    surname: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    patronymic: Option<String>,
    #[arg(long)]
    bin: Option<String>,
    #[arg(long)]
    org: Option<String>,
    /// Role OID, or first-head, signer, finance, hr, employee.
    #[arg(long)]
    role: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    locality: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// For entity profiles (ocsp, tls-server, service).
    #[arg(long)]
    common_name: Option<String>,
    #[arg(long = "dns")]
    dns_names: Vec<String>,
    #[arg(long = "ip")]
    ip_addresses: Vec<String>,
}

pub async fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::Issue(a) => issue(*a).await,
        CertCommand::Revoke {
            config,
            serial,
            reason,
            at,
            invalidity_date,
        } => {
            let request = RevokeRequest {
                serial,
                reason,
                at,
                invalidity_date,
                actor: Actor::console(),
            };
            let out = config
                .with_ca(async |c| c.ca.revoke(request).await.map_err(coded))
                .await?;
            let v = nca::pki::status::revocation_view(&out.record, out.changed);
            println!("{}", serde_json::to_string(&v)?);
            Ok(())
        }
    }
}

async fn issue(a: IssueArgs) -> anyhow::Result<()> {
    let cfg = a.config.load()?;
    let csr = std::fs::read(&a.csr).map_err(|e| anyhow::anyhow!("reading {}: {e}", a.csr.display()))?;
    let request = IssueRequest {
        profile: a.profile,
        csr,
        subject: SubjectInput {
            iin: a.iin,
            surname: a.surname,
            name: a.name,
            patronymic: a.patronymic,
            email: a.email,
            bin: a.bin,
            org: a.org,
            role: a.role,
            locality: a.locality,
            region: a.region,
            common_name: a.common_name,
            dns_names: a.dns_names,
            ip_addresses: a.ip_addresses,
        },
        application: None,
        actor: Actor::console(),
    };
    let issued = super::with_ca(cfg, async |c| c.ca.issue(request).await.map_err(coded)).await?;
    print!("{}", issued.pem());
    Ok(())
}
