//! `bench outbox`: draining a backlog of monitoring messages to a loopback receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nca::outbox::{self, Policy};
use nca::store::{ApplicationRecord, OutboxMessage};

use super::applications::cpu_seconds;
use super::{arg, deployment, rate};

/// A receiver that takes every message and answers 200 (it counts them; it checks nothing, so
/// the figure is the sender's).
async fn receiver(count: Arc<AtomicU64>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/messages",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/messages"))
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let n: usize = arg(args, "--n", "100000").parse()?;
    let alg = arg(args, "--alg", "rsa-2048");
    let batch: i64 = arg(args, "--batch", "512").parse()?;
    let concurrency: usize = arg(args, "--concurrency", "32").parse()?;
    let count = Arc::new(AtomicU64::new(0));
    let url = receiver(Arc::clone(&count)).await?;
    let (_dir, ca, parts) = deployment(&alg, |c| c.monitoring.url = url.clone()).await?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let ctx = format!(
        "key_store={} service_key={alg} threads={threads}",
        parts.key_store.kind()
    );

    // A message as the workflow writes it, four per application (a P1 from submission to
    // completion), so the per-application order is in play.
    let service = ca.service.as_ref().expect("service key");
    let template = ApplicationRecord {
        number: "BNCH-0000-0000".into(),
        process: "P1".into(),
        service: nca::model::Service::Issue,
        channel: nca::model::Channel::Portal,
        ..Default::default()
    };
    // The workflow names who made each change; an applicant's role and IIN is the usual size.
    let actor = serde_json::json!({"role": "applicant", "iin": "850315306048"});
    let sample = outbox::status_message(
        &parts.config,
        "NCA-P1",
        &template,
        "awaiting_documents",
        "identity",
        None,
        &actor,
    )?;

    // The limits: the service key's raw signatures over a message-sized input, and whole
    // detached CMS signatures (what each message costs), on all cores.
    let signer = Arc::clone(&service.signer);
    let body = sample.body.as_bytes().to_vec();
    let per = 2000 / threads.max(1);
    let raw = rate(threads, per, || {
        signer.sign_blocking(&body).expect("sign");
    });
    println!("RESULT outbox.raw_sign {raw:.0} sigs/s {ctx}");
    let cert = service.cert_der.clone();
    let cpu0 = cpu_seconds();
    let cms = rate(threads, per, || {
        nca::pki::signed_data::sign(signer.as_ref(), &cert, &body, false).expect("cms");
    });
    println!("RESULT outbox.cms_sign {cms:.0} sigs/s {ctx}");
    // CPU per signature, beside the drain's CPU per message below: the signatures' share of the
    // drain's work, whatever other processes on the machine take.
    let cms_cpu_us = 1e6 * (cpu_seconds() - cpu0) / (per * threads) as f64;
    println!("RESULT outbox.cms_sign_cpu {cms_cpu_us:.0} us per signature {ctx}");

    // The backlog, written in chunks as a busy day would leave it after an outage.
    let started = Instant::now();
    let statuses = ["awaiting_documents", "awaiting_confirmation", "issuing", "completed"];
    let mut chunk = Vec::with_capacity(2000);
    for i in 0..n {
        let mut a = template.clone();
        a.number = format!("B{:07}", i / statuses.len());
        let m: OutboxMessage = outbox::status_message(
            &parts.config,
            "NCA-P1",
            &a,
            statuses[i % statuses.len()],
            "identity",
            None,
            &actor,
        )?;
        chunk.push(m);
        if chunk.len() == 2000 {
            parts.store.add_outbox(&chunk).await?;
            chunk.clear();
        }
    }
    parts.store.add_outbox(&chunk).await?;
    println!(
        "RESULT outbox.backlog_written {:.0} msgs/s n={n}",
        n as f64 / started.elapsed().as_secs_f64()
    );

    // The drain: the worker `nca serve` runs (its overlapped rounds), until the queue is empty.
    let sender = outbox::monitoring::Sender::new(&ca, &parts.config.monitoring)?;
    let policy = Policy {
        batch,
        concurrency,
        lease_seconds: 60,
        retry_initial_ms: 1000,
        retry_max_seconds: 5,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let worker = tokio::spawn(outbox::run(
        parts.store.clone(),
        outbox::MONITORING,
        policy,
        Arc::new(sender),
        stopped,
    ));
    // The queue's counts are kept on write: a cheap read, a few rows.
    while parts.store.outbox_counts(outbox::MONITORING).await?.pending > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let _ = stop.send(true);
    worker.await?;
    let delivered = parts.store.outbox_counts(outbox::MONITORING).await?.delivered;
    let got = count.load(Ordering::Relaxed);
    let drain = delivered as f64 / secs;
    let ctx = format!("{ctx} batch={batch} concurrency={concurrency} n={n} received={got}");
    println!("RESULT outbox.drain {drain:.0} msgs/s {ctx}");
    // The receiver's share included: it runs in this process, on the same cores, as the
    // monitoring system's end of the connection would take its share of a machine.
    let cpu_us = 1e6 * cpu / delivered.max(1) as f64;
    println!(
        "RESULT outbox.drain_cpu {cpu_us:.0} us per message ({:.2} cores busy) {ctx}",
        cpu / secs
    );
    println!(
        "RESULT outbox.drain_cpu_share_of_cms {:.0} % (the signature's share of a message's CPU) {ctx}",
        100.0 * cms_cpu_us / cpu_us
    );
    println!("RESULT outbox.drain_time {secs:.1} s {ctx}");
    println!("RESULT outbox.drain_vs_cms_sign {:.0} % {ctx}", 100.0 * drain / cms);
    Ok(())
}
