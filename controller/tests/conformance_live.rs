//! The Gateway API conformance suite (`e2e/tests/conformance/`) played live:
//! this branch's `tollgate serve --config-dir` and one real Envoy for all the
//! tests, their manifests swapped in and out of the config directory one
//! after the other, every case sent through Envoy to echo backends (runner:
//! `e2e::conformance::live`, loop: `e2e::conformance::run`, shared with
//! `conformance_kubernetes.rs`, which plays the same tests through a
//! Kubernetes API server). One test function, so the tests play one at a
//! time; every port is a free one picked for the run (`--port-map`), so it
//! runs beside any other test.
//!
//! `CONFORMANCE_TESTS=HTTPRouteWeight,HTTPRouteMatching` plays only those.
//! Progress goes to stderr (`cargo test -- --nocapture` shows it as it goes).

#![allow(clippy::panic)] // a failed run should fail the test loudly

use std::path::Path;

use e2e::conformance::{run::play_suite, source::Source};

/// Tests Tollgate does not pass yet, and why. They are still played, and the
/// run fails when one of them passes, so this list only shrinks; their
/// expectations in `cases.yaml` stay upstream's.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_live() {
    let tollgate = Path::new(env!("CARGO_BIN_EXE_tollgate"));
    if let Err(e) = play_suite(tollgate, Source::Directory, KNOWN_FAILURES).await {
        panic!("{e}");
    }
}
