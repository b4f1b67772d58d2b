//! The state registry adapters: the embedded CSV and the e-gov gateway, against a small real
//! HTTP stand-in for the gateway (the real one cannot run here).

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
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
            let gw = StateRegistry::open(std::path::Path::new("/nonexistent"), &stand_in().await, timeout).unwrap();
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
            let quiet = StateRegistry::open(std::path::Path::new("/nonexistent"), &silent().await, timeout).unwrap();
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
            let gone = StateRegistry::open(
                std::path::Path::new("/nonexistent"),
                &format!("http://127.0.0.1:{port}"),
                timeout,
            )
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
        let demo = StateRegistry::open(std::path::Path::new("/nonexistent.csv"), "", Duration::from_secs(1)).unwrap();
        assert!(demo.person(&iin(IIN)).await.unwrap().is_some());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.csv");
        write(&f, "kind,id,surname,name,patronymic,birth_date,org_name\nperson,000101594515,\"Ким\",Виктория,,2000-01-01,\n".as_bytes());
        let own = StateRegistry::open(&f, "", Duration::from_secs(1)).unwrap();
        assert_eq!(own.person(&iin("000101594515")).await.unwrap().unwrap().surname, "Ким");
        assert!(own.person(&iin(IIN)).await.unwrap().is_none());
        write(&f, b"kind,id,surname,name,patronymic,birth_date,org_name\nperson,000101594516,A,B,,,\n");
        assert!(matches!(StateRegistry::open(&f, "", Duration::from_secs(1)), Err(RegistryError::File { line: 2, .. })));
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
