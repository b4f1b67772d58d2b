//! A long test cut into named steps. A step the later ones build on ([`Scenario::step`]) ends the
//! test when it fails, naming itself and the steps passed before it; a check nothing later needs
//! ([`Scenario::check`]) records its failure and lets the rest run, and the test then fails once
//! with every failed check named. Each failure's own message (what was seen) is kept in the
//! report, and the panic hook has printed it with its line as it happened.

use std::panic::{AssertUnwindSafe, catch_unwind};

pub struct Scenario {
    name: String,
    passed: Vec<String>,
    failed: Vec<(String, String)>,
}

/// The message a panic carried.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(a panic without a message)".into())
}

impl Scenario {
    pub fn new(name: &str) -> Scenario {
        Scenario {
            name: name.to_string(),
            passed: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Runs a step the rest depends on; its failure ends the scenario here.
    pub fn step<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(t) => {
                self.passed.push(name.to_string());
                t
            }
            Err(e) => {
                let report = self.report();
                // Reported: the drop below would otherwise report the checks a second time.
                self.failed.clear();
                panic!("{}: step `{name}` failed: {}\n{report}", self.name, message(e.as_ref()))
            }
        }
    }

    /// Runs a check nothing later depends on; its failure is kept and the scenario goes on.
    pub fn check(&mut self, name: &str, f: impl FnOnce()) {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => self.passed.push(name.to_string()),
            Err(e) => self.failed.push((name.to_string(), message(e.as_ref()))),
        }
    }

    fn report(&self) -> String {
        let mut out = format!("passed before it: {:?}", self.passed);
        for (name, why) in &self.failed {
            out.push_str(&format!("\nfailed check `{name}`: {why}"));
        }
        out
    }

    /// Ends the scenario: fails if any check did, naming each.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if !self.failed.is_empty() {
            let report = self.report();
            let n = self.failed.len();
            self.failed.clear();
            panic!("{}: {n} check(s) failed\n{report}", self.name);
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // A scenario left without `finish` still reports its failed checks, unless the test is
        // failing already (a second panic would abort the binary).
        if !std::thread::panicking() {
            self.end();
        }
    }
}

#[test]
fn a_failed_check_lets_the_rest_run_and_the_scenario_names_each_failure() {
    let mut ran = Vec::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sc = Scenario::new("s");
        sc.check("first", || panic!("seen 1"));
        sc.check("second", || ran.push("second"));
        sc.check("third", || panic!("seen 3"));
        sc.finish();
    }));
    let why = message(outcome.expect_err("failed checks fail the scenario").as_ref());
    assert_eq!(ran, ["second"]);
    assert!(why.contains("2 check(s) failed"), "{why}");
    assert!(
        why.contains("`first`: seen 1") && why.contains("`third`: seen 3"),
        "{why}"
    );
    assert!(why.contains(r#"passed before it: ["second"]"#), "{why}");
}

#[test]
fn a_failed_step_ends_the_scenario_naming_itself_and_what_passed() {
    let mut after = false;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sc = Scenario::new("s");
        let n = sc.step("made", || 41);
        sc.step("used", || assert_eq!(n, 42, "the number"));
        after = true;
    }));
    let why = message(outcome.expect_err("a failed step fails the scenario").as_ref());
    assert!(!after);
    assert!(
        why.contains("s: step `used` failed") && why.contains("the number"),
        "{why}"
    );
    assert!(why.contains(r#"passed before it: ["made"]"#), "{why}");
}
