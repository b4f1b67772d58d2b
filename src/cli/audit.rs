//! `nca audit`: the audit chain.

use clap::Subcommand;

use super::ConfigArg;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the chain; exits non-zero naming the first record changed, removed or reordered.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { config } => {
            let v = config
                .with_ca(async |ca| Ok(nca::audit::verify(&ca.ca, &ca.store).await?))
                .await?;
            println!(
                "audit chain intact: {} records on {} chains, {} signed checkpoints, head {}",
                v.records, v.chains, v.checkpoints, v.head
            );
            Ok(())
        }
    }
}
