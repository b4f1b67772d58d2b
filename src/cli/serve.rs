//! `nca serve` and `nca init`: the service, and the key ceremony on its configuration.

use std::sync::Arc;

use clap::Args;

use super::ConfigArg;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// `primary` (the whole service) or `status`: the relying parties' side only, on a
    /// read-only database URL such as a streaming replica (default: NCA_ROLE, then primary).
    #[arg(long)]
    role: Option<String>,
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = a.config.load()?;
    if let Some(role) = &a.role {
        cfg.role = role.parse()?;
    }
    nca::service::serve(Arc::new(cfg)).await
}

pub async fn init(c: ConfigArg) -> anyhow::Result<()> {
    let report = nca::service::init(Arc::new(c.load()?)).await?;
    for line in report.lines {
        println!("{line}");
    }
    Ok(())
}
