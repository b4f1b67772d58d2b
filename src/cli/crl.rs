//! `nca crl`: revocation lists published on demand.

use clap::Subcommand;

use nca::audit::actor::Actor;
use nca::pki::crl::CrlKind;

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
            let kind = if delta { CrlKind::Delta } else { CrlKind::Full };
            let r = config
                .with_ca(async |ca| {
                    let issuer = if root { &ca.root.id } else { &ca.issuing.id };
                    Ok(ca.publish_crl(issuer, kind, &Actor::console()).await?)
                })
                .await?;
            println!(
                "published: issuer=[{}] kind=[{}] number=[{}] entries=[{}]",
                r.issuer, r.kind, r.number, r.entries
            );
            Ok(())
        }
    }
}
