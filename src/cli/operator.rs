//! `nca operator`: the operators' lifecycle (regulation §15).

use std::path::PathBuf;

use clap::Subcommand;

use nca::model::Actor;
use nca::operators::{self, Dismissal, NewOperator, OperatorKeys, OperatorView};

use super::{ConfigArg, coded};

#[derive(Subcommand)]
pub enum OperatorCommand {
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

/// Every operator command prints the operator's record as it stands afterwards.
pub async fn run(command: OperatorCommand) -> anyhow::Result<()> {
    let record = match command {
        OperatorCommand::Add {
            config,
            iin,
            surname,
            name,
            patronymic,
            centre,
            out,
            token,
            administrator,
            key_algorithm,
        } => {
            config
                .with_ca(async |ca| {
                    let centres = operators::centres::Centres::load(&ca.config)?;
                    let new = NewOperator {
                        iin,
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
                    operators::add(ca.roll(), &centres, new, keys, &Actor::console())
                        .await
                        .map(|a| a.record)
                        .map_err(coded)
                })
                .await?
        }
        OperatorCommand::Suspend { config, iin } => {
            config
                .with_ca(async |ca| {
                    operators::suspend(ca.roll(), &iin, &Actor::console())
                        .await
                        .map_err(coded)
                })
                .await?
        }
        OperatorCommand::Resume { config, iin } => {
            config
                .with_ca(async |ca| {
                    operators::resume(ca.roll(), &iin, &Actor::console())
                        .await
                        .map_err(coded)
                })
                .await?
        }
        OperatorCommand::Dismiss {
            config,
            iin,
            on,
            reason,
            ..
        } => {
            let how = match on {
                Some(on) => Dismissal::On(on),
                None => Dismissal::Now {
                    reason: reason.unwrap_or_default(),
                },
            };
            config
                .with_ca(async |ca| {
                    operators::dismiss(ca.roll(), &iin, how, &Actor::console())
                        .await
                        .map_err(coded)
                })
                .await?
        }
    };
    println!("{}", serde_json::to_string(&OperatorView::from(&record))?);
    Ok(())
}
