//! The HTTP contract as an OpenAPI 3.1 document (`openapi.json` beside this file, served at
//! `GET /api/v1/openapi.json`), and the route table it is held against: the routers register
//! every route through [`Routes`], which records (method, path), and a unit test compares that
//! set with the document's operations both ways. Adding a route means adding its operation to
//! the document; the test names what is missing or extra.

use axum::handler::Handler;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;

use super::AppState;

pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// A router that records what it registers.
pub struct Routes {
    router: axum::Router<AppState>,
    table: Vec<(&'static str, &'static str)>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            router: axum::Router::new(),
            table: Vec::new(),
        }
    }
}

impl Routes {
    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.at("get", path, axum::routing::get(handler))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.at("post", path, axum::routing::post(handler))
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.at("delete", path, axum::routing::delete(handler))
    }

    /// A POST whose body is bounded tighter than the listener's limit.
    pub fn post_limited<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
        max_bytes: usize,
    ) -> Self {
        let route = axum::routing::post(handler).layer(axum::extract::DefaultBodyLimit::max(max_bytes));
        self.at("post", path, route)
    }

    /// A GET at a path the configuration names, not recorded: the document describes the
    /// route at its default path, registered with [`Routes::get`].
    pub fn get_configured<H: Handler<T, AppState>, T: 'static>(mut self, path: &str, handler: H) -> Self {
        self.router = self.router.route(path, axum::routing::get(handler));
        self
    }

    /// axum merges a second method on a path registered already.
    fn at(mut self, method: &'static str, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.table.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    /// (method in lower case, path as axum writes it): what the unit test compares with the
    /// document.
    #[cfg(test)]
    pub fn table(&self) -> &[(&'static str, &'static str)] {
        &self.table
    }

    pub fn into_router(self) -> axum::Router<AppState> {
        self.router
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::DOCUMENT;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    /// axum's `{*rest}` is OpenAPI's `{rest}`.
    fn openapi_path(axum: &str) -> String {
        axum.replace("{*", "{")
    }

    fn routed() -> BTreeSet<(String, String)> {
        let (public, operator) = (super::super::public_routes(), super::super::operator_routes());
        public
            .table()
            .iter()
            .chain(operator.table())
            .map(|(m, p)| (m.to_string(), openapi_path(p)))
            .collect()
    }

    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in METHODS {
                if item.get(m).is_some() {
                    out.insert((m.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_describes_every_route_and_no_other() {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("src/http/openapi.json is not JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let (routed, documented) = (routed(), documented(&doc));
        let missing: Vec<String> = routed
            .difference(&documented)
            .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
            .collect();
        let extra: Vec<String> = documented
            .difference(&routed)
            .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routed but not in src/http/openapi.json: {missing:?}; in src/http/openapi.json but not routed: {extra:?}"
        );
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_operation_answers_errors_in_the_envelope() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
            assert!(doc.pointer(pointer).is_some(), "$ref {r} resolves to nothing");
        }
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{m} {path}: no operationId"));
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                assert_eq!(
                    op["responses"]["default"]["$ref"], "#/components/responses/Error",
                    "{m} {path}: errors are the envelope"
                );
            }
        }
    }
}
