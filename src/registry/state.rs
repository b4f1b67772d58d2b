//! The state databases of persons and organisations (condition 1 of P1–P3, condition 2 of P4):
//! the embedded registry reads a CSV (the demo one by default); the gateway adapter asks the
//! e-gov gateway over HTTP. A gateway that does not answer is `Unavailable`, which leaves an
//! application waiting to be retried; it is never a refusal.

use std::collections::HashMap;
use std::time::Duration;

use crate::ids::{Bin, Iin};

pub const EMBEDDED_CSV: &str = include_str!("../../ca-config/registry-sample.csv");
const HEADER: &str = "kind,id,surname,name,patronymic,birth_date,org_name";

/// A person as the registry knows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Person {
    #[serde(alias = "id")]
    pub iin: String,
    pub surname: String,
    pub name: String,
    #[serde(default)]
    pub patronymic: Option<String>,
    #[serde(default)]
    pub birth_date: Option<String>,
}

/// An organisation as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Organization {
    #[serde(alias = "id")]
    pub bin: String,
    #[serde(alias = "org_name")]
    pub name: String,
}

/// Why the registry gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The gateway did not answer in time, or answered with an error: ask again later.
    #[error("the state registry is unavailable: {0}")]
    Unavailable(String),
    /// The registry file is not usable (fatal at start).
    #[error("registry file, line {line}: {message}")]
    File { line: usize, message: String },
}

/// The embedded registry: the whole CSV in memory, checked at load.
#[derive(Debug, Default)]
pub struct EmbeddedRegistry {
    persons: HashMap<String, Person>,
    organizations: HashMap<String, Organization>,
}

impl EmbeddedRegistry {
    pub fn parse(text: &str) -> Result<EmbeddedRegistry, RegistryError> {
        let mut reg = EmbeddedRegistry::default();
        // RFC 4180 (quotes, "" for a quote, commas and line breaks inside quotes) is the csv
        // crate's; a row of another length is this function's to refuse, with its line.
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes())
            .into_records();
        let header_ok = matches!(rows.next(), Some(Ok(h)) if h.iter().map(str::trim).eq(HEADER.split(',')));
        if !header_ok {
            return Err(RegistryError::File {
                line: 1,
                message: format!("the header must be {HEADER}"),
            });
        }
        for row in rows {
            let f = row.map_err(|e| RegistryError::File {
                line: e.position().map_or(0, |p| p.line() as usize),
                message: e.to_string(),
            })?;
            let line_no = f.position().map_or(0, |p| p.line() as usize);
            let bad = |message: String| RegistryError::File { line: line_no, message };
            if f.iter().all(|v| v.trim().is_empty()) {
                continue;
            }
            if f.len() != 7 {
                return Err(bad(format!("{} fields, 7 expected", f.len())));
            }
            let f: Vec<String> = f.iter().map(str::to_string).collect();
            let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
            match f[0].as_str() {
                "person" => {
                    let iin = Iin::parse(&f[1]).map_err(|e| bad(format!("IIN {}: {e}", f[1])))?;
                    if let Some(b) = opt(&f[5])
                        && b != iin.birth_date().to_string()
                    {
                        return Err(bad(format!(
                            "birth date {b} differs from the IIN's {}",
                            iin.birth_date()
                        )));
                    }
                    let p = Person {
                        iin: f[1].clone(),
                        surname: f[2].trim().to_string(),
                        name: f[3].trim().to_string(),
                        patronymic: opt(&f[4]),
                        birth_date: opt(&f[5]),
                    };
                    if p.surname.is_empty() || p.name.is_empty() {
                        return Err(bad("a person needs a surname and a name".into()));
                    }
                    reg.persons.insert(p.iin.clone(), p);
                }
                "organization" => {
                    Bin::parse(&f[1]).map_err(|e| bad(format!("BIN {}: {e}", f[1])))?;
                    let name = opt(&f[6]).ok_or_else(|| bad("an organisation needs a name".into()))?;
                    reg.organizations.insert(
                        f[1].clone(),
                        Organization {
                            bin: f[1].clone(),
                            name,
                        },
                    );
                }
                other => return Err(bad(format!("kind {other:?}: person or organization"))),
            }
        }
        Ok(reg)
    }
}

/// What a gateway's answer means: 200 with the record, 404 for none; anything else (another
/// status, a body that is not the record) leaves the registry unavailable, never "not found".
pub fn read_answer<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<Option<T>, RegistryError> {
    match status {
        200 => serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| RegistryError::Unavailable(format!("answer: {e}"))),
        404 => Ok(None),
        s => Err(RegistryError::Unavailable(format!("the gateway answered {s}"))),
    }
}

/// The largest answer read from the gateway: a person or an organisation is a few hundred
/// bytes; past this the gateway is taken to be broken (unavailable).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Asks the e-gov gateway: `GET {base}/persons/{iin}`, `GET {base}/organizations/{bin}`, over
/// HTTPS (or plain HTTP to a stand-in or a local TLS-originating proxy), on kept-alive
/// connections of which at most `max_connections` are in use at once.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The base URL without a trailing slash.
    base: String,
    client: reqwest::Client,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

impl Gateway {
    pub fn new(cfg: &crate::config::RegistrySection) -> Result<Gateway, RegistryError> {
        let bad = |message: String| RegistryError::File { line: 0, message };
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| bad(format!("NCA_REGISTRY_URL {:?}: {e}", cfg.url)))?;
        match url.scheme() {
            "https" => {}
            "http" => tracing::warn!(
                "NCA_REGISTRY_URL is plain http://: personal data crosses that hop unencrypted (a stand-in, or a local TLS-originating proxy)"
            ),
            other => {
                return Err(bad(format!(
                    "NCA_REGISTRY_URL {:?}: scheme {other}: https:// or http://",
                    cfg.url
                )));
            }
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let tls =
            crate::tls_client::client_config(&cfg.ca_file, url.scheme() == "https").map_err(|e| bad(e.to_string()))?;
        let connections = cfg.max_connections.max(1);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(Duration::from_secs(cfg.idle_seconds))
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            // An answer is the gateway's own: a redirect elsewhere is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(format!("registry client: {e}")))?;
        Ok(Gateway {
            base: cfg.url.trim_end_matches('/').to_string(),
            client,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(connections)),
            timeout,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>, RegistryError> {
        // Errors name no URL: the path carries an IIN, which the log must not.
        let unavailable = |e: reqwest::Error| RegistryError::Unavailable(e.without_url().to_string());
        let work = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
            let mut resp = self
                .client
                .get(format!("{}{path}", self.base))
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(unavailable)?;
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            // Read to the end (so the connection can carry the next request), up to the bound.
            while let Some(chunk) = resp.chunk().await.map_err(unavailable)? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(RegistryError::Unavailable(format!(
                        "an answer over {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            read_answer(status, &body)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RegistryError::Unavailable(format!("no answer within {} ms", self.timeout.as_millis())))?
    }
}

/// The registry the configuration names.
#[derive(Debug)]
pub enum StateRegistry {
    Embedded(EmbeddedRegistry),
    Gateway(Gateway),
}

impl StateRegistry {
    /// The gateway when `NCA_REGISTRY_URL` is set, otherwise the CSV (or the demo one built in).
    pub fn open(cfg: &crate::config::RegistrySection) -> Result<StateRegistry, RegistryError> {
        if !cfg.url.is_empty() {
            return Ok(StateRegistry::Gateway(Gateway::new(cfg)?));
        }
        let text = crate::config::read_data_file(&cfg.file, EMBEDDED_CSV).map_err(|e| RegistryError::File {
            line: 0,
            message: e.to_string(),
        })?;
        Ok(StateRegistry::Embedded(EmbeddedRegistry::parse(&text)?))
    }

    pub async fn person(&self, iin: &Iin) -> Result<Option<Person>, RegistryError> {
        match self {
            StateRegistry::Embedded(r) => Ok(r.persons.get(iin.as_str()).cloned()),
            StateRegistry::Gateway(g) => g.get(&format!("/persons/{}", iin.as_str())).await,
        }
    }

    pub async fn organization(&self, bin: &Bin) -> Result<Option<Organization>, RegistryError> {
        match self {
            StateRegistry::Embedded(r) => Ok(r.organizations.get(bin.as_str()).cloned()),
            StateRegistry::Gateway(g) => g.get(&format!("/organizations/{}", bin.as_str())).await,
        }
    }
}

/// Whether a name given by an applicant is the registry's: case-insensitive (Kazakh letters
/// included), inner spaces folded, hyphens and spaces equivalent.
pub fn names_match(given: &str, registry: &str) -> bool {
    let fold = |s: &str| {
        s.split(|c: char| c.is_whitespace() || c == '-')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase()
    };
    fold(given) == fold(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_registry_loads_and_knows_its_people() {
        let r = EmbeddedRegistry::parse(EMBEDDED_CSV).unwrap();
        let p = r.persons.get("850315306048").unwrap();
        assert_eq!((p.surname.as_str(), p.name.as_str()), ("Құнанбай", "Абай"));
        assert!(r.organizations.contains_key("150540041064"));
    }

    #[test]
    fn bad_rows_are_named_by_line() {
        let text = format!("{HEADER}\nperson,850315306048,A,B,,1985-03-15,\nperson,850315306049,A,B,,,\n");
        match EmbeddedRegistry::parse(&text) {
            Err(RegistryError::File { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        let text = format!("{HEADER}\nperson,850315306048,A,B,,1990-01-01,\n");
        assert!(matches!(
            EmbeddedRegistry::parse(&text),
            Err(RegistryError::File { line: 2, .. })
        ));
        assert!(EmbeddedRegistry::parse("id,name\n").is_err());
    }

    #[test]
    fn quoted_fields() {
        let text = format!("{HEADER}\norganization,150540041064,,,,,\"ТОО \"\"Абай, и К\"\"\"\n");
        let r = EmbeddedRegistry::parse(&text).unwrap();
        assert_eq!(r.organizations["150540041064"].name, "ТОО \"Абай, и К\"");
        // An unterminated quote runs to the end: the row it swallows has the wrong length.
        let text = format!("{HEADER}\nperson,850315306048,\"A,B,,1985-03-15,\nperson,850315306048,A,B,,,\n");
        assert!(matches!(
            EmbeddedRegistry::parse(&text),
            Err(RegistryError::File { line: 2, .. })
        ));
    }

    #[test]
    fn names_compare_without_case_in_kazakh_too() {
        assert!(names_match("құнанбай", "ҚҰНАНБАЙ"));
        assert!(names_match("  Әбілқасымова ", "ӘБІЛҚАСЫМОВА"));
        assert!(names_match("Мұхамед-Әли", "МҰХАМЕД ӘЛИ"));
        assert!(!names_match("Кунанбай", "Құнанбай"));
    }
}

#[cfg(test)]
mod answers {
    use super::*;

    #[test]
    fn only_a_404_is_not_found_and_a_bad_200_is_unavailable() {
        let p = br#"{"id":"850315306048","surname":"A","name":"B"}"#;
        assert!(matches!(read_answer::<Person>(200, p), Ok(Some(_))));
        assert!(matches!(read_answer::<Person>(404, b"whatever"), Ok(None)));
        assert!(matches!(
            read_answer::<Person>(200, b"<html>"),
            Err(RegistryError::Unavailable(_))
        ));
        assert!(matches!(
            read_answer::<Person>(503, p),
            Err(RegistryError::Unavailable(_))
        ));
    }
}
