//! A stand-in for the state-service monitoring system: a real HTTP/1.1 server on loopback that
//! records every POST (body and `X-Signature`) and answers 200, or 400 for the applications it
//! is told to refuse. It can be started late (the link is down until then) and stopped; and a
//! TLS hop in front of it, for the `https://` monitoring URL.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    pub body: Vec<u8>,
    /// Base64 DER of the detached CMS signature.
    pub signature: String,
    pub json: serde_json::Value,
}

impl Received {
    pub fn message_id(&self) -> &str {
        self.json["messageId"].as_str().unwrap_or("")
    }
    pub fn application(&self) -> &str {
        self.json["correlationId"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    refuse: Mutex<HashSet<String>>,
    connections: Mutex<Vec<TcpStream>>,
    stopped: AtomicBool,
}

pub struct Receiver {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Receiver {
    pub fn start(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(c) = conn.try_clone() {
                    s.connections.lock().unwrap().push(c);
                }
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Receiver { port, shared }
    }

    /// Answers 400 to every message of `application` from now on.
    pub fn refuse(&self, application: &str) {
        self.shared.refuse.lock().unwrap().insert(application.to_string());
    }

    pub fn accept_all(&self) {
        self.shared.refuse.lock().unwrap().clear();
    }

    /// What was received and answered 200, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received, up to `secs`.
    pub fn wait_for(&self, secs: u64, done: impl Fn(&[Received]) -> bool) -> bool {
        for _ in 0..secs * 10 {
            if done(&self.received()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Stops listening and drops every open connection: the link is down.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.shared.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One kept-alive connection: requests one after another until the client closes.
fn serve(conn: TcpStream, s: &Shared) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || s.stopped.load(Ordering::SeqCst) {
            return;
        }
        let mut length = 0usize;
        let mut signature = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "x-signature" => signature = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let refused = json["correlationId"]
            .as_str()
            .is_some_and(|a| s.refuse.lock().unwrap().contains(a));
        let status = if refused {
            "400 Bad Request"
        } else {
            s.received.lock().unwrap().push(Received { body, signature, json });
            "200 OK"
        };
        if writer
            .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

/// A TLS hop in front of the plain receiver on `to`, with the certificate
/// [`tls_files`](super::tls::tls_files) made: its port, and the runtime that serves it (dropped,
/// the hop is gone).
pub fn tls_relay(chain: &Path, key: &Path, to: u16) -> (u16, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acceptor = super::tls::acceptor(chain, key);
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, rt)
}
