//! `nca cabinet`: the personal cabinet's duties run by hand.

use clap::Subcommand;

use super::ConfigArg;

#[derive(Subcommand)]
pub enum CabinetCommand {
    /// One pass of the expiry-reminder duty (the service runs it hourly); prints what it sent.
    Remind {
        #[command(flatten)]
        config: ConfigArg,
        /// Run as of this time (RFC 3339) instead of now: a development run only, for tests.
        #[arg(long)]
        at: Option<String>,
    },
}

pub async fn run(command: CabinetCommand) -> anyhow::Result<()> {
    match command {
        CabinetCommand::Remind { config, at } => {
            let sent = config
                .with_ca(async |ca| {
                    let now = match at {
                        None => nca::store::now(),
                        Some(_) if !ca.config.service.development => {
                            anyhow::bail!(
                                "--at moves the clock: allowed only in a development run (development = true)"
                            )
                        }
                        Some(t) => time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                            .map_err(|e| anyhow::anyhow!("--at {t:?}: {e}"))?
                            .unix_timestamp(),
                    };
                    Ok(nca::cabinet::reminders::run_once(&ca.store, &ca.config, now).await?)
                })
                .await?;
            for (application, days) in sent {
                println!("reminded: application={application} days={days}");
            }
            Ok(())
        }
    }
}
