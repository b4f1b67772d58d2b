//! `nca crl`: revocation lists published on demand.

use clap::Subcommand;

use nca::model::Actor;

use super::ConfigArg;

#[derive(Subcommand)]
pub enum CrlCommand {
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

pub async fn run(command: CrlCommand) -> anyhow::Result<()> {
    match command {
        CrlCommand::Publish { config, delta, root } => {
            let wanted = nca::publisher::Wanted { delta, root };
            let r = config
                .with_ca(async |c| Ok(nca::publisher::publish_now(&c.ca, None, wanted, &Actor::console()).await?))
                .await?;
            println!(
                "published: issuer=[{}] kind=[{}] number=[{}] entries=[{}]",
                r.issuer, r.kind, r.number, r.entries
            );
            Ok(())
        }
    }
}
