//! `nca cms`: signed documents checked against this CA.

use std::path::PathBuf;

use clap::Subcommand;

use super::{ConfigArg, coded, read};

#[derive(Subcommand)]
pub enum CmsCommand {
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

pub async fn run(command: CmsCommand) -> anyhow::Result<()> {
    match command {
        CmsCommand::Verify { config, input, content } => {
            let signed = read(&input)?;
            let content = content.map(|c| read(&c)).transpose()?;
            let v = config
                .with_ca(async |c| c.ca.verify_cms(&signed, content.as_deref()).await.map_err(coded))
                .await?;
            println!("{}", serde_json::to_string(&v)?);
            Ok(())
        }
    }
}
