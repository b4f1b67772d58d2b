//! The whole deployment of issue #16 on one machine: a PostgreSQL primary and one streaming
//! replica (scripts/pg-start.sh, `PG_REPLICA_OF`), three `nca serve` instances of one deployment
//! on the primary and one `--role status` instance on the replica, all started here.
//!
//! A revocation through one instance (not the holder of the `ocsp` duty) is `revoked` in the
//! no-nonce OCSP answer of every instance and of the status instance within 2 s, and in the
//! delta CRL within a publishing round; once the holder of the `ocsp` duty is killed (`kill -9`),
//! a revocation through a survivor is `revoked` at the survivors and the status instance within
//! the lease time and 2 s.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{LEASE, cluster_view, clustered, holds};
use crate::harness::*;
use crate::presign::{answer_times, ocsp_request, openssl_ocsp, post_ocsp, until_status};
use crate::replica::{Postgres, readyz};

/// Polls `urls` (name, public URL) round by round until each answers `cert` as revoked (no
/// nonce, `openssl ocsp`, verified); returns when each first did, counted from `from`.
fn until_revoked_at(
    d: &Deployment,
    urls: &[(String, String)],
    cert: &Path,
    from: Instant,
    secs: u64,
) -> Vec<(String, Duration)> {
    let mut seen: Vec<Option<Duration>> = vec![None; urls.len()];
    eventually(secs, "revoked in OCSP at every instance", || {
        for (i, (_, url)) in urls.iter().enumerate() {
            if seen[i].is_none() {
                let text = openssl_ocsp(d, url, cert, false);
                if text.contains(": revoked") && text.contains("Response verify OK") {
                    seen[i] = Some(from.elapsed());
                }
            }
        }
        seen.iter().all(Option::is_some).then(|| {
            urls.iter()
                .zip(&seen)
                .map(|((name, _), t)| (name.clone(), t.unwrap()))
                .collect()
        })
    })
}

/// The validity of the kept (signed ahead) answers, `[ocsp] presign_validity_seconds`' default;
/// an answer signed on request is valid for an hour.
const KEPT: u64 = 86_400;

/// Asserts that every one of `urls` answers the no-nonce request `req` from the kept answers.
fn kept_everywhere(urls: &[(String, String)], req: &Path) {
    for (at, url) in urls {
        let (_, times) = answer_times(&post_ocsp(url, req));
        let (this, next) = times.unwrap_or_else(|| panic!("no answer at {at}"));
        assert_eq!(next - this, KEPT, "{at} answered with an answer not signed ahead");
    }
}

/// The serials (lower-case hex) the delta CRL served at `url` lists, by `openssl crl -text`.
fn delta_serials(url: &str, delta_path: &str, work: &Path) -> Vec<String> {
    let (status, der) = curl(&[&format!("{url}{delta_path}")]);
    assert_eq!(status, 200, "{url}{delta_path}");
    let file = work.join(format!("delta-{}.der", random_hex(4)));
    write(&file, &der);
    let text = stdout(&run_ok(
        Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(&file),
    ));
    let _ = std::fs::remove_file(&file);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(|s| s.trim().to_lowercase())
        .collect()
}

/// The one instance of `instances` that says it holds `duty`.
fn holder_of(instances: &[Deployment], alive: &[usize], duty: &str) -> Option<usize> {
    let holders: Vec<usize> = alive
        .iter()
        .copied()
        .filter(|i| holds(&instances[*i], duty) == Some(true))
        .collect();
    (holders.len() == 1).then(|| holders[0])
}

#[test]
fn topology_a_revocation_shows_at_three_instances_and_the_replicas_status_instance_within_2_s_and_after_the_ocsp_holder_is_killed()
 {
    let primary_db = Postgres::start(None);
    let mut first = Deployment::with_database(Some(primary_db.url.clone()));
    clustered(&mut first);
    first.init();
    first.start();
    let mut instances = vec![first];
    for _ in 0..2 {
        let mut d = instances[0].sibling();
        d.start();
        instances.push(d);
    }
    let replica_db = Postgres::start(Some(primary_db.port));
    let mut status = instances[0].sibling();
    status.env.retain(|(k, _)| k != "NCA_DATABASE_URL");
    status.env.push(("NCA_DATABASE_URL".into(), replica_db.url.clone()));
    status.env.push(("NCA_ROLE".into(), "status".into()));
    status.start();
    let mut sc = Scenario::new("the topology");
    sc.check("the status instance is ready as one", || {
        let r = readyz(&status.public);
        assert_eq!(
            (r["ready"].as_bool(), r["role"].as_str()),
            (Some(true), Some("status")),
            "{r}"
        );
    });
    let all: Vec<usize> = (0..instances.len()).collect();
    // The three are one cluster, and one of them holds the `ocsp` duty (by the list and by each
    // instance's own word); the status instance holds nothing.
    let ocsp = sc.step(
        "one cluster of three, one holder of the ocsp duty, the status instance none",
        || {
            let ocsp = eventually(30, "the ocsp duty held by one instance", || {
                let v = cluster_view(&instances[0]);
                let alive = v["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|i| i["alive"] == true)
                    .count();
                let listed = v["duties"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["duty"] == "ocsp" && d["holder"].is_string());
                if alive != 3 || !listed {
                    return None;
                }
                holder_of(&instances, &all, "ocsp")
            });
            assert_ne!(
                holds(&status, "ocsp"),
                Some(true),
                "the status instance holds the ocsp duty"
            );
            ocsp
        },
    );
    let through = (ocsp + 1) % instances.len();
    let name = |i: usize| format!("instance {i}");
    let mut urls: Vec<(String, String)> = all.iter().map(|i| (name(*i), instances[*i].public.clone())).collect();
    urls.push(("status instance".into(), status.public.clone()));
    eprintln!("ocsp duty at instance {ocsp}; revoking through instance {through}");

    // Two certificates, good everywhere (the replica has them too).
    let (work, cert_a, serial_a, cert_b, serial_b) = sc.step("two certificates, good everywhere", || {
        let work = tempfile::tempdir().unwrap();
        let (cert_a, _, serial_a) = instances[through].issue_individual(work.path(), "a", IIN, "ec:P-256");
        let (cert_b, _, serial_b) = instances[through].issue_individual(work.path(), "b", IIN, "ec:P-256");
        for (_, url) in &urls {
            for cert in [&cert_a, &cert_b] {
                until_status(&instances[0], url, cert, "good", Instant::now(), 20);
            }
        }
        (work, cert_a, serial_a, cert_b, serial_b)
    });
    // The revocation through an instance that does not sign OCSP answers: revoked at all four
    // within 2 s of its answer.
    let answered = sc.step("a revocation through an instance that does not sign OCSP", || {
        let (code, body) = instances[through].admin_post(
            "/api/v1/admin/revocations",
            &format!(r#"{{"serial":"{serial_a}","reason":"keyCompromise"}}"#),
        );
        let answered = Instant::now();
        assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
        answered
    });
    sc.check("revoked at all four within 2 s", || {
        let took = until_revoked_at(&instances[0], &urls, &cert_a, answered, 10);
        eprintln!("first revocation in OCSP: {took:?}");
        for (at, t) in &took {
            assert!(*t < Duration::from_secs(2), "revoked at {at} after {t:?}: {took:?}");
        }
    });
    // And from the answers signed ahead by the holder, not signed on request.
    sc.check("from the answers signed ahead", || {
        kept_everywhere(&urls, &ocsp_request(&instances[0], work.path(), &cert_a, false));
    });
    // The delta CRL (its URL from /api/v1/ca, served by every instance): the publisher checks
    // every TICK and publishes a delta once the second of a change is over, so the holder of the
    // CRL duty serves it within one round (and a second); the others read the newest CRL from
    // the database on their own round, so within a second one.
    sc.check("the delta CRL lists it at every instance within its rounds", || {
        let (code, body) = instances[0].get("/api/v1/ca");
        assert_eq!(code, 200);
        let cas: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let delta_url = cas["cas"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|c| c["delta_crl_url"].as_str())
            .unwrap_or_else(|| panic!("no delta CRL URL in {cas}"))
            .to_string();
        let delta_path = format!(
            "/{}",
            delta_url
                .split_once("://")
                .map_or(delta_url.as_str(), |(_, rest)| rest)
                .split_once('/')
                .unwrap_or_else(|| panic!("{delta_url}"))
                .1
        );
        let crl = holder_of(&instances, &all, "crl").expect("one holder of the crl duty");
        let round = nca::publisher::TICK;
        let mut listed: Vec<Option<Duration>> = vec![None; urls.len()];
        eventually(
            2 * round.as_secs() + 10,
            "the delta CRL lists the revocation everywhere",
            || {
                for (i, (_, url)) in urls.iter().enumerate() {
                    if listed[i].is_none() && delta_serials(url, &delta_path, work.path()).contains(&serial_a) {
                        listed[i] = Some(answered.elapsed());
                    }
                }
                listed.iter().all(Option::is_some).then_some(())
            },
        );
        let listed: Vec<(String, Duration)> = urls
            .iter()
            .zip(&listed)
            .map(|((n, _), t)| (n.clone(), t.unwrap()))
            .collect();
        eprintln!("first revocation in the delta CRL (crl duty at instance {crl}): {listed:?}");
        assert!(
            listed[crl].1 < round + Duration::from_secs(2),
            "the CRL publisher's own delta after {:?}: {listed:?}",
            listed[crl].1
        );
        for (at, t) in &listed {
            assert!(
                *t < 2 * round + Duration::from_secs(2),
                "delta at {at} after {t:?}: {listed:?}"
            );
        }
    });
    // kill -9 the holder of the ocsp duty; at once a revocation through a survivor: revoked at
    // the survivors and at the status instance within the lease time and 2 s.
    let (survivors, answered, left) = sc.step(
        "kill -9 of the ocsp holder, and a second revocation through a survivor",
        || {
            instances[ocsp].kill();
            let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != ocsp).collect();
            let (code, body) = instances[through].admin_post(
                "/api/v1/admin/revocations",
                &format!(r#"{{"serial":"{serial_b}","reason":"superseded"}}"#),
            );
            let answered = Instant::now();
            assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
            let left: Vec<(String, String)> = urls
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != ocsp)
                .map(|(_, u)| u.clone())
                .collect();
            (survivors, answered, left)
        },
    );
    sc.check(
        "revoked at the survivors and the status instance within the lease and 2 s; the duty moved",
        || {
            let took = until_revoked_at(&instances[through], &left, &cert_b, answered, LEASE + 20);
            let new_holder = holder_of(&instances, &survivors, "ocsp");
            eprintln!("second revocation in OCSP after the kill (ocsp duty now at {new_holder:?}): {took:?}");
            for (at, t) in &took {
                assert!(
                    *t < Duration::from_secs(LEASE + 2),
                    "revoked at {at} after {t:?} (lease {LEASE} s): {took:?}"
                );
            }
            assert!(new_holder.is_some(), "the ocsp duty not held once by the survivors");
        },
    );
    sc.check("from the answers signed ahead after the kill", || {
        kept_everywhere(&left, &ocsp_request(&instances[0], work.path(), &cert_b, false));
    });
    // The first revocation stays revoked at the status instance.
    sc.check("the first revocation stays revoked at the status instance", || {
        let text = openssl_ocsp(&instances[through], &status.public, &cert_a, false);
        assert!(text.contains(": revoked"), "{text}");
    });
    sc.finish();
}
