//! `nca ocsp`: the pre-signer run by hand.

use clap::Subcommand;

use super::ConfigArg;

#[derive(Subcommand)]
pub enum OcspCommand {
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

pub async fn run(command: OcspCommand) -> anyhow::Result<()> {
    match command {
        OcspCommand::Presign { config, all } => {
            let mut cfg = config.load()?;
            if all {
                // Every kept answer counts as due: renewal "before nextUpdate" reaches all.
                cfg.ocsp.presign_renew_before_seconds = cfg.ocsp.presign_validity_seconds + 1;
            }
            let (r, seconds, stats) = super::with_ca(cfg, async |ca| {
                let started = std::time::Instant::now();
                let r = nca::pki::ocsp::presign::round(&ca.ca, &ca.store).await?;
                let seconds = started.elapsed().as_secs_f64();
                Ok((r, seconds, ca.store.presigned_stats().await?))
            })
            .await?;
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
    }
}
