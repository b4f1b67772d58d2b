//! `bench static --body F`: the limit of serving bytes over HTTP on this machine, for the OCSP
//! figures of scripts/bench.sh: the same runtime and HTTP stack as `nca serve` (tokio, hyper
//! through axum, keep-alive), answering every request with the bytes of F (a kept OCSP answer)
//! and nothing else: no database, no signature, no routing of note. Prints
//! `listening: http://ADDR` and serves until killed.

use axum::http::header;
use axum::response::IntoResponse;

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let body: &'static [u8] = Vec::leak(std::fs::read(super::arg(args, "--body", "answer.der"))?);
    let listener = tokio::net::TcpListener::bind(super::arg(args, "--listen", "127.0.0.1:0")).await?;
    println!("listening: http://{}", listener.local_addr()?);
    let answer = move || async move { ([(header::CONTENT_TYPE, "application/ocsp-response")], body).into_response() };
    let app = axum::Router::new().fallback(answer);
    axum::serve(listener, app).await?;
    Ok(())
}
