//! Gateway API conformance tests as data, for playing against Tollgate live
//! (`tollgate serve` + a real Envoy + in-process echo backends), in file mode
//! or through a Kubernetes API server.
//!
//! Each test re-creates one upstream test of kubernetes-sigs/gateway-api
//! (`conformance/tests/<name>.{go,yaml}`, Apache-2.0), or a seed scenario of
//! Envoy Gateway's guides, under `e2e/tests/conformance/`:
//!
//! ```text
//! base.yaml              GatewayClass, the `same-namespace` Gateway, Namespaces, backend Services
//! <TestName>/manifests.yaml   the test's own objects (more *.yaml files allowed, e.g. one a step deletes)
//! <TestName>/cases.yaml       what to send and expect ([`cases::TestSpec`])
//! ```
//!
//! A runner plays one test at a time: it starts an echo backend
//! ([`crate::echo::Echo::bind`], pod = Service name, namespace = the
//! Service's) for every [`ConformanceTest::backends`], writes
//! [`ConformanceTest::files`] into a config directory, serves it, and then
//! for each step: deletes the step's `remove` files, waits (bounded) until
//! the status and every case hold, and checks the distributions.
//! Requests go to `127.0.0.1:<check::envoy_port(request.port)>`, or, in
//! [`live`], to the free port the run serves that Gateway port on.
//!
//! The live runner plays every test with one `tollgate serve` and one Envoy;
//! its objects come from a [`source::Source`]: the config directory
//! (`controller/tests/conformance_live.rs`) or a real Kubernetes API server
//! (`controller/tests/conformance_kubernetes.rs`, where the status written
//! to the objects is checked too: [`written_status`]). Both tests share the
//! loop in [`run`].
//!
//! `cases.yaml`:
//!
//! ```yaml
//! description: what the test shows
//! upstream: conformance/tests/httproute-matching.go
//! steps:
//! - remove: [grant.yaml]             # optional: manifest files to delete first
//!   status:                          # optional: what the controller must report
//!     routes:
//!     - name: <ns>/<route>
//!       parent: <ns>/<gateway>
//!       conditions: [{type: ResolvedRefs, status: "False", reason: RefNotPermitted}]
//!       noAcceptedParents: false
//!     gateways:
//!     - {name: <ns>/<gateway>, attachedRoutes: 0, conditions: [...]}
//!   cases:
//!   - name: optional
//!     request: {host, path, method: GET, headers: {}, port: 80, scheme: http,
//!               backendSetsResponseHeaders: {}}
//!     expect:
//!       status: 200                  # default
//!       backend: infra-backend-v1    # pod (= Service name) that answers; on a 200
//!       namespace: gateway-conformance-infra
//!       request: {path, host, method, headers: {}, absentHeaders: []}   # as the backend saw it
//!       response: {headers: {}, absentHeaders: []}
//!       redirect: {scheme, host, port, path}                            # Location of a 3xx
//!       mirroredTo: [<ns>/<service>]
//!   distributions:
//!   - request: {path: /}
//!     requests: 500
//!     shares: {infra-backend-v1: 0.7, infra-backend-v2: 0.3, infra-backend-v3: 0.0}
//!     tolerance: 0.05
//! ```
//!
//! The defaults and comparisons are upstream's (see [`check`]); a timeout is
//! a case with `?delay=1s` in the path (the echo backend waits) expecting 504.

pub mod cases;
pub mod check;
pub mod live;
pub mod placeholders;
pub mod run;
pub mod source;
pub mod status;
pub mod written_status;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use cases::{Case, TestSpec};
use placeholders::Backend;

/// The file that holds a test's expectations; every other `*.yaml` in a test
/// directory is a manifest.
pub const CASES_FILE: &str = "cases.yaml";
/// The shared infrastructure, next to the test directories.
pub const BASE_FILE: &str = "base.yaml";
/// Every test has this one; others are optional.
const MAIN_MANIFEST: &str = "manifests.yaml";

/// `e2e/tests/conformance` in this checkout.
pub fn default_dir() -> PathBuf {
    crate::paths::workspace_root().join("e2e/tests/conformance")
}

/// A YAML file as shipped, placeholders and all.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub file: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct ConformanceTest {
    /// The directory name, which is the upstream test's `ShortName`.
    pub name: String,
    pub manifests: Vec<Manifest>,
    pub spec: TestSpec,
}

/// `base.yaml` and every test directory, loaded and cross-checked.
#[derive(Debug, Clone)]
pub struct Suite {
    pub base: Manifest,
    pub tests: Vec<ConformanceTest>,
}

impl Suite {
    /// Loads `dir`; every problem found is reported, one per line, each
    /// naming its file.
    pub fn load(dir: &Path) -> Result<Suite, String> {
        let base = read_manifest(&dir.join(BASE_FILE))?;
        let mut tests = Vec::new();
        let mut problems = Vec::new();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_dir())
            .collect();
        dirs.sort();
        for test_dir in dirs {
            match load_test(&test_dir, &base) {
                Ok(test) => tests.push(test),
                Err(mut e) => problems.append(&mut e),
            }
        }
        if problems.is_empty() {
            Ok(Suite { base, tests })
        } else {
            Err(problems.join("\n"))
        }
    }

    pub fn test(&self, name: &str) -> Option<&ConformanceTest> {
        self.tests.iter().find(|t| t.name == name)
    }
}

impl ConformanceTest {
    /// The Services whose echo backends this test needs (base's and its own).
    pub fn backends(&self, base: &Manifest) -> Result<BTreeSet<Backend>, String> {
        let mut all = BTreeSet::new();
        for manifest in std::iter::once(base).chain(&self.manifests) {
            all.extend(
                placeholders::backends(&manifest.text)
                    .map_err(|e| format!("{}: {e}", manifest.file))?,
            );
        }
        Ok(all)
    }

    /// The files to put in the config directory (`base.yaml` first), with
    /// every placeholder replaced by its backend's address.
    pub fn files(
        &self,
        base: &Manifest,
        addrs: &BTreeMap<Backend, SocketAddr>,
    ) -> Result<Vec<(String, String)>, String> {
        std::iter::once(base)
            .chain(&self.manifests)
            .map(|manifest| {
                placeholders::substitute(&manifest.text, addrs)
                    .map(|text| (manifest.file.clone(), text))
                    .map_err(|e| format!("{}/{}: {e}", self.name, manifest.file))
            })
            .collect()
    }

    /// Every case of every step, in order.
    pub fn cases(&self) -> impl Iterator<Item = &Case> {
        self.spec.steps.iter().flat_map(|s| &s.cases)
    }
}

fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Manifest { file, text })
}

fn load_test(dir: &Path, base: &Manifest) -> Result<ConformanceTest, Vec<String>> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cases_path = dir.join(CASES_FILE);
    let spec_text = std::fs::read_to_string(&cases_path)
        .map_err(|e| vec![format!("{}: {e}", cases_path.display())])?;
    let spec: TestSpec = serde_yaml_ng::from_str(&spec_text)
        .map_err(|e| vec![format!("{name}/{CASES_FILE}: {e}")])?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| vec![format!("{}: {e}", dir.display())])?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().is_some_and(|e| e == "yaml")
                && path.file_name().is_some_and(|n| n != CASES_FILE)
        })
        .collect();
    files.sort();
    let manifests = files
        .iter()
        .map(|path| read_manifest(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| vec![e])?;
    let test = ConformanceTest {
        name,
        manifests,
        spec,
    };
    let problems = validate(&test, base);
    if problems.is_empty() {
        Ok(test)
    } else {
        Err(problems)
    }
}

/// The minimal shape every Kubernetes object has: its kind, name and
/// namespace (to find the Services, and the namespaces to make).
#[derive(Deserialize)]
pub(crate) struct Object {
    #[serde(default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: Metadata,
}

#[derive(Default, Deserialize)]
pub(crate) struct Metadata {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}

/// Services defined in `manifest` (`default` namespace when unset).
fn services(manifest: &Manifest) -> Result<BTreeSet<Backend>, String> {
    let mut found = BTreeSet::new();
    for document in serde_yaml_ng::Deserializer::from_str(&manifest.text) {
        let object =
            Object::deserialize(document).map_err(|e| format!("{}: {e}", manifest.file))?;
        if object.kind == "Service" {
            found.insert(Backend {
                namespace: object
                    .metadata
                    .namespace
                    .unwrap_or_else(|| "default".into()),
                name: object.metadata.name,
            });
        }
    }
    Ok(found)
}

/// Cross-checks a test against its manifests and `base`: what a runner would
/// otherwise only find out half-way through.
fn validate(test: &ConformanceTest, base: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |text: String| problems.push(format!("{}: {text}", test.name));
    let file_names: BTreeSet<&str> = test.manifests.iter().map(|m| m.file.as_str()).collect();
    if !file_names.contains(MAIN_MANIFEST) {
        problem(format!("no {MAIN_MANIFEST}"));
    }
    if file_names.contains(BASE_FILE) {
        problem(format!("a test manifest may not be called {BASE_FILE}"));
    }
    let mut defined = BTreeSet::new();
    for manifest in std::iter::once(base).chain(&test.manifests) {
        match services(manifest) {
            Ok(found) => defined.extend(found),
            Err(e) => problem(e),
        }
    }
    let started = match test.backends(base) {
        Ok(backends) => backends,
        Err(e) => {
            problem(e);
            BTreeSet::new()
        }
    };
    for backend in started.difference(&defined) {
        problem(format!(
            "placeholder names {backend}, which no Service in {BASE_FILE} or the test defines"
        ));
    }
    let pods: BTreeSet<&str> = started.iter().map(|b| b.name.as_str()).collect();
    if test.spec.steps.is_empty() {
        problem("no steps".into());
    }
    let mut removed = BTreeSet::new();
    for (index, step) in test.spec.steps.iter().enumerate() {
        let at = format!("step {}", index + 1);
        if step.cases.is_empty() && step.distributions.is_empty() && step.status.is_empty() {
            problem(format!("{at} checks nothing"));
        }
        for file in &step.remove {
            if !file_names.contains(file.as_str()) || file == MAIN_MANIFEST {
                problem(format!(
                    "{at} removes {file}, which is not one of the test's other manifest files"
                ));
            } else if !removed.insert(file.as_str()) {
                problem(format!("{at} removes {file} a second time"));
            }
        }
        for (case_index, case) in step.cases.iter().enumerate() {
            let at = format!("{at} case {}", case_index + 1);
            if let Some(backend) = case.expect.backend.as_deref() {
                if !pods.contains(backend) {
                    problem(format!(
                        "{at} expects backend {backend}, which is never started"
                    ));
                }
            }
            for mirror in &case.expect.mirrored_to {
                match Backend::parse(mirror) {
                    Ok(b) if started.contains(&b) => {}
                    Ok(b) => problem(format!(
                        "{at} expects a mirror to {b}, which is never started"
                    )),
                    Err(e) => problem(format!("{at} mirroredTo: {e}")),
                }
            }
        }
        for distribution in &step.distributions {
            let sum: f64 = distribution.shares.values().sum();
            if (sum - 1.0).abs() > 1e-9 {
                problem(format!("{at}: distribution shares add up to {sum}, not 1"));
            }
            if distribution.requests == 0 {
                problem(format!("{at}: a distribution of 0 requests"));
            }
            for backend in distribution.shares.keys() {
                if !pods.contains(backend.as_str()) {
                    problem(format!(
                        "{at}: distribution names {backend}, which is never started"
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Suite {
        Suite::load(&default_dir()).unwrap_or_else(|e| panic!("the shipped suite:\n{e}"))
    }

    /// Loopback addresses for every backend, as a runner would have them.
    fn dummy_addrs(backends: &BTreeSet<Backend>) -> BTreeMap<Backend, SocketAddr> {
        backends
            .iter()
            .zip(20000u16..)
            .map(|(b, port)| (b.clone(), SocketAddr::from(([127, 0, 0, 1], port))))
            .collect()
    }

    #[test]
    fn every_shipped_test_loads_and_cross_checks() {
        let suite = shipped();
        assert_eq!(suite.tests.len(), 30, "test directories");
        for name in [
            "HTTPRouteMatching",
            "HTTPRouteReferenceGrant",
            "HTTPRouteWeight",
            "GuideHTTPRouting",
        ] {
            assert!(suite.test(name).is_some(), "{name} is shipped");
        }
        let grant = suite.test("HTTPRouteReferenceGrant").expect("loaded");
        assert_eq!(grant.spec.steps.len(), 2);
        assert_eq!(grant.spec.steps[1].remove, ["reference-grant.yaml"]);
    }

    #[test]
    fn every_shipped_test_renders_to_yaml_without_placeholders() {
        let suite = shipped();
        for test in &suite.tests {
            let backends = test
                .backends(&suite.base)
                .unwrap_or_else(|e| panic!("{}: {e}", test.name));
            assert!(!backends.is_empty(), "{} starts no backend", test.name);
            let files = test
                .files(&suite.base, &dummy_addrs(&backends))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(files[0].0, BASE_FILE);
            for (file, text) in &files {
                assert!(
                    !text.contains("{{"),
                    "{}/{file} kept a placeholder",
                    test.name
                );
                for document in serde_yaml_ng::Deserializer::from_str(text) {
                    serde_yaml_ng::Value::deserialize(document)
                        .unwrap_or_else(|e| panic!("{}/{file}: {e}", test.name));
                }
            }
        }
    }

    #[test]
    fn base_backends_are_the_conformance_services() {
        let suite = shipped();
        let names: Vec<String> = placeholders::backends(&suite.base.text)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(Backend::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "gateway-conformance-app-backend/app-backend-v1",
                "gateway-conformance-app-backend/app-backend-v2",
                "gateway-conformance-infra/infra-backend-v1",
                "gateway-conformance-infra/infra-backend-v2",
                "gateway-conformance-infra/infra-backend-v3",
                "gateway-conformance-web-backend/web-backend",
            ]
        );
    }

    /// A suite directory with `base.yaml` and one test `T` made of `files`.
    fn suite_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = "kind: Service\nmetadata: {name: svc, namespace: ns, annotations: {a: \"{{backend:ns/svc}}\"}}\n";
        std::fs::write(dir.path().join(BASE_FILE), base).expect("write base");
        std::fs::create_dir(dir.path().join("T")).expect("mkdir");
        for (name, text) in files {
            std::fs::write(dir.path().join("T").join(name), text).expect("write");
        }
        dir
    }

    fn load_error(files: &[(&str, &str)]) -> String {
        let dir = suite_dir(files);
        match Suite::load(dir.path()) {
            Ok(_) => panic!("loaded"),
            Err(e) => e,
        }
    }

    const ROUTE: &str = "kind: HTTPRoute\nmetadata: {name: r, namespace: ns}\n";

    #[test]
    fn a_minimal_test_loads() {
        let dir = suite_dir(&[
            ("manifests.yaml", ROUTE),
            (
                "cases.yaml",
                "description: d\nupstream: u\nsteps:\n- cases:\n  - request: {path: /}\n    expect: {backend: svc}\n",
            ),
        ]);
        let suite = Suite::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let test = suite.test("T").expect("T");
        let case = test.cases().next().expect("one case");
        assert_eq!(
            (case.request.method.as_str(), case.request.port),
            ("GET", 80)
        );
        assert_eq!(
            test.backends(&suite.base).map(|b| b.len()),
            Ok(1),
            "base's backend"
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = load_error(&[
            ("manifests.yaml", ROUTE),
            (
                "cases.yaml",
                "description: d\nupstream: u\nsteps:\n- cases:\n  - request: {path: /, hedaers: {}}\n",
            ),
        ]);
        assert!(err.starts_with("T/cases.yaml: "), "{err}");
        assert!(err.contains("unknown field `hedaers`"), "{err}");
    }

    #[test]
    fn cross_check_problems_are_all_reported() {
        let err = load_error(&[
            ("manifests.yaml", "a: \"{{backend:ns/missing}}\"\n"),
            (
                "cases.yaml",
                "description: d\nupstream: u\nsteps:\n- cases:\n  - request: {path: /}\n    expect: {backend: nobody, mirroredTo: [ns/gone]}\n- remove: [manifests.yaml]\n- remove: [other.yaml]\n  distributions:\n  - request: {path: /}\n    requests: 10\n    shares: {svc: 0.5}\n    tolerance: 0.1\n",
            ),
        ]);
        let expected = [
            "T: placeholder names ns/missing, which no Service in base.yaml or the test defines",
            "T: step 1 case 1 expects backend nobody, which is never started",
            "T: step 1 case 1 expects a mirror to ns/gone, which is never started",
            "T: step 2 checks nothing",
            "T: step 2 removes manifests.yaml, which is not one of the test's other manifest files",
            "T: step 3 removes other.yaml, which is not one of the test's other manifest files",
            "T: step 3: distribution shares add up to 0.5, not 1",
        ];
        assert_eq!(err, expected.join("\n"));
    }

    #[test]
    fn a_test_needs_its_main_manifest() {
        let err = load_error(&[
            ("route.yaml", ROUTE),
            (
                "cases.yaml",
                "description: d\nupstream: u\nsteps:\n- cases:\n  - request: {path: /}\n",
            ),
        ]);
        assert_eq!(err, "T: no manifests.yaml");
    }
}
