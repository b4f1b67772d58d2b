//! Benchmark driver for scripts/bench.sh (not a test; figures go to BENCHMARKS.md).
//!
//! `bench engine --alg A --csr F --n N --concurrency C`: makes a fresh deployment in a temporary
//! directory on the key store the environment names (NCA_KEY_STORE, NCA_PKCS11_*), then measures
//! in one run, on the same issuing key: its raw signing rate, the CSR verification rate, and the
//! issuance engine (CSR in, certificate recorded in SQLite).
//!
//! `bench http --url U --ca F --cert F --key F --csr F --seconds S --connections C`: drives
//! `POST /api/v1/admin/certificates` over keep-alive mutual-TLS connections and reports the rate
//! and latency percentiles.
//!
//! `bench outbox --n N`: a backlog of N monitoring messages (four per application) drained by
//! the outbox worker to a loopback receiver, beside the service key's raw signing rate and the
//! rate of whole detached CMS signatures (one per message).
//!
//! `bench applications --public U --operator U --data DIR --seconds S --concurrency C`: P1 end
//! to end over HTTP against a running `nca serve` (submit, identity, to-be-signed, confirmation
//! with a real CMS signature, issuance of the pair), beside half the issuing key's raw signing
//! rate (two CA signatures per application).
//!
//! `bench tsa --n N --concurrency C`: the TSA key's raw signing rate and the TSA engine in
//! process, on the deployment of a running `nca serve` (see `tsa.rs`).
//!
//! `bench static --body F`: a static-response HTTP server (see `static_server.rs`), the limit
//! beside the OCSP answers served from the pre-signed store.
//!
//! Every figure is printed as `RESULT <name> <value> <unit> [context]`.
// A benchmark stops on the first failure: the gate's unwrap/expect lints are for the service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod applications;
mod outbox;
mod static_server;
mod tsa;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nca::config::{Config, EMBEDDED_CONFIG};
use nca::pki::subject::SubjectInput;
use nca::pki::{Ca, IssueRequest, csr};

pub(crate) fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs `f` on `threads` OS threads for `per_thread` iterations each; operations per second.
pub(crate) fn rate(threads: usize, per_thread: usize, f: impl Fn() + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per_thread {
                    f();
                }
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// A fresh deployment in a temporary directory (SQLite) on the key store the environment names,
/// issuing key `alg`; `adjust` changes the configuration first.
/// What a deployment has beside its CA: the store, configuration and key store it was opened on.
pub(crate) struct Parts {
    pub store: nca::store::Store,
    pub config: Arc<Config>,
    pub key_store: Arc<dyn nca::keys::KeyStore>,
}

pub(crate) async fn deployment(
    alg: &str,
    adjust: impl FnOnce(&mut Config),
) -> anyhow::Result<(tempfile::TempDir, Arc<Ca>, Parts)> {
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::from_toml(EMBEDDED_CONFIG, "embedded".into())?;
    cfg.data_dir = dir.path().to_path_buf();
    cfg.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("nca.db").display());
    cfg.issuing_key = alg.parse()?;
    // The root only signs once here; its size does not bear on the figures.
    cfg.root_key = if cfg.issuing_key == nca::keys::KeyAlgorithm::EcP256 {
        cfg.issuing_key
    } else {
        "rsa-2048".parse()?
    };
    adjust(&mut cfg);
    let cfg = Arc::new(cfg);
    let (store, key_store) = nca::service::open_parts(&cfg).await?;
    nca::pki::ceremony::init(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?;
    let ca = Arc::new(Ca::open(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?);
    let parts = Parts {
        store,
        config: cfg,
        key_store,
    };
    Ok((dir, ca, parts))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.get(1).map(String::as_str) {
        Some("engine") => rt.block_on(engine(&args)),
        Some("http") => rt.block_on(http(&args)),
        Some("outbox") => rt.block_on(outbox::run(&args)),
        Some("applications") => rt.block_on(applications::run(&args)),
        Some("tsa") => rt.block_on(tsa::run(&args)),
        Some("static") => rt.block_on(static_server::run(&args)),
        _ => anyhow::bail!("usage: bench engine|http|outbox|applications|tsa|static …"),
    }
}

async fn engine(args: &[String]) -> anyhow::Result<()> {
    let alg = arg(args, "--alg", "rsa-2048");
    let n: usize = arg(args, "--n", "2000").parse()?;
    let conc: usize = arg(args, "--concurrency", "8").parse()?;
    let csr_pem = std::fs::read(arg(args, "--csr", "bench.csr"))?;
    let (_dir, ca, parts) = deployment(&alg, |_| {}).await?;
    let key_store = Arc::clone(&parts.key_store);
    let ks = key_store.kind();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let ctx = format!("key_store={ks} alg={alg} threads={threads}");

    // The limit: raw signatures with the issuing key over a TBS-sized message, all cores.
    let signer = Arc::clone(&ca.issuing.signer);
    let msg = vec![0x5au8; 1100];
    let per = (n / threads).max(50);
    let sign_rate = rate(threads, per, || {
        signer.sign_blocking(&msg).expect("sign");
    });
    println!("RESULT raw_sign {sign_rate:.0} ops/s {ctx}");
    let verify_rate = rate(threads, per, || {
        let p = csr::parse(&csr_pem).expect("csr");
        p.check_possession().expect("pop");
    });
    println!("RESULT csr_verify {verify_rate:.0} ops/s {ctx}");
    let bound = 1.0 / (1.0 / sign_rate + 1.0 / verify_rate);
    println!("RESULT crypto_bound {bound:.0} ops/s {ctx}");

    // The engine: CSR in, policy, build, lint, record pending, sign, record issued.
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let ca = Arc::clone(&ca);
        let done = Arc::clone(&done);
        let csr_pem = csr_pem.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while done.fetch_add(1, Ordering::Relaxed) < n as u64 {
                let t = Instant::now();
                ca.issue(IssueRequest {
                    profile: "individual-sign".into(),
                    csr: csr_pem.clone(),
                    subject: SubjectInput {
                        iin: Some("850315306048".into()),
                        surname: Some("Құнанбай".into()),
                        name: Some("Абай".into()),
                        ..Default::default()
                    },
                    application: None,
                    actor: nca::model::Actor::Service,
                })
                .await
                .expect("issue");
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
    let engine_rate = lat.len() as f64 / secs;
    println!(
        "RESULT engine_issue {engine_rate:.0} certs/s {ctx} concurrency={conc} n={}",
        lat.len()
    );
    println!("RESULT engine_p50 {:.2} ms {ctx}", percentile(&lat, 0.5));
    println!("RESULT engine_p99 {:.2} ms {ctx}", percentile(&lat, 0.99));
    println!("RESULT engine_vs_bound {:.0} % {ctx}", 100.0 * engine_rate / bound);
    Ok(())
}

async fn http(args: &[String]) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let url = arg(args, "--url", "https://127.0.0.1:8443");
    let seconds: u64 = arg(args, "--seconds", "10").parse()?;
    let conns: usize = arg(args, "--connections", "32").parse()?;
    let csr_pem = std::fs::read_to_string(arg(args, "--csr", "bench.csr"))?;
    let read = |p: String| std::fs::read(&p).map_err(|e| anyhow::anyhow!("{p}: {e}"));
    let ca = read(arg(args, "--ca", "ca.pem"))?;
    let cert = read(arg(args, "--cert", "auth.crt"))?;
    let key = read(arg(args, "--key", "auth.key"))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_slice_iter(&ca) {
        roots.add(c?)?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert).collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> = PrivateKeyDer::from_pem_slice(&key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let addr = url.trim_start_matches("https://").trim_end_matches('/').to_string();
    let body = serde_json::json!({
        "profile": "individual-sign", "csr": csr_pem,
        "iin": "850315306048", "surname": "Құнанбай", "name": "Абай",
    })
    .to_string();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let connector = connector.clone();
        let addr = addr.clone();
        let body = body.clone();
        let errors = Arc::clone(&errors);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let stream = connector
                .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
                .await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let req = hyper::Request::post("/api/v1/admin/certificates")
                    .header("host", addr.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(bytes::Bytes::from(body.clone())))?;
                let t = Instant::now();
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                resp.into_body().collect().await?;
                if status.as_u16() == 201 {
                    lat.push(t.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let start = Instant::now();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let ctx = format!(
        "connections={conns} seconds={seconds} errors={}",
        errors.load(Ordering::Relaxed)
    );
    println!("RESULT http_issue {:.0} certs/s {ctx}", lat.len() as f64 / secs);
    println!("RESULT http_p50 {:.2} ms {ctx}", percentile(&lat, 0.5));
    println!("RESULT http_p99 {:.2} ms {ctx}", percentile(&lat, 0.99));
    Ok(())
}
