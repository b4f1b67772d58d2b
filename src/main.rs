//! The `nca` command line. Parsing only; every command calls into the library.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use nca::config::Config;
use nca::pki::IssueRequest;
use nca::pki::subject::SubjectInput;

#[derive(Parser)]
#[command(
    name = "nca",
    version,
    about = "Certificate-authority service of a national certifying centre"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArg {
    /// Configuration file (default: NCA_CONFIG, then ca-config/nca.toml, then the built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// `primary` (the whole service) or `status`: the relying parties' side only, on a
    /// read-only database URL such as a streaming replica (default: NCA_ROLE, then primary).
    #[arg(long)]
    role: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service; on first start with no state, run the key ceremony on the configuration.
    Serve(ServeArgs),
    /// Key ceremony: CA keys in the configured key store, certificates, first administrator.
    Init(ConfigArg),
    /// Direct CA operations for administrators, on the service's database and key store.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Operators' lifecycle (regulation §15).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The audit chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Signed documents.
    Cms {
        #[command(subcommand)]
        command: CmsCommand,
    },
    /// The workstation at a service centre: the operator's token.
    Station {
        #[command(subcommand)]
        command: StationCommand,
    },
    /// Certificate revocation lists.
    Crl {
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// OCSP answers signed ahead.
    Ocsp {
        #[command(subcommand)]
        command: OcspCommand,
    },
    /// The citizens' personal cabinet.
    Cabinet {
        #[command(subcommand)]
        command: CabinetCommand,
    },
}

#[derive(Subcommand)]
enum OcspCommand {
    /// One full pass of the pre-signer now (the service runs it every `ocsp.presign_round_seconds`):
    /// every answer missing or due for renewal signed and kept; prints what it did and what the
    /// store holds.
    Presign {
        #[command(flatten)]
        config: ConfigArg,
        /// Sign every answer anew, due or not (a full re-sign, as after a responder key change).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum CabinetCommand {
    /// One pass of the expiry-reminder duty (the service runs it hourly); prints what it sent.
    Remind {
        #[command(flatten)]
        config: ConfigArg,
        /// Run as of this time (RFC 3339) instead of now: a development run only, for tests.
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Add an operator: AUTH and SIGN certificates, keys in files under --out (development).
    Add {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        iin: String,
        #[arg(long)]
        surname: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        patronymic: Option<String>,
        /// Registration centre id (ca-config/centres.toml).
        #[arg(long)]
        centre: String,
        /// Directory for auth.key, auth.crt, sign.key, sign.crt, chain.pem (development).
        #[arg(long, conflicts_with = "token", required_unless_present = "token")]
        out: Option<PathBuf>,
        /// The operator's PKCS#11 token (by label): keys made on it, certificates written to it;
        /// PIN from NCA_OPERATOR_PIN, module from NCA_PKCS11_MODULE.
        #[arg(long)]
        token: Option<String>,
        /// An administrator rather than an operator.
        #[arg(long)]
        administrator: bool,
        /// rsa-2048 or ec-p256.
        #[arg(long, default_value = "rsa-2048")]
        key_algorithm: String,
    },
    /// Suspend an active operator (absence over 15 days).
    Suspend {
        #[command(flatten)]
        config: ConfigArg,
        iin: String,
    },
    /// Resume a suspended operator.
    Resume {
        #[command(flatten)]
        config: ConfigArg,
        iin: String,
    },
    /// Dismiss an operator on a date (at least 2 days ahead) or at once; revokes both certificates.
    Dismiss {
        #[command(flatten)]
        config: ConfigArg,
        iin: String,
        /// YYYY-MM-DD, local date.
        #[arg(long, conflicts_with = "now", required_unless_present = "now")]
        on: Option<String>,
        #[arg(long, requires = "reason")]
        now: bool,
        /// Revocation reason with --now (a lost key: keyCompromise).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain; exits non-zero naming the first record changed, removed or reordered.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum CmsCommand {
    /// Verify a CMS SignedData against this CA: prints the signer as JSON, or the refusal's code.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// The SignedData, DER or PEM.
        #[arg(long = "in")]
        input: PathBuf,
        /// The content, for a detached signature.
        #[arg(long)]
        content: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StationCommand {
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
struct StationArgs {
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
struct EnrollArgs {
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
struct RevokeArgs {
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

#[derive(Subcommand)]
enum CrlCommand {
    /// Generate and publish a CRL now (the service serves it within seconds).
    Publish {
        #[command(flatten)]
        config: ConfigArg,
        /// A delta CRL over the newest full CRL.
        #[arg(long)]
        delta: bool,
        /// The root CA's CRL, signed by the root key.
        #[arg(long)]
        root: bool,
    },
}

#[derive(Subcommand)]
enum CertCommand {
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
struct IssueArgs {
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nca: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nca: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    nca::logging::init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => {
            let mut cfg = Config::load(a.config.config.as_deref())?;
            if let Some(role) = &a.role {
                cfg.role = role.parse()?;
            }
            nca::service::serve(Arc::new(cfg)).await
        }
        Command::Init(c) => {
            let report = nca::service::init(Arc::new(Config::load(c.config.as_deref())?)).await?;
            for line in report.lines {
                println!("{line}");
            }
            Ok(())
        }
        Command::Cert {
            command:
                CertCommand::Revoke {
                    config,
                    serial,
                    reason,
                    at,
                    invalidity_date,
                },
        } => {
            let c = open_ca(config.config.as_deref()).await?;
            let out =
                c.ca.revoke(nca::pki::revocation::RevokeRequest {
                    serial,
                    reason,
                    at,
                    invalidity_date,
                    actor: nca::audit::actor::Actor::console(),
                })
                .await;
            c.store.close().await;
            let out = out.map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            let v = nca::pki::status::revocation_view(&out.record, out.changed);
            println!("{}", serde_json::to_string(&v)?);
            Ok(())
        }
        Command::Operator { command } => operator_command(command).await,
        Command::Station {
            command:
                StationCommand::Sign {
                    token,
                    input,
                    out,
                    module,
                    timestamp,
                },
        } => {
            let content = std::fs::read(&input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let module = pkcs11_module(module)?;
            let pin = nca::station::operator_pin()?;
            let mut signed =
                tokio::task::spawn_blocking(move || nca::station::sign_with_token(module, &token, pin, &content))
                    .await??;
            if let Some(url) = timestamp {
                signed = nca::station::timestamp::add_timestamp(&url, &signed).await?;
            }
            std::fs::write(&out, signed).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
            Ok(())
        }
        Command::Station {
            command: StationCommand::Enroll(a),
        } => station_enroll(*a).await,
        Command::Station {
            command: StationCommand::Revoke(a),
        } => {
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
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => {
            let c = open_ca(config.config.as_deref()).await?;
            let verified = nca::audit::verify(&c.ca, &c.store).await;
            c.store.close().await;
            let v = verified?;
            println!(
                "audit chain intact: {} records on {} chains, {} signed checkpoints, head {}",
                v.records, v.chains, v.checkpoints, v.head
            );
            Ok(())
        }
        Command::Cms {
            command: CmsCommand::Verify { config, input, content },
        } => {
            let signed = std::fs::read(&input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let content = content
                .map(|c| std::fs::read(&c).map_err(|e| anyhow::anyhow!("{}: {e}", c.display())))
                .transpose()?;
            let c = open_ca(config.config.as_deref()).await?;
            let verified = c.ca.verify_cms(&signed, content.as_deref()).await;
            c.store.close().await;
            let v = verified.map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            println!("{}", serde_json::to_string(&v)?);
            Ok(())
        }
        Command::Cabinet {
            command: CabinetCommand::Remind { config, at },
        } => {
            let c = open_ca(config.config.as_deref()).await?;
            let now = match at {
                None => nca::store::now(),
                Some(_) if !c.config.service.development => {
                    anyhow::bail!("--at moves the clock: allowed only in a development run (development = true)")
                }
                Some(t) => time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| anyhow::anyhow!("--at {t:?}: {e}"))?
                    .unix_timestamp(),
            };
            let sent = nca::cabinet::reminders::run_once(&c.store, &c.config, now).await;
            c.store.close().await;
            for (application, days) in sent? {
                println!("reminded: application={application} days={days}");
            }
            Ok(())
        }
        Command::Ocsp {
            command: OcspCommand::Presign { config, all },
        } => {
            let mut cfg = Config::load(config.config.as_deref())?;
            if all {
                // Every kept answer counts as due: renewal "before nextUpdate" reaches all.
                cfg.ocsp.presign_renew_before_seconds = cfg.ocsp.presign_validity_seconds + 1;
            }
            let cfg = Arc::new(cfg);
            let (store, key_store) = nca::service::open_parts(&cfg).await?;
            let ca = nca::pki::Ca::open(cfg, store.clone(), key_store).await?;
            let started = std::time::Instant::now();
            let r = nca::pki::ocsp::presign::round(&ca).await?;
            let seconds = started.elapsed().as_secs_f64();
            let stats = store.presigned_stats().await?;
            println!(
                "signed={} written={} pruned={} batches={} seconds={seconds:.2} kept={} der_bytes={} table_bytes={}",
                r.signed,
                r.written,
                r.pruned,
                r.batches,
                stats.answers,
                stats.der_bytes,
                stats.table_bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into())
            );
            Ok(())
        }
        Command::Crl {
            command: CrlCommand::Publish { config, delta, root },
        } => {
            let c = open_ca(config.config.as_deref()).await?;
            let wanted = nca::publisher::Wanted { delta, root };
            let r = nca::publisher::publish_now(&c.ca, None, wanted, &nca::audit::actor::Actor::console()).await;
            c.store.close().await;
            let r = r?;
            println!(
                "published: issuer=[{}] kind=[{}] number=[{}] entries=[{}]",
                r.issuer, r.kind, r.number, r.entries
            );
            Ok(())
        }
        Command::Cert {
            command: CertCommand::Issue(a),
        } => {
            let cfg = Arc::new(Config::load(a.config.config.as_deref())?);
            let csr = std::fs::read(&a.csr).map_err(|e| anyhow::anyhow!("reading {}: {e}", a.csr.display()))?;
            let (store, key_store) = nca::service::open_parts(&cfg).await?;
            let ca = nca::pki::Ca::open(Arc::clone(&cfg), store.clone(), key_store).await?;
            let subject = SubjectInput {
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
            };
            let issued = ca
                .issue(IssueRequest {
                    profile: a.profile,
                    csr,
                    subject,
                    application: None,
                    actor: nca::audit::actor::Actor::console(),
                })
                .await;
            store.close().await;
            let issued = issued.map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
            print!("{}", issued.pem());
            Ok(())
        }
    }
}

/// The PKCS#11 module a station command names, or NCA_PKCS11_MODULE, or the configuration's.
fn pkcs11_module(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(m) => m,
        None => Config::load(None)?.key_store.pkcs11_module,
    })
}

async fn station_enroll(a: EnrollArgs) -> anyhow::Result<()> {
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

/// What a direct command works with: the CA, and beside it (not through it) the store and the
/// configuration it was opened on.
struct Opened {
    ca: nca::pki::Ca,
    store: nca::store::Store,
    config: Arc<Config>,
}

impl Opened {
    fn roll(&self) -> nca::operators::Roll<'_> {
        nca::operators::Roll {
            ca: &self.ca,
            store: &self.store,
            config: &self.config,
        }
    }
}

/// Opens the CA on the service's database and key store, for the direct commands.
async fn open_ca(config: Option<&std::path::Path>) -> anyhow::Result<Opened> {
    let cfg = Arc::new(Config::load(config)?);
    let (store, key_store) = nca::service::open_parts(&cfg).await?;
    let ca = nca::pki::Ca::open(Arc::clone(&cfg), store.clone(), key_store).await?;
    Ok(Opened { ca, store, config: cfg })
}

async fn operator_command(command: OperatorCommand) -> anyhow::Result<()> {
    use nca::operators::{self, Dismissal, NewOperator, OperatorKeys, OperatorView};
    let (config, iin) = match &command {
        OperatorCommand::Add { config, iin, .. }
        | OperatorCommand::Suspend { config, iin }
        | OperatorCommand::Resume { config, iin }
        | OperatorCommand::Dismiss { config, iin, .. } => (config.config.clone(), iin.clone()),
    };
    let c = open_ca(config.as_deref()).await?;
    let result = match command {
        OperatorCommand::Add {
            surname,
            name,
            patronymic,
            centre,
            out,
            token,
            administrator,
            key_algorithm,
            ..
        } => {
            let centres = operators::centres::Centres::load(&c.config)?;
            let new = NewOperator {
                iin: iin.clone(),
                surname,
                name,
                patronymic,
                centre,
                administrator,
            };
            let algorithm = key_algorithm.parse()?;
            let keys = match (out, token) {
                (Some(dir), _) => OperatorKeys::Files { dir, algorithm },
                (None, Some(label)) => OperatorKeys::Token { label, algorithm },
                (None, None) => anyhow::bail!("--out or --token"),
            };
            operators::add(c.roll(), &centres, new, keys, &nca::audit::actor::Actor::console())
                .await
                .map(|a| a.record)
        }
        OperatorCommand::Suspend { .. } => {
            operators::suspend(c.roll(), &iin, &nca::audit::actor::Actor::console()).await
        }
        OperatorCommand::Resume { .. } => operators::resume(c.roll(), &iin, &nca::audit::actor::Actor::console()).await,
        OperatorCommand::Dismiss { on, reason, .. } => {
            let how = match on {
                Some(on) => Dismissal::On(on),
                None => Dismissal::Now {
                    reason: reason.unwrap_or_default(),
                },
            };
            operators::dismiss(c.roll(), &iin, how, &nca::audit::actor::Actor::console()).await
        }
    };
    c.store.close().await;
    let record = result.map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    println!("{}", serde_json::to_string(&OperatorView::from(&record))?);
    Ok(())
}
