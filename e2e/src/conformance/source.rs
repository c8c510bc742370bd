//! Where the live runner's objects come from, and how they change between
//! tests. One runner ([`super::live`]) plays the same tests with the same
//! checks on either source:
//!
//! - [`Source::Directory`]: `tollgate serve --config-dir`. `base.yaml` and
//!   the sentinel are files of the directory; a test's manifests are written
//!   to `tests/<TestName>/` and that directory is deleted when the next test
//!   starts.
//! - [`Source::Kubernetes`]: `tollgate serve --provider kubernetes
//!   --provision none` watching a real API server ([`KubeApiServer`]), with
//!   the runner's own Envoy from `tollgate bootstrap` as in file mode. The
//!   same files (placeholders substituted) are kept in a folder of the
//!   runner's and go through `kubectl apply --server-side` (field manager
//!   [`FIELD_MANAGER`]) and `kubectl delete` (which returns once the objects
//!   are gone: nothing here has finalizers). Namespaces, Services and
//!   Secrets are core/v1, which the test server serves only through its
//!   stand-in proxy ([`crate::kube_stand_in`]); Services keep the
//!   `tollgate.dev/static-endpoints` annotation naming the echo backends,
//!   and Secrets their base64 `data`.
//!
//! On the API server, a Namespace is created before anything in it, as a
//! real cluster's NamespaceLifecycle admission requires (the test server
//! runs without that plugin, so nothing would catch the omission): the
//! Namespaces `base.yaml` defines precede the objects in them in its one
//! `kubectl apply` (which keeps the file's order), and every other
//! namespace the suite or the sentinel uses (`default`, the runner's own)
//! is applied first ([`undefined_namespaces`]).
//!
//! **Knowing serve caught up.** The runner's sentinel is applied last, by a
//! separate kubectl run after the test's objects were accepted (and the
//! previous test's deleted). Serve keeps one watch per kind, and watches of
//! different kinds have no order between them: the sentinel HTTPRoute
//! proves that every HTTPRoute change before it arrived (one watch, in
//! resourceVersion order); a Gateway, Service, Secret or ReferenceGrant
//! written before it is only expected to have arrived by then, a whole
//! kubectl run (0.1–0.3 s measured here) plus serve's debounce later,
//! against watch latencies of milliseconds on loopback. Status checks and
//! cases are polled until they hold, so a late object would cost time; a
//! case expecting a failure could in principle pass on the state before it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize as _;

use super::Object;
use tempfile::TempDir;

use crate::gateway::{Gateway, Options};
use crate::kube_apiserver::KubeApiServer;

/// The field manager the runner applies with.
pub const FIELD_MANAGER: &str = "tollgate-conformance";
/// Where the sentinel lives, in either source's folder.
const SENTINEL_FILE: &str = "runner/sentinel.yaml";
const BASE_FILE: &str = "base.yaml";
const NAMESPACES_FILE: &str = "runner/namespaces.yaml";
const TESTS_DIR: &str = "tests";
/// `kubectl apply` as the runner runs it, before the file or folder.
const APPLY: [&str; 5] = [
    "apply",
    "--server-side",
    "--field-manager",
    FIELD_MANAGER,
    "-f",
];

/// Where the objects come from.
pub enum Source {
    /// The config directory of `tollgate serve --config-dir`.
    Directory,
    /// A Kubernetes API server `tollgate serve --provider kubernetes` watches.
    Kubernetes(Box<Cluster>),
}

/// The API server and the folder of files the runner applies from.
pub struct Cluster {
    api: KubeApiServer,
    files: TempDir,
}

impl Source {
    /// The API server `api`, objects applied from a temporary folder.
    pub fn kubernetes(api: KubeApiServer) -> Result<Source> {
        let files = tempfile::Builder::new()
            .prefix("tollgate-conformance-")
            .tempdir()?;
        Ok(Source::Kubernetes(Box::new(Cluster { api, files })))
    }

    /// What the objects go through, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Source::Directory => "the config directory",
            Source::Kubernetes(_) => "the API server",
        }
    }

    /// The API server, when the objects go through one.
    pub fn api(&self) -> Option<&KubeApiServer> {
        match self {
            Source::Directory => None,
            Source::Kubernetes(cluster) => Some(&cluster.api),
        }
    }

    /// Puts `base` and `sentinel` in place (and, on the API server, every
    /// namespace of `all` that `base` does not define, first), then starts
    /// `tollgate serve` on them and its Envoy.
    pub(super) async fn serve(
        &self,
        tollgate: &Path,
        base: &str,
        sentinel: &str,
        all: &[&str],
        options: Options,
    ) -> Result<Gateway> {
        match self {
            Source::Directory => {
                Gateway::start_with(
                    tollgate,
                    &[(BASE_FILE, base), (SENTINEL_FILE, sentinel)],
                    &options,
                )
                .await
            }
            Source::Kubernetes(cluster) => {
                let namespaces = undefined_namespaces(all)?;
                if !namespaces.is_empty() {
                    cluster.apply(NAMESPACES_FILE, &namespace_objects(&namespaces))?;
                }
                cluster.apply(BASE_FILE, base)?;
                cluster.apply(SENTINEL_FILE, sentinel)?;
                let options = Options {
                    kubeconfig: Some(cluster.api.kubeconfig.clone()),
                    serve_args: ["--provision", "none"].map(String::from).into(),
                    ..options
                };
                Gateway::start_with(tollgate, &[], &options).await
            }
        }
    }

    /// Puts test `test`'s manifests (`(file, text)`, placeholders substituted).
    pub(super) fn put_test(
        &self,
        gw: &Gateway,
        test: &str,
        files: &[(String, String)],
    ) -> Result<()> {
        match self {
            Source::Directory => {
                for (file, text) in files {
                    gw.write(&test_file(test, file), text)?;
                }
                Ok(())
            }
            Source::Kubernetes(cluster) => {
                for (file, text) in files {
                    cluster.write(&test_file(test, file), text)?;
                }
                cluster.kubectl(&APPLY, &test_dir(test))
            }
        }
    }

    /// Removes every object of test `test` that is still in place.
    pub(super) fn remove_test(&self, gw: &Gateway, test: &str) -> Result<()> {
        match self {
            Source::Directory => gw.remove_dir(&test_dir(test)),
            Source::Kubernetes(cluster) => {
                cluster.kubectl(&["delete", "--ignore-not-found", "-f"], &test_dir(test))?;
                let dir = cluster.path(&test_dir(test));
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
            }
        }
    }

    /// Removes the objects of one manifest file of test `test` (a step's `remove`).
    pub(super) fn remove_file(&self, gw: &Gateway, test: &str, file: &str) -> Result<()> {
        let path = test_file(test, file);
        match self {
            Source::Directory => gw.remove(&path),
            Source::Kubernetes(cluster) => {
                cluster.kubectl(&["delete", "-f"], &path)?;
                let full = cluster.path(&path);
                std::fs::remove_file(&full).with_context(|| format!("removing {}", full.display()))
            }
        }
    }

    /// Replaces the sentinel.
    pub(super) fn put_sentinel(&self, gw: &Gateway, text: &str) -> Result<()> {
        match self {
            Source::Directory => gw.write(SENTINEL_FILE, text),
            Source::Kubernetes(cluster) => cluster.apply(SENTINEL_FILE, text),
        }
    }

    /// Whether a load error of serve's comes from test `test`'s objects. A
    /// file names its path; an object from the API server only its uid, and
    /// when a test plays, every other object (base, sentinel) loads.
    pub(super) fn is_from_test(&self, test: &str, error: &str) -> bool {
        match self {
            Source::Directory => error.contains(&format!("{}/", test_dir(test))),
            Source::Kubernetes(_) => true,
        }
    }
}

impl Cluster {
    fn path(&self, relative: &str) -> PathBuf {
        self.files.path().join(relative)
    }

    fn write(&self, relative: &str, text: &str) -> Result<()> {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Writes `relative` and applies it server-side.
    fn apply(&self, relative: &str, text: &str) -> Result<()> {
        self.write(relative, text)?;
        self.kubectl(&APPLY, relative)
    }

    /// kubectl `args` followed by the path of `relative`.
    fn kubectl(&self, args: &[&str], relative: &str) -> Result<()> {
        let path = self.path(relative).display().to_string();
        let mut all = args.to_vec();
        all.push(&path);
        self.api.kubectl_ok(&all).map(drop)
    }
}

fn test_dir(test: &str) -> String {
    format!("{TESTS_DIR}/{test}")
}

fn test_file(test: &str, file: &str) -> String {
    format!("{TESTS_DIR}/{test}/{file}")
}

/// The namespaces objects in `texts` are in (`default` when unset, for a
/// namespaced kind) that no Namespace in them defines.
pub fn undefined_namespaces(texts: &[&str]) -> Result<BTreeSet<String>> {
    let mut used = BTreeSet::new();
    let mut defined = BTreeSet::new();
    for text in texts {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let object = Object::deserialize(document)?;
            match object.kind.as_str() {
                "" => {}
                "Namespace" => {
                    defined.insert(object.metadata.name);
                }
                "GatewayClass" => {}
                kind => {
                    let namespace = object
                        .metadata
                        .namespace
                        .unwrap_or_else(|| "default".into());
                    if namespace.is_empty() {
                        bail!("a {kind} with an empty namespace");
                    }
                    used.insert(namespace);
                }
            }
        }
    }
    Ok(used.difference(&defined).cloned().collect())
}

/// One Namespace object per name.
fn namespace_objects(names: &BTreeSet<String>) -> String {
    let mut text = String::from(
        "# Namespaces the suite uses but does not define (a real cluster has `default`).\n",
    );
    for name in names {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_used_but_not_defined_are_found() {
        let texts = [
            "kind: GatewayClass\nmetadata: {name: c}\n---\nkind: Namespace\nmetadata: {name: infra}\n---\nkind: Service\nmetadata: {name: s, namespace: infra}\n",
            "kind: HTTPRoute\nmetadata: {name: r}\n---\nkind: Gateway\nmetadata: {name: g, namespace: runner}\n",
        ];
        let found = undefined_namespaces(&texts).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["default", "runner"]);
    }

    #[test]
    fn the_shipped_suite_needs_default_beside_base_s_namespaces() {
        let suite = super::super::Suite::load(&super::super::default_dir())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut texts = vec![suite.base.text.as_str()];
        for test in &suite.tests {
            texts.extend(test.manifests.iter().map(|m| m.text.as_str()));
        }
        let found = undefined_namespaces(&texts).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["default"]);
        let objects = namespace_objects(&BTreeSet::from(["default".to_owned()]));
        assert!(
            objects.ends_with("kind: Namespace\nmetadata: {name: default}\n"),
            "{objects}"
        );
    }
}
