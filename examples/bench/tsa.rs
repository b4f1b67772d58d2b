//! `bench tsa --n N --concurrency C [--raw-only]`: opens the deployment the environment names (the one a
//! running `nca serve` uses: NCA_CONFIG, NCA_DATA_DIR, NCA_KEY_STORE, NCA_PKCS11_*), and measures
//! on its TSA key, in this run: the raw signing rate over a token's signed attributes (all
//! cores), and the TSA engine in process (request judged, recorded through the group-commit
//! writer, signed, answered) at concurrency C: the two limits the HTTP figure sits beside.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nca::config::Config;
use nca::pki::Ca;

use crate::{arg, percentile, rate};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let n: usize = arg(args, "--n", "4000").parse()?;
    let conc: usize = arg(args, "--concurrency", "64").parse()?;
    let cfg = Arc::new(Config::load(None)?);
    let (store, key_store) = nca::service::open_parts(&cfg).await?;
    let ca = Arc::new(Ca::open(cfg, store, Arc::clone(&key_store)).await?);
    let tsa = ca
        .tsa
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no TSA key in this deployment"))?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let ctx = format!(
        "key_store={} alg={} threads={threads}",
        key_store.kind(),
        tsa.signer.algorithm()
    );
    // A token's signed attributes (contentType, signingTime, messageDigest,
    // signingCertificateV2 with issuerSerial) come to about 260 octets.
    let msg = vec![0x31u8; 260];
    let signer = Arc::clone(&tsa.signer);
    let per = (n / threads).max(50);
    let cpu0 = cpu_seconds();
    let raw = rate(threads, per, || {
        signer.sign_blocking(&msg).expect("sign");
    });
    let cpu = cpu_seconds() - cpu0;
    println!("RESULT tsa.raw_sign {raw:.0} ops/s {ctx}");
    // Per CPU-second of this process: what a shared machine's other load does not change.
    if cpu > 0.0 {
        println!(
            "RESULT tsa.raw_sign_per_cpu_s {:.0} ops/cpu-s {ctx}",
            (per * threads) as f64 / cpu
        );
    }
    if args.iter().any(|a| a == "--raw-only") {
        return Ok(());
    }

    let req = nca::pki::tsa::request_for(b"bench", true)?;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (ca, done, req) = (Arc::clone(&ca), Arc::clone(&done), req.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while done.fetch_add(1, Ordering::Relaxed) < n as u64 {
                let t = Instant::now();
                let resp = ca.timestamp(&req).await;
                assert!(nca::pki::tsa::token_of_response(&resp).is_ok(), "a token was refused");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let engine = lat.len() as f64 / secs;
    println!(
        "RESULT tsa.engine {engine:.0} tokens/s {ctx} concurrency={conc} n={}",
        lat.len()
    );
    println!("RESULT tsa.engine_p99 {:.2} ms {ctx}", percentile(&lat, 0.99));
    println!("RESULT tsa.engine_vs_raw {:.0} % {ctx}", 100.0 * engine / raw);
    Ok(())
}

/// User and system CPU time of this process so far, from /proc/self/stat (USER_HZ = 100).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
