//! The `nca` subcommands, one module per command group. Parsing and printing only: every
//! command makes its call into the library. What the direct commands share — load the
//! configuration, open the CA on the service's database and key store, close the store whatever
//! happened, print a refusal with its stable code — is here, once.

mod audit;
mod cabinet;
mod cert;
mod cms;
mod crl;
mod ocsp;
mod operator;
mod serve;
mod station;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use nca::config::Config;
use nca::pki::Ca;

#[derive(Parser)]
#[command(
    name = "nca",
    version,
    about = "Certificate-authority service of a national certifying centre"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service; on first start with no state, run the key ceremony on the configuration.
    Serve(serve::ServeArgs),
    /// Key ceremony: CA keys in the configured key store, certificates, first administrator.
    Init(ConfigArg),
    /// Direct CA operations for administrators, on the service's database and key store.
    Cert {
        #[command(subcommand)]
        command: cert::CertCommand,
    },
    /// Operators' lifecycle (regulation §15).
    Operator {
        #[command(subcommand)]
        command: operator::OperatorCommand,
    },
    /// The audit chain.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Signed documents.
    Cms {
        #[command(subcommand)]
        command: cms::CmsCommand,
    },
    /// The workstation at a service centre: the operator's token.
    Station {
        #[command(subcommand)]
        command: station::StationCommand,
    },
    /// Certificate revocation lists.
    Crl {
        #[command(subcommand)]
        command: crl::CrlCommand,
    },
    /// OCSP answers signed ahead.
    Ocsp {
        #[command(subcommand)]
        command: ocsp::OcspCommand,
    },
    /// The citizens' personal cabinet.
    Cabinet {
        #[command(subcommand)]
        command: cabinet::CabinetCommand,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => serve::serve(a).await,
        Command::Init(c) => serve::init(c).await,
        Command::Cert { command } => cert::run(command).await,
        Command::Operator { command } => operator::run(command).await,
        Command::Audit { command } => audit::run(command).await,
        Command::Cms { command } => cms::run(command).await,
        Command::Station { command } => station::run(command).await,
        Command::Crl { command } => crl::run(command).await,
        Command::Ocsp { command } => ocsp::run(command).await,
        Command::Cabinet { command } => cabinet::run(command).await,
    }
}

#[derive(Args)]
pub struct ConfigArg {
    /// Configuration file (default: NCA_CONFIG, then ca-config/nca.toml, then the built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref())?)
    }

    /// Runs `f` on the CA opened with this configuration; see [`with_ca`].
    pub async fn with_ca<T>(&self, f: impl AsyncFnOnce(&Opened) -> anyhow::Result<T>) -> anyhow::Result<T> {
        with_ca(self.load()?, f).await
    }
}

/// What a direct command works with: the CA, and beside it (not through it) the store and the
/// configuration it was opened on.
pub struct Opened {
    pub ca: Ca,
    pub store: nca::store::Store,
    pub config: Arc<Config>,
}

impl Opened {
    /// The operators' roll's door, for the operator commands.
    pub fn roll(&self) -> nca::operators::Roll<'_> {
        nca::operators::Roll {
            ca: &self.ca,
            store: &self.store,
            config: &self.config,
        }
    }
}

/// Opens the CA on the service's database and key store, runs `f`, and closes the store whether
/// `f` succeeded or not, so that a refused command leaves no half-closed pool behind (SQLite's
/// WAL is checkpointed on close).
pub async fn with_ca<T>(cfg: Config, f: impl AsyncFnOnce(&Opened) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let cfg = Arc::new(cfg);
    let (store, key_store) = nca::service::open_parts(&cfg).await?;
    let ca = Ca::open(Arc::clone(&cfg), store.clone(), key_store).await?;
    let opened = Opened {
        ca,
        store: store.clone(),
        config: cfg,
    };
    let out = f(&opened).await;
    store.close().await;
    out
}

/// A refusal as the direct commands print it: its message, then its stable code in brackets
/// (`nca: serial not found (not_found)`), which scripts match on.
pub fn coded(e: impl Coded) -> anyhow::Error {
    anyhow::anyhow!("{e} ({})", e.code())
}

/// The library's error enums that carry a stable code.
pub trait Coded: std::fmt::Display {
    fn code(&self) -> &'static str;
}

macro_rules! coded_errors {
    ($($t:ty),* $(,)?) => {
        $(impl Coded for $t {
            fn code(&self) -> &'static str {
                <$t>::code(self)
            }
        })*
    };
}
coded_errors!(
    nca::pki::IssueError,
    nca::pki::revocation::RevokeError,
    nca::pki::CmsError,
    nca::operators::OperatorError,
);

/// A file the command was given, with its path in the error.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
