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
