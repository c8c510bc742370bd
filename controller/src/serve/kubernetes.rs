//! `serve --provider kubernetes`: the objects of a Kubernetes API server, as
//! a [`Provider`]. One watch per kind Tollgate reads (list, then watch from
//! the list's resourceVersion, resumed or relisted after a disconnect, with
//! kube-runtime's backoff) keeps a cache of that kind; a load reads the
//! caches through the same typed parse as a directory (`api_objects`), so an
//! object the translator cannot read is refused on its own, with its uid.
//!
//! A load waits for every kind's first list: serving routes before their
//! policies are known could serve them without their JWT check. A kind the
//! server does not serve (its CRD is not installed: 404) counts as empty,
//! with a warning; any other failure of a first list (403 from RBAC, the
//! server down) fails the load, which keeps the last good configuration
//! serving and is retried. Once listed, a kind's objects stay as last seen
//! while its watch recovers (the informer's rule), a 404 included: a
//! restarting API server answers 404 for every CRD until it has loaded
//! them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures_util::StreamExt as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::provider::Provider;
use crate::resources::loader::LoadError;
use crate::resources::policies::PolicyKind;
use crate::resources::{api_objects, Resources};

/// Quiet time after the last change before a reload (as for a directory).
const SETTLE: Duration = Duration::from_millis(100);
/// Objects that never stop changing are still reloaded this often.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// `(group, version, kind, plural)` of every kind Tollgate reads.
pub fn kinds() -> Vec<(&'static str, &'static str, &'static str, String)> {
    let mut kinds = vec![
        (
            "gateway.networking.k8s.io",
            "v1",
            "GatewayClass",
            "gatewayclasses".to_owned(),
        ),
        (
            "gateway.networking.k8s.io",
            "v1",
            "Gateway",
            "gateways".to_owned(),
        ),
        (
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
            "httproutes".to_owned(),
        ),
        (
            "gateway.networking.k8s.io",
            "v1",
            "GRPCRoute",
            "grpcroutes".to_owned(),
        ),
        (
            "gateway.networking.k8s.io",
            "v1beta1",
            "ReferenceGrant",
            "referencegrants".to_owned(),
        ),
        ("", "v1", "Namespace", "namespaces".to_owned()),
        ("", "v1", "Service", "services".to_owned()),
        ("", "v1", "Secret", "secrets".to_owned()),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices".to_owned(),
        ),
    ];
    for kind in PolicyKind::ALL {
        kinds.push((kind.group(), "v1alpha1", kind.name(), kind.plural()));
    }
    kinds
}

/// What one kind's watch has seen.
#[derive(Debug)]
enum Cache {
    /// Its first list is not complete yet; the last error, if it failed.
    Listing(Option<String>),
    /// Every object of the kind, by `namespace/name`, apiVersion and kind set.
    Listed(BTreeMap<String, Value>),
    /// The server does not serve the kind (404): no objects.
    NotServed,
}

/// One cache per kind, in the order of [`kinds`].
type Caches = Arc<Mutex<Vec<Cache>>>;

/// The objects of an API server, kept current by one watch per kind.
pub struct Kubernetes {
    server: String,
    objects: ApiObjects,
    changed: Arc<Notify>,
    /// Whether the first load was made yet (it waits for every first list).
    loaded_once: bool,
}

impl Kubernetes {
    /// Connects with the kubeconfig at `kubeconfig` (or `KUBECONFIG`, or
    /// the in-cluster service account) and starts the watches.
    pub async fn start(kubeconfig: Option<&std::path::Path>) -> Result<Kubernetes> {
        let config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(
                    file,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))?
            }
            None => kube::Config::infer().await.context(
                "no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster)",
            )?,
        };
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).context("creating the Kubernetes client")?;
        let resources: Vec<ApiResource> = kinds()
            .into_iter()
            .map(|(group, version, kind, plural)| {
                ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk(group, version, kind),
                    &plural,
                )
            })
            .collect();
        let caches = Arc::new(Mutex::new(
            resources
                .iter()
                .map(|_| Cache::Listing(None))
                .collect::<Vec<_>>(),
        ));
        let changed = Arc::new(Notify::new());
        for (index, resource) in resources.iter().enumerate() {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
            tokio::spawn(watch_kind(
                api,
                client.clone(),
                resource.clone(),
                index,
                caches.clone(),
                changed.clone(),
            ));
        }
        let provider = Kubernetes {
            server,
            objects: ApiObjects {
                client,
                caches,
                resources: Arc::new(resources),
            },
            changed,
            loaded_once: false,
        };
        provider.wait_for_lists(FIRST_LISTS).await;
        Ok(provider)
    }

    /// The watched objects and the client, for writing status back.
    pub fn objects(&self) -> ApiObjects {
        self.objects.clone()
    }

    /// Waits until every kind is listed (or known not served), at most `limit`:
    /// a load before then fails, and is retried.
    async fn wait_for_lists(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let listing = {
                let caches = self
                    .objects
                    .caches
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                caches.iter().any(|c| matches!(c, Cache::Listing(_)))
            };
            if !listing {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The objects the watches keep, and a client to write to the server: what
/// the status writer needs. Clones share the caches.
#[derive(Clone)]
pub struct ApiObjects {
    client: kube::Client,
    caches: Caches,
    /// Each kind's API, in the order of [`kinds`] (and of the caches).
    resources: Arc<Vec<ApiResource>>,
}

impl ApiObjects {
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Every object of `kind` as last seen (none before its first list, or
    /// when the server does not serve it).
    pub fn all(&self, kind: &str) -> Vec<Value> {
        let caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        match self.index(kind).and_then(|i| caches.get(i)) {
            Some(Cache::Listed(objects)) => objects.values().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Object `namespace/name` of `kind` as last seen (`namespace` empty for
    /// a cluster-scoped kind).
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        match caches.get(self.index(kind)?)? {
            Cache::Listed(objects) => objects.get(&format!("{namespace}/{name}")).cloned(),
            _ => None,
        }
    }

    /// Whether object `namespace/name` of `kind` is there, as last seen.
    pub fn contains(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        match self.index(kind).and_then(|i| caches.get(i)) {
            Some(Cache::Listed(objects)) => objects.contains_key(&format!("{namespace}/{name}")),
            _ => false,
        }
    }

    /// The API of `kind` in `namespace` (all namespaces, or a cluster-scoped
    /// kind, when empty).
    pub fn api(&self, kind: &str, namespace: &str) -> Option<Api<DynamicObject>> {
        let resource = self.resources.get(self.index(kind)?)?;
        Some(if namespace.is_empty() {
            Api::all_with(self.client.clone(), resource)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, resource)
        })
    }

    fn index(&self, kind: &str) -> Option<usize> {
        self.resources.iter().position(|r| r.kind == kind)
    }
}

/// How long start-up waits for the first lists.
const FIRST_LISTS: Duration = Duration::from_secs(30);

/// Keeps cache `index` current from a watch of `api` until the process ends.
async fn watch_kind(
    api: Api<DynamicObject>,
    client: kube::Client,
    resource: ApiResource,
    index: usize,
    caches: Caches,
    changed: Arc<Notify>,
) {
    let mut events = watcher::watcher(api, watcher::Config::default())
        .backoff(Retry::backoff())
        .boxed();
    let mut listing: BTreeMap<String, Value> = BTreeMap::new();
    while let Some(event) = events.next().await {
        // A 404 for a kind never listed: is it not installed, or is the
        // server still loading its CRD (after a restart)?
        let listed = || {
            let caches = caches.lock().unwrap_or_else(PoisonError::into_inner);
            matches!(caches.get(index), Some(Cache::Listed(_)))
        };
        let not_served = match &event {
            Err(e) if is_not_served(e) && !listed() => not_installed(&client, &resource).await,
            _ => false,
        };
        let mut caches = caches.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(cache) = caches.get_mut(index) else {
            return;
        };
        let touched = match event {
            Ok(Event::Init) => {
                listing.clear();
                false
            }
            Ok(Event::InitApply(object)) => {
                if let Some((key, value)) = entry(object, &resource) {
                    listing.insert(key, value);
                }
                false
            }
            Ok(Event::InitDone) => {
                *cache = Cache::Listed(std::mem::take(&mut listing));
                true
            }
            Ok(Event::Apply(object)) => match (cache, entry(object, &resource)) {
                (Cache::Listed(objects), Some((key, value))) => {
                    objects.insert(key, value);
                    true
                }
                _ => false,
            },
            Ok(Event::Delete(object)) => match (cache, entry(object, &resource)) {
                (Cache::Listed(objects), Some((key, _))) => objects.remove(&key).is_some(),
                _ => false,
            },
            // Only a kind never listed, whose CRD does not exist, reads as
            // not served: a server that restarts answers 404 for every CRD
            // until it has loaded them, and reading that as "none" would
            // serve routes without their policies. (A CRD deleted for real
            // deletes its objects first, which the watch reports.)
            Err(_) if not_served => {
                let first = !matches!(cache, Cache::NotServed);
                if first {
                    tracing::warn!(
                        kind = resource.kind,
                        "the API server does not serve {}: none are read",
                        resource.kind
                    );
                }
                *cache = Cache::NotServed;
                first
            }
            Err(e) => {
                tracing::warn!(kind = resource.kind, "watching {}: {e}", resource.kind);
                match cache {
                    Cache::Listing(last) => *last = Some(e.to_string()),
                    Cache::Listed(_) | Cache::NotServed => {}
                }
                false
            }
        };
        drop(caches);
        if touched {
            changed.notify_one();
        }
    }
}

/// How a failed watch is retried: 0.5 s, then twice as long each time, at
/// most [`RETRY_AT_MOST`] apart (kube-runtime's default goes up to 30 s: a CRD
/// installed after the controller started, its kind not served until then,
/// is read within 5 s here); from 0.5 s again after two quiet minutes
/// (kube-runtime's `ResetTimerBackoff`, as its default does).
struct Retry {
    next: Duration,
}

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_AT_MOST: Duration = Duration::from_secs(5);

impl Retry {
    fn backoff() -> ResetTimerBackoff<Retry> {
        ResetTimerBackoff::new(Retry { next: RETRY_FIRST }, Duration::from_secs(120))
    }
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now * 2).min(RETRY_AT_MOST);
        Some(now)
    }
}

impl Backoff for Retry {
    fn reset(&mut self) {
        self.next = RETRY_FIRST;
    }
}

/// Whether a watch failed because the server has no such resource (its CRD
/// is not installed, or its group not served).
fn is_not_served(error: &watcher::Error) -> bool {
    let status = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        _ => return false,
    };
    // A server that does not serve a group at all may answer its path with
    // some other JSON than a `Status` (the root's path list), which reads as
    // a Status with no code and no message.
    matches!(status, kube::Error::Api(response)
        if response.code == 404 || (response.code == 0 && response.message.is_empty()))
}

/// Whether a kind answering 404 is not installed: its CRD does not exist
/// (a 404 for it, when it does, is the server still loading it after a
/// restart). A core kind is never a CRD. When the CRD cannot be read (the
/// server down, RBAC without `get` on customresourcedefinitions), it is not
/// known to be absent: the kind stays unlisted and the load waits, rather
/// than serve routes without policies that may exist.
async fn not_installed(client: &kube::Client, resource: &ApiResource) -> bool {
    if resource.group.is_empty() {
        return true;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("{}.{}", resource.plural, resource.group);
    match crds.get_opt(&name).await {
        Ok(found) => found.is_none(),
        Err(e) => {
            tracing::warn!(
                kind = resource.kind,
                "{} answers 404 and CustomResourceDefinition {name} cannot be read ({e}): waiting",
                resource.kind
            );
            false
        }
    }
}

/// `object` as the JSON the loader reads (list items may lack apiVersion and
/// kind), keyed `namespace/name`.
fn entry(object: DynamicObject, resource: &ApiResource) -> Option<(String, Value)> {
    let key = format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or(""),
        object.metadata.name.as_deref()?
    );
    let mut value = serde_json::to_value(&object).ok()?;
    let map = value.as_object_mut()?;
    map.insert(
        "apiVersion".to_owned(),
        Value::String(resource.api_version.clone()),
    );
    map.insert("kind".to_owned(), Value::String(resource.kind.clone()));
    Some((key, value))
}

impl Provider for Kubernetes {
    fn describe(&self) -> String {
        format!("Kubernetes API server {}", self.server)
    }

    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        let changed = self.changed.clone();
        async move {
            changed.notified().await;
            // Debounced: one reload after a burst settles.
            let started = Instant::now();
            loop {
                let settle = tokio::time::sleep(SETTLE);
                tokio::select! {
                    () = changed.notified() => {
                        if started.elapsed() >= MAX_WAIT {
                            return;
                        }
                    }
                    () = settle => return,
                }
            }
        }
    }

    fn load(&mut self) -> Result<Resources, LoadError> {
        let caches = self
            .objects
            .caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let problems: Vec<String> = caches
            .iter()
            .zip(self.objects.resources.iter())
            .filter_map(|(cache, resource)| {
                let kind = &resource.kind;
                match cache {
                    Cache::Listing(None) => Some(format!("{kind}: not listed yet")),
                    Cache::Listing(Some(why)) => Some(format!("{kind}: listing failed: {why}")),
                    Cache::Listed(_) | Cache::NotServed => None,
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(LoadError {
                problems,
                transient: true,
            });
        }
        let mut resources = Resources::default();
        for cache in caches.iter() {
            if let Cache::Listed(objects) = cache {
                for value in objects.values() {
                    api_objects::add(value.clone(), &mut resources);
                }
            }
        }
        drop(caches);
        if !self.loaded_once {
            self.loaded_once = true;
            tracing::info!("every kind listed: the first load");
        }
        Ok(resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_watch_is_retried_at_most_five_seconds_apart() {
        let delays: Vec<Duration> = Retry::backoff().take(6).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 5000, 5000].map(Duration::from_millis)
        );
    }

    #[test]
    fn every_kind_has_its_api_path_and_policies_their_plurals() {
        let kinds = kinds();
        assert_eq!(kinds.len(), 15);
        let plurals: Vec<&str> = kinds.iter().map(|(_, _, _, p)| p.as_str()).collect();
        for plural in [
            "httproutes",
            "referencegrants",
            "endpointslices",
            "ratelimitpolicies",
            "jwtpolicies",
            "backendtrafficpolicies",
            "securitypolicies",
        ] {
            assert!(plurals.contains(&plural), "{plural} in {plurals:?}");
        }
    }

    #[test]
    fn a_listed_object_gets_its_api_version_and_kind_and_is_keyed_by_namespace_and_name() {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Service"),
            "services",
        );
        // List items of built-in kinds come without apiVersion and kind.
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "app", "uid": "u1"},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap();
        let (key, value) = entry(object, &resource).unwrap();
        assert_eq!(key, "app/s");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Service");
        let mut resources = Resources::default();
        api_objects::add(value, &mut resources);
        assert_eq!(resources.services.len(), 1);
        assert_eq!(resources.services[0].source.to_string(), "uid u1");
    }
}
