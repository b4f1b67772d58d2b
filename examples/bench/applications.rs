//! `bench applications`: P1 end to end over HTTP against a running `nca serve`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{arg, deployment, percentile, rate};

type Sender = hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>;

async fn call(
    sender: &mut Sender,
    method: &str,
    path: &str,
    ctype: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", ctype)
        .body(Full::new(bytes::Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

async fn plain(addr: &str) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn mutual_tls(addr: &str, connector: &tokio_rustls::TlsConnector) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = connector
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let public = arg(args, "--public", "http://127.0.0.1:8080");
    let operator = arg(args, "--operator", "https://127.0.0.1:8443");
    let data = std::path::PathBuf::from(arg(args, "--data", "nca-data"));
    let op_dir = std::path::PathBuf::from(arg(args, "--operator-dir", "op"));
    let centre = arg(args, "--centre", "psc-astana-01");
    let alg = arg(args, "--alg", "rsa-2048");
    let label = arg(args, "--label", "");
    let seconds: u64 = arg(args, "--seconds", "20").parse()?;
    let conc: usize = arg(args, "--concurrency", "16").parse()?;
    let auth_csr = std::fs::read_to_string(arg(args, "--auth-csr", "auth.csr"))?;
    let sign_csr = std::fs::read_to_string(arg(args, "--sign-csr", "sign.csr"))?;
    let read = |p: std::path::PathBuf| std::fs::read(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));

    // The limit: two CA signatures per application, so half the raw signing rate of an issuing
    // key of the same algorithm on the same key store, measured here, now.
    let (_dir, probe, probe_parts) = deployment(&alg, |_| {}).await?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let signer = Arc::clone(&probe.issuing.signer);
    let msg = vec![0x5au8; 1100];
    let raw = rate(threads, 1000 / threads.max(1), || {
        signer.sign_blocking(&msg).expect("sign");
    });
    drop(probe);
    drop(probe_parts);
    let bound = raw / 2.0;
    let ctx = format!("{label} issuing={alg} concurrency={conc} seconds={seconds}");
    println!("RESULT applications.raw_sign {raw:.0} sigs/s {ctx}");
    println!("RESULT applications.bound {bound:.0} apps/s {ctx}");

    // The operator: mutual TLS with their AUTH key, confirmations signed with their SIGN key.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_slice_iter(&read(data.join("ca/root.pem"))?) {
        roots.add(c?)?;
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(op_dir.join("auth.crt"))?).collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> = PrivateKeyDer::from_pem_slice(&read(op_dir.join("auth.key"))?)
        .map_err(|e| anyhow::anyhow!("the operator's AUTH key: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let sign_key = PrivateKeyDer::from_pem_slice(&read(op_dir.join("sign.key"))?)
        .map_err(|e| anyhow::anyhow!("the operator's SIGN key: {e}"))?;
    let op_signer: Arc<dyn nca::keys::Signer> = Arc::new(nca::keys::SoftwareKey::from_pkcs8(
        "operator-sign",
        sign_key.secret_der(),
    )?);
    let sign_cert = CertificateDer::pem_slice_iter(&read(op_dir.join("sign.crt"))?)
        .next()
        .ok_or_else(|| anyhow::anyhow!("no operator SIGN certificate"))??
        .to_vec();

    let application = serde_json::json!({
        "service": "issue",
        "applicant": {"iin": "850315306048", "surname": "Құнанбай", "name": "Абай", "email": "abai@example.kz"},
        "registration_centre": centre,
        "storage": "file",
        "requests": {"auth": auth_csr, "sign": sign_csr},
    })
    .to_string();
    let public_addr = public.trim_start_matches("http://").trim_end_matches('/').to_string();
    let op_addr = operator
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (public_addr, op_addr, connector) = (public_addr.clone(), op_addr.clone(), connector.clone());
        let (application, errors) = (application.clone(), Arc::clone(&errors));
        let (op_signer, sign_cert) = (Arc::clone(&op_signer), sign_cert.clone());
        tasks.push(tokio::spawn(async move {
            let mut portal = plain(&public_addr).await?;
            let mut desk = mutual_tls(&op_addr, &connector).await?;
            let mut whole = Vec::new();
            let mut confirm = Vec::new();
            // Each step's own latency: where an application's time goes, seen from the client.
            let mut steps: [Vec<Duration>; 3] = Default::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                let (status, body) = call(
                    &mut portal,
                    "POST",
                    "/api/v1/applications",
                    "application/json",
                    application.clone().into_bytes(),
                )
                .await?;
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let number = v["number"].as_str().unwrap_or_default().to_string();
                if status != 201 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let submitted = t.elapsed();
                let base = format!("/api/v1/operator/applications/{number}");
                let i = Instant::now();
                let identity = br#"{"confirmed": true, "documents": ["id_card"]}"#.to_vec();
                let (s1, _) = call(
                    &mut desk,
                    "POST",
                    &format!("{base}/identity"),
                    "application/json",
                    identity,
                )
                .await?;
                let identified = i.elapsed();
                let (s2, tbs) = call(
                    &mut desk,
                    "GET",
                    &format!("{base}/to-be-signed"),
                    "text/plain",
                    Vec::new(),
                )
                .await?;
                if s1 != 200 || s2 != 200 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let cms = nca::station::sign_cms(op_signer.as_ref(), &sign_cert, &tbs)?;
                let c = Instant::now();
                let (s3, body) = call(
                    &mut desk,
                    "POST",
                    &format!("{base}/confirmation"),
                    "application/pkcs7-mime",
                    cms,
                )
                .await?;
                let done = serde_json::from_slice::<serde_json::Value>(&body)
                    .map(|v| v["status"] == "completed")
                    .unwrap_or(false);
                if s3 == 200 && done {
                    confirm.push(c.elapsed());
                    whole.push(t.elapsed());
                    steps[0].push(submitted);
                    steps[1].push(identified);
                    steps[2].push(c - i - identified);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, anyhow::Error>((whole, confirm, steps))
        }));
    }
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let (mut whole, mut confirm) = (Vec::new(), Vec::new());
    let mut steps: [Vec<Duration>; 3] = Default::default();
    for t in tasks {
        let (w, c, s) = t.await??;
        whole.extend(w);
        confirm.extend(c);
        for (all, one) in steps.iter_mut().zip(s) {
            all.extend(one);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    whole.sort();
    confirm.sort();
    for s in &mut steps {
        s.sort();
    }
    let apps = whole.len() as f64 / secs;
    let ctx = format!("{ctx} errors={} n={}", errors.load(Ordering::Relaxed), whole.len());
    println!("RESULT applications.completed {apps:.0} apps/s {ctx}");
    println!("RESULT applications.vs_bound {:.0} % {ctx}", 100.0 * apps / bound);
    println!("RESULT applications.p50 {:.1} ms {ctx}", percentile(&whole, 0.5));
    println!(
        "RESULT applications.confirmation_p50 {:.1} ms {ctx}",
        percentile(&confirm, 0.5)
    );
    println!(
        "RESULT applications.confirmation_p99 {:.1} ms {ctx}",
        percentile(&confirm, 0.99)
    );
    // The steps before the confirmation, and the load process's own CPU: a client that used
    // most of a core would be the limit, not the service.
    // to_be_signed includes the client signing it.
    for (name, s) in ["submit", "identity", "to_be_signed"].iter().zip(&steps) {
        println!(
            "RESULT applications.{name}_p50 {:.1} ms p99 {:.1} ms {ctx}",
            percentile(s, 0.5),
            percentile(s, 0.99)
        );
    }
    println!(
        "RESULT applications.client_cpu {:.2} cores ({:.0} us per application) {ctx}",
        cpu / secs,
        1e6 * cpu / whole.len().max(1) as f64
    );
    Ok(())
}

/// This process's user and system CPU time so far, in seconds (`/proc/self/stat`), 0 where
/// there is none.
pub(super) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map_or(0.0, |f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum());
    // The kernel's clock tick: 100 per second on Linux.
    ticks / 100.0
}
