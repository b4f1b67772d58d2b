//! The crate's layering, held by a test: for each top-level module, the other top-level modules
//! it may name (`crate::X`). A new arrow fails `cargo test --lib` until it is either removed or
//! written into [`MAY_USE`] on purpose; [`MAY_USE`] lists the modules from the bottom up and a
//! module may only name one listed before it, so an arrow upward (the kind that closes a cycle)
//! cannot be written in at all, only listed in [`KNOWN_CYCLES`] as debt — which is empty.
//!
//! From the bottom up:
//!
//! - `ids` (IIN, BIN, application numbers) and `model` (the nouns the store reads and writes:
//!   statuses, services, refusals, the applicant, the actor) depend on nothing in the crate;
//! - `keys` (the key stores, operators' tokens) on nothing either: `config` tells it what to
//!   open through `keys::Opening`, and `service` opens it; `tls_client`, `logging` and `web` on
//!   nothing;
//! - `config` on `keys` (the key algorithms it names);
//! - `registry` (the state databases) on `config`, `tls_client`, `ids`;
//! - the core, each on those beneath it: `store` (the only SQL) on `model` alone; `pki` (the CA)
//!   on the store; `station` (the workstation at a service centre) on `pki`'s encoders, never on
//!   the registration authority, `operators` or the store; `audit` (verification and the signed
//!   checkpoints) on the CA and the store; `outbox` on the CA (signed, time-stamped messages);
//!   `operators` (the roll, and the access decisions kept per connection) on the CA; `workflow`
//!   (the RA) on operators, the outbox and the registry; `cabinet`; `cluster` (the duties, the
//!   audit checkpoint among them); `publisher` (CRL publishing, a duty of the cluster);
//! - `http` (the wire) and `service` (wiring everything together) on top; the binary's `cli/`
//!   above them all, through `nca::`.
//!
//! What is read: every `.rs` file under `src/`, with `//` comments and a trailing
//! `#[cfg(test)] mod …` cut off (tests may reach anything). `super::` is not followed: between
//! top-level modules the crate always writes `crate::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the top-level modules it may use, from the bottom up: a module
/// names only modules listed before it.
const MAY_USE: &[(&str, &[&str])] = &[
    ("ids", &[]),
    ("model", &[]),
    ("keys", &[]),
    ("logging", &[]),
    ("tls_client", &[]),
    ("web", &[]),
    ("config", &["keys"]),
    ("registry", &["config", "ids", "tls_client"]),
    ("store", &["model"]),
    ("pki", &["config", "ids", "keys", "model", "store"]),
    ("station", &["ids", "keys", "pki", "tls_client"]),
    ("audit", &["keys", "model", "pki", "store"]),
    ("outbox", &["config", "keys", "model", "pki", "store", "tls_client"]),
    ("operators", &["config", "ids", "keys", "model", "pki", "store"]),
    (
        "workflow",
        &[
            "config",
            "ids",
            "keys",
            "model",
            "operators",
            "outbox",
            "pki",
            "registry",
            "store",
        ],
    ),
    ("cabinet", &["config", "outbox", "pki", "store"]),
    ("cluster", &["audit", "config", "model", "pki", "store"]),
    ("publisher", &["cluster", "model", "pki", "store"]),
    ("fuzz_entry", &["ids", "keys", "pki", "registry", "workflow"]),
    (
        "http",
        &[
            "audit",
            "cabinet",
            "cluster",
            "config",
            "keys",
            "model",
            "operators",
            "outbox",
            "pki",
            "publisher",
            "registry",
            "store",
            "web",
            "workflow",
        ],
    ),
    (
        "service",
        &[
            "cabinet",
            "cluster",
            "config",
            "http",
            "keys",
            "model",
            "operators",
            "outbox",
            "pki",
            "publisher",
            "registry",
            "store",
            "workflow",
        ],
    ),
];

/// Arrows that close a cycle today, each a debt to pay rather than a pattern to follow, and
/// the only arrows allowed to point upward in [`MAY_USE`]. None: the last were paid by moving
/// the store's nouns and the actor into `model`, the access cache into `operators` and the
/// checkpoint interval into `audit`.
const KNOWN_CYCLES: &[(&str, &str)] = &[];

/// The top-level modules each top-level module names, from the sources.
fn used_by_module(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let top = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            // The crate root and the binary's command line stand above every module; this file
            // only names them.
            if matches!(top.as_str(), "lib" | "main" | "cli" | "layering") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let names = used.entry(top.clone()).or_default();
            for other in crate_paths(&code_only(&text)) {
                if other != top {
                    names.insert(other);
                }
            }
        }
    }
    used
}

/// The text without `//` comments and without a trailing test module.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| {
            // `://` is a URL in a string, not a comment.
            let comment = l.match_indices("//").find(|(i, _)| !l[..*i].ends_with(':'));
            comment.map_or(l, |(i, _)| &l[..i])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment after every `crate::`, and each first segment of a `crate::{a, b::c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        // `nca_crate::` or `$crate::` are not this crate's root.
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            // Only the top level of the group: `a::{b, c}` inside it names `a` once.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            out.insert(ident(group[start..end].trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// Every arrow of `arrows` that lies on a cycle: `a → b` where `b` reaches `a`.
fn cyclic(arrows: &BTreeMap<&str, BTreeSet<&str>>) -> BTreeSet<(String, String)> {
    let reaches = |from: &str, to: &str| -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(m) = todo.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m) {
                todo.extend(arrows.get(m).into_iter().flatten().copied());
            }
        }
        false
    };
    let mut out = BTreeSet::new();
    for (a, bs) in arrows {
        for b in bs {
            if reaches(b, a) {
                out.insert((a.to_string(), b.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_the_layers_it_may() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = MAY_USE
        .iter()
        .map(|(m, uses)| (*m, uses.iter().copied().collect()))
        .collect();
    let mut wrong = Vec::new();
    for (module, uses) in used_by_module(&src) {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "{module}: a new top-level module; give it its place in MAY_USE"
            ));
            continue;
        };
        for other in uses.iter().filter(|o| !may.contains(o.as_str())) {
            wrong.push(format!("{module} uses crate::{other}, which it may not"));
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn no_cycle_beyond_the_known_ones() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = MAY_USE
        .iter()
        .map(|(m, uses)| (*m, uses.iter().copied().collect()))
        .collect();
    let known: BTreeSet<(String, String)> = KNOWN_CYCLES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let found = cyclic(&allowed);
    let new: Vec<_> = found.difference(&known).collect();
    assert!(new.is_empty(), "arrows closing a new cycle: {new:?}");
    // A paid debt leaves the list, so that it cannot come back unnoticed.
    let paid: Vec<_> = known.difference(&found).collect();
    assert!(paid.is_empty(), "no longer cyclic, remove from KNOWN_CYCLES: {paid:?}");
}

#[test]
fn every_arrow_points_down() {
    let known: BTreeSet<(&str, &str)> = KNOWN_CYCLES.iter().copied().collect();
    let mut below = BTreeSet::new();
    let mut upward = Vec::new();
    for (module, uses) in MAY_USE {
        for other in uses.iter().filter(|o| !below.contains(*o)) {
            if !known.contains(&(*module, *other)) {
                upward.push(format!("{module} → {other}"));
            }
        }
        below.insert(*module);
    }
    assert!(upward.is_empty(), "arrows to a module not listed beneath: {upward:?}");
}

#[test]
fn the_identifiers_and_the_key_stores_stand_beneath_everything() {
    let used = used_by_module(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for bottom in ["ids", "model", "keys"] {
        assert_eq!(
            used.get(bottom).cloned().unwrap_or_default(),
            BTreeSet::new(),
            "{bottom}"
        );
    }
    let station = used.get("station").cloned().unwrap_or_default();
    for above in ["workflow", "operators", "store", "http", "config", "audit"] {
        assert!(!station.contains(above), "station uses {above}");
    }
}

#[test]
fn paths_are_read_from_code_not_comments() {
    let code = code_only(
        "use crate::{a::X, b, c::{d, e}};\nlet u = \"https://x\"; crate::f::g(); // crate::h\n$crate::i\n#[cfg(test)]\nmod tests { crate::j }",
    );
    let found: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "f"]);
}
