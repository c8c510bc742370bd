//! The live conformance corpus (`e2e/tests/conformance/`, the 30 tests
//! `conformance_live.rs` plays from a config directory) replayed through a
//! Kubernetes API server: every test's manifests applied with `kubectl apply
//! --server-side`, the previous test's deleted with `kubectl delete`, read by
//! `tollgate serve --provider kubernetes --provision none`, which serves the
//! runner's own Envoy (from `tollgate bootstrap`) and writes status back to
//! the objects. Same runner, loop and checks as the file-mode test
//! (`e2e::conformance::{live, run}`); here each step's status is checked in
//! serve's `/status` and in the status written to the Gateways and
//! HTTPRoutes (`e2e::conformance::written_status`).
//!
//! Real: etcd and the API server (built from Debian's sources), the Gateway
//! API v1.6.1 standard CRDs (defaulting, CEL validation), kubectl
//! (server-side apply, strict field validation), Envoy, this branch's
//! `tollgate serve` with its leader election and status writer.
//! Stand-ins (`e2e::kube_stand_in`): core/v1 (Namespace, Service, Secret)
//! as CRDs behind a proxy at the real URLs, without core validation or
//! defaulting; the leader Lease as a CRD; and the Pods: the Services name
//! in-process echo backends through the `tollgate.dev/static-endpoints`
//! annotation, as in file mode (no EndpointSlices, nothing runs Pods).
//!
//! `CONFORMANCE_TESTS=HTTPRouteWeight,HTTPRouteMatching` plays only those.
//! Progress goes to stderr (`cargo test -- --nocapture` shows it as it goes).

#![allow(clippy::panic)] // a failed run should fail the test loudly

use std::path::Path;
use std::time::Instant;

use e2e::conformance::{run::play_suite, source::Source};
use e2e::kube_apiserver::KubeApiServer;

/// Tests that fail only through the API server, and why. They are still
/// played, and the run fails when one of them passes, so this list only
/// shrinks; their expectations in `cases.yaml` stay upstream's.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_through_the_api_server() {
    let started = Instant::now();
    let api = KubeApiServer::start().unwrap_or_else(|e| panic!("the API server: {e:#}"));
    eprintln!(
        "conformance: API server with the Gateway API CRDs up after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let source = Source::kubernetes(api).unwrap_or_else(|e| panic!("{e:#}"));
    let tollgate = Path::new(env!("CARGO_BIN_EXE_tollgate"));
    let result = play_suite(tollgate, source, KNOWN_FAILURES).await;
    eprintln!(
        "conformance: {:.1} s in all, the API server's start included",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
