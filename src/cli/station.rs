//! `nca station`: the workstation at a service centre, on the operator's token. These commands
//! speak to the service over its operator listener and open no CA of their own.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use nca::config::Config;

use super::read;

#[derive(Subcommand)]
pub enum StationCommand {
    /// CMS SignedData (attached, DER) over a file with the SIGN key on the operator's token.
    Sign {
        /// The operator's token label; PIN from NCA_OPERATOR_PIN.
        #[arg(long)]
        token: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// PKCS#11 module (default: NCA_PKCS11_MODULE, then the configuration's).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Adds a signature time-stamp token (CAdES-T) from the TSA at this URL
        /// (http://…/tsp of the centre's public listener).
        #[arg(long, value_name = "URL")]
        timestamp: Option<String>,
    },
    /// P4: keys made on the applicant's ID card, the operator's confirmation, the certificates
    /// written onto the card. The card PIN is read from standard input; the operator's PIN from
    /// NCA_OPERATOR_PIN.
    Enroll(Box<EnrollArgs>),
    /// P5: the applicant's certificates revoked at the centre, confirmed on the operator's token.
    Revoke(RevokeArgs),
}

/// Where the workstation finds the service and the tokens.
#[derive(Args)]
pub struct StationArgs {
    /// The operator listener, https://host:port.
    #[arg(long)]
    server: String,
    /// The operator's token label; PIN from NCA_OPERATOR_PIN.
    #[arg(long)]
    operator_token: String,
    /// CA certificates (PEM) the server's TLS certificate chains to (default: the system's).
    #[arg(
        long,
        env = "NCA_STATION_CA_FILE",
        default_value = "/etc/ssl/certs/ca-certificates.crt"
    )]
    ca_file: PathBuf,
    /// PKCS#11 module of the tokens (default: NCA_PKCS11_MODULE, then the configuration's).
    #[arg(long, visible_alias = "pkcs11-module")]
    module: Option<PathBuf>,
}

#[derive(Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    station: StationArgs,
    /// The applicant's ID card (token label).
    #[arg(long)]
    card_token: String,
    /// The applicant's IIN, from the ID card.
    #[arg(long)]
    iin: String,
    /// Names as the operator reads them; left out, the state database's are used.
    #[arg(long)]
    surname: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    patronymic: Option<String>,
    #[arg(long)]
    email: Option<String>,
    /// Key pairs made on the card: rsa2048 or p256.
    #[arg(long, default_value = "rsa2048")]
    key_type: String,
    /// Resume this application (an enrolment that broke off); without it, an open application
    /// whose keys are on the card is resumed, or a new one filed.
    #[arg(long)]
    application: Option<String>,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    station: StationArgs,
    /// The applicant's IIN.
    #[arg(long)]
    iin: String,
    /// A certificate to revoke (hex); repeat for several; none: all of the applicant's in force.
    #[arg(long = "serial")]
    serials: Vec<String>,
    /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
    /// cessationOfOperation, certificateHold, privilegeWithdrawn.
    #[arg(long)]
    reason: String,
    /// A document the operator checked; repeat for several.
    #[arg(long = "document", default_value = "identity card")]
    documents: Vec<String>,
}

pub async fn run(command: StationCommand) -> anyhow::Result<()> {
    match command {
        StationCommand::Sign {
            token,
            input,
            out,
            module,
            timestamp,
        } => sign(token, input, out, module, timestamp).await,
        StationCommand::Enroll(a) => enroll(*a).await,
        StationCommand::Revoke(a) => revoke(a).await,
    }
}

/// The PKCS#11 module a station command names, or NCA_PKCS11_MODULE, or the configuration's.
fn pkcs11_module(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(m) => m,
        None => Config::load(None)?.key_store.pkcs11_module,
    })
}

async fn sign(
    token: String,
    input: PathBuf,
    out: PathBuf,
    module: Option<PathBuf>,
    timestamp: Option<String>,
) -> anyhow::Result<()> {
    let content = read(&input)?;
    let module = pkcs11_module(module)?;
    let pin = nca::station::operator_pin()?;
    let mut signed =
        tokio::task::spawn_blocking(move || nca::station::sign_with_token(module, &token, pin, &content)).await??;
    if let Some(url) = timestamp {
        signed = nca::station::timestamp::add_timestamp(&url, &signed).await?;
    }
    std::fs::write(&out, signed).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    Ok(())
}

async fn enroll(a: EnrollArgs) -> anyhow::Result<()> {
    use nca::station::enroll::{Applicant, Enrolment, enroll};
    let module = pkcs11_module(a.station.module)?;
    let key_algorithm = a.key_type.parse()?;
    // Read before anything else happens: the applicant types it while the operator waits.
    let pin = tokio::task::spawn_blocking(nca::station::read_card_pin).await??;
    let e = Enrolment {
        server: a.station.server,
        ca_file: a.station.ca_file,
        module,
        operator_token: a.station.operator_token,
        card_token: a.card_token,
        applicant: Applicant {
            iin: a.iin,
            surname: a.surname,
            name: a.name,
            patronymic: a.patronymic,
            email: a.email,
        },
        key_algorithm,
        application: a.application,
    };
    let done = enroll(e, pin, |number| {
        use std::io::Write;
        println!("application: {number}");
        let _ = std::io::stdout().flush();
    })
    .await?;
    println!("auth: {}", done.auth_serial);
    println!("sign: {}", done.sign_serial);
    println!("subject: {}", done.subject);
    Ok(())
}

async fn revoke(a: RevokeArgs) -> anyhow::Result<()> {
    let module = pkcs11_module(a.station.module)?;
    let done = nca::station::revoke::revoke(nca::station::revoke::Revocation {
        server: a.station.server,
        ca_file: a.station.ca_file,
        module,
        operator_token: a.station.operator_token,
        iin: a.iin,
        serials: a.serials,
        reason: a.reason,
        documents: a.documents,
    })
    .await?;
    println!("application: {}", done.application);
    for s in done.serials {
        println!("revoked: {s}");
    }
    Ok(())
}
