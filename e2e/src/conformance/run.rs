//! The loop both live conformance tests share (`controller/tests/
//! conformance_live.rs` with the config directory, `conformance_kubernetes.rs`
//! with the API server): pick the tests, start the [`Live`] stage on a
//! [`Source`], play every test once, print progress to stderr, and hold the
//! outcome to the caller's known failures.
//!
//! A known failure is still played, and the run fails when it passes, so a
//! list of them only shrinks; a name in it that is no test of the suite is an
//! error too (a typo would hide nothing, but would never shrink either).
//!
//! `CONFORMANCE_TESTS=HTTPRouteWeight,HTTPRouteMatching` plays only those.

use std::path::Path;
use std::time::Instant;

use super::live::Live;
use super::source::Source;
use super::{default_dir, ConformanceTest, Suite};

/// The environment variable naming the tests to play (comma-separated).
pub const ONLY: &str = "CONFORMANCE_TESTS";

/// Plays the shipped suite (or the tests [`ONLY`] names) with `tollgate`
/// (the binary) on `source`; every test that did not go as
/// `known_failures` (name, why) says, one per paragraph.
pub async fn play_suite(
    tollgate: &Path,
    source: Source,
    known_failures: &[(&str, &str)],
) -> Result<(), String> {
    let started = Instant::now();
    let suite = Suite::load(&default_dir()).map_err(|e| format!("the suite:\n{e}"))?;
    for (name, _) in known_failures {
        if suite.test(name).is_none() {
            return Err(format!("KNOWN_FAILURES names {name}, which is no test"));
        }
    }
    let only = std::env::var(ONLY).ok();
    let tests = select(&suite, only.as_deref())?;
    let through = source.describe();
    let mut live = Live::start(tollgate, &suite, source)
        .await
        .map_err(|e| format!("starting the live stage: {e:#}"))?;
    eprintln!(
        "conformance: {} tests through {through}, Gateway ports served on {:?} (Gateway port → Envoy port); ready after {:.1} s",
        tests.len(),
        live.ports(),
        started.elapsed().as_secs_f64()
    );
    let mut unexpected = Vec::new();
    let mut known = Vec::new();
    for (index, test) in tests.iter().enumerate() {
        let outcome = live.play(test).await;
        let expected_failure = known_failures.iter().find(|(n, _)| *n == test.name);
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
        "conformance: {} tests through {through} in {:.1} s; {} known failure(s){}",
        tests.len(),
        started.elapsed().as_secs_f64(),
        known.len(),
        if known.is_empty() {
            String::new()
        } else {
            format!(":\n{}", known.join("\n"))
        }
    );
    if unexpected.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} conformance test(s) did not go as expected:\n{}",
            unexpected.len(),
            unexpected.join("\n")
        ))
    }
}

/// The tests `only` (comma-separated names) names, or all when it is unset
/// or blank; an unknown name is an error.
pub fn select<'a>(
    suite: &'a Suite,
    only: Option<&str>,
) -> Result<Vec<&'a ConformanceTest>, String> {
    let Some(only) = only.filter(|v| !v.trim().is_empty()) else {
        return Ok(suite.tests.iter().collect());
    };
    let names: Vec<&str> = only.split(',').map(str::trim).collect();
    if let Some(name) = names.iter().find(|n| suite.test(n).is_none()) {
        return Err(format!("{ONLY}: no test {name}"));
    }
    Ok(suite
        .tests
        .iter()
        .filter(|t| names.contains(&t.name.as_str()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tests_to_play_are_all_or_those_named() {
        let suite = Suite::load(&default_dir()).unwrap_or_else(|e| panic!("{e}"));
        let names = |only| {
            select(&suite, only)
                .map(|tests| tests.iter().map(|t| t.name.clone()).collect::<Vec<_>>())
        };
        assert_eq!(names(None).map(|n| n.len()), Ok(30));
        assert_eq!(names(Some(" ")).map(|n| n.len()), Ok(30));
        assert_eq!(
            names(Some("HTTPRouteWeight, GuideHTTPRouting")),
            Ok(vec![
                "GuideHTTPRouting".to_owned(),
                "HTTPRouteWeight".to_owned()
            ])
        );
        assert_eq!(
            names(Some("HTTPRouteWeight,Nope")),
            Err("CONFORMANCE_TESTS: no test Nope".to_owned())
        );
    }
}
