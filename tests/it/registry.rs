//! The state registry adapters: the embedded CSV and the e-gov gateway, against a small real
//! HTTP (and HTTPS, with a certificate the test makes) stand-in for the gateway (the real one
//! cannot run here).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use nca::config::RegistrySection;
use nca::registry::{Bin, Iin, RegistryError, StateRegistry};

use crate::harness::*;

async fn person(Path(iin): Path<String>) -> impl IntoResponse {
    match iin.as_str() {
        IIN => (
            StatusCode::OK,
            r#"{"kind":"person","id":"850315306048","surname":"Құнанбай","name":"Абай","patronymic":"Құнанбайұлы","birth_date":"1985-03-15"}"#,
        )
            .into_response(),
        "920708497088" => (StatusCode::INTERNAL_SERVER_ERROR, "down for maintenance").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn organization(Path(bin): Path<String>) -> impl IntoResponse {
    if bin == BIN {
        (
            StatusCode::OK,
            r#"{"kind":"organization","id":"150540041064","org_name":"ТОО «Дала Технолоджис»"}"#,
        )
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// Serves the stand-in on 127.0.0.1; returns its base URL.
async fn stand_in() -> String {
    let app = Router::new()
        .route("/gw/persons/{iin}", get(person))
        .route("/gw/organizations/{bin}", get(organization));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/gw")
}

/// A gateway that accepts connections and never answers.
async fn silent() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    format!("http://{addr}")
}

/// The registry section of a configuration: the file, or the gateway at `url`.
fn section(file: &std::path::Path, url: &str, timeout: Duration) -> RegistrySection {
    RegistrySection {
        file: file.to_path_buf(),
        url: url.to_string(),
        timeout_ms: timeout.as_millis() as u64,
        retry_seconds: 30,
        ca_file: Default::default(),
        max_connections: 16,
        idle_seconds: 60,
    }
}

fn iin(s: &str) -> Iin {
    Iin::parse(s).unwrap()
}

#[test]
fn the_gateway_answers_found_absent_or_unavailable_never_a_refusal() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let timeout = Duration::from_millis(500);
            let gw = StateRegistry::open(&section(
                std::path::Path::new("/nonexistent"),
                &stand_in().await,
                timeout,
            ))
            .unwrap();
            let p = gw.person(&iin(IIN)).await.unwrap().expect("a known person");
            assert_eq!((p.surname.as_str(), p.name.as_str()), ("Құнанбай", "Абай"));
            assert_eq!(gw.person(&iin("000101594515")).await.unwrap(), None);
            let org = gw
                .organization(&Bin::parse(BIN).unwrap())
                .await
                .unwrap()
                .expect("a known organisation");
            assert_eq!(org.name, "ТОО «Дала Технолоджис»");
            // A gateway error is not "not found".
            assert!(matches!(
                gw.person(&iin("920708497088")).await,
                Err(RegistryError::Unavailable(_))
            ));

            // A gateway that does not answer: unavailable, and within the timeout.
            let quiet =
                StateRegistry::open(&section(std::path::Path::new("/nonexistent"), &silent().await, timeout)).unwrap();
            let start = Instant::now();
            assert!(matches!(
                quiet.person(&iin(IIN)).await,
                Err(RegistryError::Unavailable(_))
            ));
            assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());

            // Nobody listening at all.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let gone = StateRegistry::open(&section(
                std::path::Path::new("/nonexistent"),
                &format!("http://127.0.0.1:{port}"),
                timeout,
            ))
            .unwrap();
            assert!(matches!(
                gone.person(&iin(IIN)).await,
                Err(RegistryError::Unavailable(_))
            ));
        });
}

#[test]
fn the_embedded_registry_reads_the_file_named_or_the_demo_one() {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let demo = StateRegistry::open(&section(std::path::Path::new("/nonexistent.csv"), "", Duration::from_secs(1))).unwrap();
        assert!(demo.person(&iin(IIN)).await.unwrap().is_some());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.csv");
        write(&f, "kind,id,surname,name,patronymic,birth_date,org_name\nperson,000101594515,\"Ким\",Виктория,,2000-01-01,\n".as_bytes());
        let own = StateRegistry::open(&section(&f, "", Duration::from_secs(1))).unwrap();
        assert_eq!(own.person(&iin("000101594515")).await.unwrap().unwrap().surname, "Ким");
        assert!(own.person(&iin(IIN)).await.unwrap().is_none());
        write(&f, b"kind,id,surname,name,patronymic,birth_date,org_name\nperson,000101594516,A,B,,,\n");
        assert!(matches!(StateRegistry::open(&section(&f, "", Duration::from_secs(1))), Err(RegistryError::File { line: 2, .. })));
    });
}

/// Whether the toggled stand-in answers (false: 503 to everything).
static GATEWAY_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn person_when_up(iin: Path<String>) -> axum::response::Response {
    if GATEWAY_UP.load(std::sync::atomic::Ordering::SeqCst) {
        person(iin).await.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response()
    }
}

#[test]
fn an_application_the_gateway_did_not_answer_for_waits_and_goes_on_when_it_does() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async {
        let app = Router::new().route("/gw/persons/{iin}", get(person_when_up));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/gw")
    });
    let mut d = Deployment::new();
    d.env.push(("NCA_REGISTRY_URL".into(), url));
    d.env.push(("NCA_REGISTRY_RETRY_SECONDS".into(), "1".into()));
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let submit = |surname: &str, tag: &str| {
        let body = crate::workflow::application(IIN, surname, "Абай", "", &centre, work.path(), tag);
        crate::workflow::submit(&d, &body)
    };

    // Down: the applications are kept, waiting, not refused.
    let (status, waiting) = submit("Құнанбай", "w");
    assert_eq!(status, 201, "{waiting}");
    assert_eq!(waiting["status"], "awaiting_registry");
    let steps = waiting["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["step"], "registry_check");
    assert!(steps.last().unwrap()["finished_at"].is_null());
    let (_, mismatch) = submit("Басқа", "m");
    assert_eq!(mismatch["status"], "awaiting_registry");
    // Nothing to identify yet.
    std::thread::sleep(Duration::from_secs(2));
    let number = waiting["number"].as_str().unwrap();
    let (_, v) = d.get(&format!("/api/v1/applications/{number}?iin={IIN}"));
    assert_eq!(crate::workflow::json(&v)["status"], "awaiting_registry");

    // Up: the checks are made again; one registers, the other is refused as at submission.
    GATEWAY_UP.store(true, std::sync::atomic::Ordering::SeqCst);
    let status_of = |n: &str| {
        let (_, v) = d.get(&format!("/api/v1/applications/{n}?iin={IIN}"));
        crate::workflow::json(&v)
    };
    let v = eventually(10, "registered on retry", || {
        Some(status_of(number)).filter(|v| v["status"] != "awaiting_registry")
    });
    assert_eq!(v["status"], "awaiting_documents", "{v}");
    let steps = step_names(&v);
    assert_eq!(
        steps,
        ["request", "registry_check", "register", "notify_number", "identity"]
    );
    assert_eq!(v["steps"][1]["outcome"], "found");
    let m = eventually(10, "refused on retry", || {
        Some(status_of(mismatch["number"].as_str().unwrap())).filter(|v| v["status"] != "awaiting_registry")
    });
    assert_eq!(m["status"], "refused", "{m}");
    assert_eq!(m["refusal"]["code"], "registry_mismatch");
}

/// What the HTTPS stand-in saw: connections accepted, and the most requests in progress at once.
#[derive(Default)]
struct Seen {
    connections: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

/// A CA and a server certificate for 127.0.0.1, made by openssl; returns (CA PEM, chain, key).
pub fn tls_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |n: &str| dir.join(n);
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run_ok(
        std::process::Command::new("openssl")
            .args(["req", "-x509", "-subj", "/CN=gateway test CA", "-days", "2"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")),
    );
    run_ok(
        std::process::Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(p("gw.key"))
            .arg("-out")
            .arg(p("gw.csr")),
    );
    write(&p("ext"), b"subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    run_ok(
        std::process::Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(p("gw.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("ext"))
            .arg("-out")
            .arg(p("gw.pem")),
    );
    (p("ca.pem"), p("gw.pem"), p("gw.key"))
}

/// The stand-in over TLS; every request takes 50 ms, so that concurrent ones overlap.
async fn https_stand_in(chain: &std::path::Path, key: &std::path::Path, seen: std::sync::Arc<Seen>) -> String {
    use rustls::pki_types::pem::PemObject;
    use std::sync::atomic::Ordering::SeqCst;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(chain)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let cfg =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let counting = seen.clone();
    let app = Router::new()
        .route("/gw/persons/{iin}", get(person))
        .route("/gw/organizations/{bin}", get(organization))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let seen = counting.clone();
                async move {
                    let now = seen.in_flight.fetch_add(1, SeqCst) + 1;
                    seen.most_in_flight.fetch_max(now, SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let resp = next.run(req).await;
                    seen.in_flight.fetch_sub(1, SeqCst);
                    resp
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.connections.fetch_add(1, SeqCst);
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}/gw", addr.port())
}

#[test]
fn the_gateway_is_asked_over_https_on_kept_alive_bounded_connections() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = tls_files(dir.path());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let seen = std::sync::Arc::new(Seen::default());
            let url = https_stand_in(&chain, &key, seen.clone()).await;
            let mut cfg = section(std::path::Path::new("/nonexistent"), &url, Duration::from_secs(5));
            cfg.ca_file = ca.clone();
            cfg.max_connections = 2;
            let gw = StateRegistry::open(&cfg).unwrap();

            // One after another: one connection carries them all. (The pause lets the client
            // take the connection back into its pool: a request made at the very moment it is
            // put back may race it with a new connection.)
            for _ in 0..5 {
                let p = gw.person(&iin(IIN)).await.unwrap().expect("a known person");
                assert_eq!(p.surname, "Құнанбай");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(gw.person(&iin("000101594515")).await.unwrap(), None);
            assert_eq!(seen.connections.load(SeqCst), 1);

            // Twenty at once: never more than two in flight, nor more than two connections.
            let gw = std::sync::Arc::new(gw);
            let all: Vec<_> = (0..20)
                .map(|_| {
                    let gw = gw.clone();
                    tokio::spawn(async move { gw.person(&iin(IIN)).await })
                })
                .collect();
            for t in all {
                assert!(t.await.unwrap().unwrap().is_some());
            }
            assert_eq!(seen.most_in_flight.load(SeqCst), 2);
            assert!(
                seen.connections.load(SeqCst) <= 2,
                "{} connections",
                seen.connections.load(SeqCst)
            );

            // Not trusted (the system's roots do not know the test CA): unavailable, not absent.
            cfg.ca_file = Default::default();
            let untrusting = StateRegistry::open(&cfg).unwrap();
            assert!(matches!(
                untrusting.person(&iin(IIN)).await,
                Err(RegistryError::Unavailable(_))
            ));
            // A CA file that is not one stops the start.
            let junk = dir.path().join("junk.pem");
            write(&junk, b"not a certificate");
            cfg.ca_file = junk;
            assert!(matches!(StateRegistry::open(&cfg), Err(RegistryError::File { .. })));
        });
}
