//! The Gateway API conformance suite (`e2e/tests/conformance/`) played live:
//! this branch's `tollgate serve` and one real Envoy for all the tests, their
//! manifests swapped in one after the other, every case sent through Envoy to
//! echo backends (runner: `e2e::conformance::live`). One test function, so
//! the tests play one at a time; every port is a free one picked for the run
//! (`--port-map`), so it runs beside any other test.
//!
//! `CONFORMANCE_TESTS=HTTPRouteWeight,HTTPRouteMatching` plays only those.
//! Progress goes to stderr (`cargo test -- --nocapture` shows it as it goes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken setup should fail the test loudly

use std::path::Path;
use std::time::Instant;

use e2e::conformance::{default_dir, live::Live, Suite};

/// Tests Tollgate does not pass yet, and why. They are still played, and the
/// run fails when one of them passes, so this list only shrinks; their
/// expectations in `cases.yaml` stay upstream's.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_live() {
    let started = Instant::now();
    let suite = Suite::load(&default_dir()).unwrap_or_else(|e| panic!("the suite:\n{e}"));
    let only: Option<Vec<String>> = std::env::var("CONFORMANCE_TESTS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|t| t.trim().to_owned()).collect());
    if let Some(only) = &only {
        for name in only {
            assert!(
                suite.test(name).is_some(),
                "CONFORMANCE_TESTS: no test {name}"
            );
        }
    }
    let tests: Vec<_> = suite
        .tests
        .iter()
        .filter(|t| only.as_ref().is_none_or(|o| o.contains(&t.name)))
        .collect();
    let mut live = Live::start(Path::new(env!("CARGO_BIN_EXE_tollgate")), &suite)
        .await
        .unwrap();
    eprintln!(
        "conformance: {} tests, Gateway ports served on {:?} (Gateway port → Envoy port); ready after {:.1} s",
        tests.len(),
        live.ports(),
        started.elapsed().as_secs_f64()
    );
    let mut unexpected = Vec::new();
    let mut known = Vec::new();
    for (index, test) in tests.iter().enumerate() {
        let outcome = live.play(test).await;
        let expected_failure = KNOWN_FAILURES.iter().find(|(n, _)| *n == test.name);
        let verdict = match (&outcome.result, expected_failure) {
            (Ok(requests), None) => format!("ok ({requests} requests)"),
            (Ok(_), Some(_)) => {
                unexpected.push(format!(
                    "{}: passes now; remove it from KNOWN_FAILURES",
                    test.name
                ));
                "PASSES, but is listed as a known failure".to_owned()
            }
            (Err(e), Some((_, why))) => {
                known.push(format!(
                    "{}: {why}\n  {}",
                    test.name,
                    e.replace('\n', "\n  ")
                ));
                format!("known failure: {why}")
            }
            (Err(e), None) => {
                unexpected.push(format!("{}:\n  {}", test.name, e.replace('\n', "\n  ")));
                "FAILED".to_owned()
            }
        };
        eprintln!(
            "conformance [{:>2}/{}] {}: {verdict}, {:.1} s",
            index + 1,
            tests.len(),
            test.name,
            outcome.elapsed.as_secs_f64()
        );
    }
    eprintln!(
        "conformance: {} tests in {:.1} s; {} known failure(s){}",
        tests.len(),
        started.elapsed().as_secs_f64(),
        known.len(),
        if known.is_empty() {
            String::new()
        } else {
            format!(":\n{}", known.join("\n"))
        }
    );
    assert!(
        unexpected.is_empty(),
        "{} conformance test(s) did not go as expected:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
