//! Which configuration a node gets. By default every Gateway of our class
//! (file mode: one Envoy serves them all, each listener on its own port). A
//! node whose metadata names a Gateway (`tollgate bootstrap --gateway NS/NAME`
//! puts it there) gets only that Gateway's listeners, routes and clusters, as
//! one Envoy deployment per Gateway on Kubernetes will.
//!
//! A Gateway's view is the translation of the resources narrowed to that
//! Gateway and the routes whose parentRefs name it; computing it with the
//! translator itself, rather than picking pieces out of the full
//! translation, keeps it right whatever the translator learns. Views are
//! computed when a node first asks and on every reload after, while some
//! stream still follows them. A node naming a Gateway that does not exist
//! gets the one snapshot of no Gateway, computed once per reload and shared:
//! 500 streams naming made-up Gateways once made every reload 10× dearer.
//!
//! The views also remember which version of each a node has accepted (ACKed
//! all of), so that on Kubernetes a Gateway is `Programmed` only once an
//! Envoy of it runs its current configuration ([`GatewayViews::accepted`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use tokio::sync::watch;

use crate::resources::{ParentRef, Resources};
use crate::translate;
use crate::xds::{Snapshot, Views};

/// The node metadata key naming the one Gateway a node serves, `NS/NAME`.
pub const GATEWAY_METADATA_KEY: &str = "tollgate.dev/gateway";

/// `None`: every Gateway; else `(namespace, name)`.
type ViewKey = Option<(String, String)>;
type Sender = watch::Sender<Option<Arc<Snapshot>>>;

pub struct GatewayViews {
    options: translate::Options,
    inner: Mutex<Inner>,
    /// Bumped whenever a node accepts a version it had not.
    acceptances: watch::Sender<u64>,
}

struct Inner {
    resources: Option<Arc<Resources>>,
    views: HashMap<ViewKey, Sender>,
    /// The version of each view a node last accepted.
    accepted: HashMap<ViewKey, String>,
    /// The snapshot of no Gateway, for nodes naming one that does not
    /// exist; computed on first need after each publish.
    absent: Option<Arc<Snapshot>>,
}

impl GatewayViews {
    pub fn new(options: translate::Options) -> GatewayViews {
        GatewayViews {
            options,
            inner: Mutex::new(Inner {
                resources: None,
                views: HashMap::from([(None, watch::channel(None).0)]),
                accepted: HashMap::new(),
                absent: None,
            }),
            acceptances: watch::channel(0).0,
        }
    }

    /// Changes whenever a node has accepted a new version of its view.
    pub fn acceptances(&self) -> watch::Receiver<u64> {
        self.acceptances.subscribe()
    }

    /// Whether an Envoy runs Gateway `namespace/name` as now configured: a
    /// node of that Gateway has accepted its view's current version, or a
    /// node served every Gateway has accepted the current whole.
    pub fn accepted(&self, namespace: &str, name: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let current = |key: &ViewKey| {
            let view = inner
                .views
                .get(key)?
                .borrow()
                .as_ref()?
                .version()
                .to_owned();
            Some(view)
        };
        [Some((namespace.to_owned(), name.to_owned())), None]
            .iter()
            .any(|key| current(key).is_some_and(|v| inner.accepted.get(key) == Some(&v)))
    }

    /// Publishes a new configuration: `all` is its snapshot for every Gateway
    /// (the caller translates that one anyway, for status). Streams hear of a
    /// view only if its version changed.
    pub fn publish(&self, resources: Resources, all: Arc<Snapshot>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *inner;
        let resources = Arc::new(resources);
        inner.resources = Some(resources.clone());
        inner.absent = None;
        // Views nobody follows any more are dropped (the all-Gateways one stays).
        inner
            .views
            .retain(|key, sender| key.is_none() || sender.receiver_count() > 0);
        let views = &inner.views;
        inner.accepted.retain(|key, _| views.contains_key(key));
        for (key, sender) in &inner.views {
            let snapshot = match key {
                None => all.clone(),
                Some((namespace, name)) => {
                    self.gateway_snapshot(&resources, namespace, name, &mut inner.absent)
                }
            };
            replace_if_new(sender, snapshot);
        }
    }

    /// The view of Gateway `namespace/name`; the shared one of no Gateway
    /// when there is no such Gateway.
    fn gateway_snapshot(
        &self,
        resources: &Resources,
        namespace: &str,
        name: &str,
        absent: &mut Option<Arc<Snapshot>>,
    ) -> Arc<Snapshot> {
        let exists = resources
            .gateways
            .iter()
            .any(|g| g.object.metadata.namespace() == namespace && g.object.metadata.name == name);
        let translate = |only: &Resources| {
            Arc::new(Snapshot::from_translation(&translate::translate(
                only,
                &self.options,
            )))
        };
        if exists {
            return translate(&only_gateway(resources, namespace, name));
        }
        absent
            .get_or_insert_with(|| translate(&only_gateway(resources, "", "")))
            .clone()
    }
}

impl Views for GatewayViews {
    fn subscribe(&self, node: &Node) -> watch::Receiver<Option<Arc<Snapshot>>> {
        let key = gateway_of(node);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = inner.views.get(&key) {
            return sender.subscribe();
        }
        let inner = &mut *inner;
        let snapshot = match (&key, &inner.resources) {
            (Some((namespace, name)), Some(resources)) => {
                Some(self.gateway_snapshot(resources, namespace, name, &mut inner.absent))
            }
            _ => None,
        };
        let (sender, receiver) = watch::channel(snapshot);
        inner.views.insert(key, sender);
        receiver
    }

    fn acknowledged(&self, node: &Node, version: &str) {
        let key = gateway_of(node);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.accepted.get(&key).map(String::as_str) != Some(version) {
            inner.accepted.insert(key, version.to_owned());
            drop(inner);
            self.acceptances.send_modify(|n| *n += 1);
        }
    }
}

/// Replaces the view's snapshot unless it has the same version.
fn replace_if_new(sender: &Sender, snapshot: Arc<Snapshot>) {
    sender.send_if_modified(|current| {
        if current
            .as_ref()
            .is_some_and(|c| c.version() == snapshot.version())
        {
            false
        } else {
            *current = Some(snapshot);
            true
        }
    });
}

/// The Gateway a node's metadata names, if it names one as `NS/NAME`.
fn gateway_of(node: &Node) -> ViewKey {
    let value = node.metadata.as_ref()?.fields.get(GATEWAY_METADATA_KEY)?;
    let Some(Kind::StringValue(text)) = &value.kind else {
        tracing::warn!(node = ?node.id, "node metadata {GATEWAY_METADATA_KEY} is not a string; serving every Gateway");
        return None;
    };
    match parse_gateway(text) {
        Some(key) => Some(key),
        None => {
            tracing::warn!(node = ?node.id, value = ?text, "node metadata {GATEWAY_METADATA_KEY} is not NAMESPACE/NAME; serving every Gateway");
            None
        }
    }
}

/// `NS/NAME` → `(NS, NAME)`; both parts non-empty.
pub fn parse_gateway(text: &str) -> Option<(String, String)> {
    let (namespace, name) = text.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (namespace.to_owned(), name.to_owned()))
}

/// The resources with one Gateway left, and only the routes attached to it
/// (so their clusters stay out of other Gateways' Envoys).
fn only_gateway(resources: &Resources, namespace: &str, name: &str) -> Resources {
    let mut only = resources.clone();
    only.gateways
        .retain(|g| g.object.metadata.namespace() == namespace && g.object.metadata.name == name);
    only.http_routes.retain(|r| {
        attached(
            &r.object.spec.parent_refs,
            r.object.metadata.namespace(),
            namespace,
            name,
        )
    });
    only.grpc_routes.retain(|r| {
        attached(
            &r.object.spec.parent_refs,
            r.object.metadata.namespace(),
            namespace,
            name,
        )
    });
    only
}

/// Whether a route with these parentRefs attaches to Gateway `namespace/name`.
fn attached(parents: &[ParentRef], route_namespace: &str, namespace: &str, name: &str) -> bool {
    parents
        .iter()
        .any(|p| names_gateway(p, route_namespace, namespace, name))
}

fn names_gateway(parent: &ParentRef, route_namespace: &str, namespace: &str, name: &str) -> bool {
    parent
        .group
        .as_deref()
        .is_none_or(|g| g == "gateway.networking.k8s.io")
        && parent.kind.as_deref().is_none_or(|k| k == "Gateway")
        && parent.namespace.as_deref().unwrap_or(route_namespace) == namespace
        && parent.name == name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::loader::load_str;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::google::protobuf::{Struct, Value};
    use prost::Name;

    const TWO_GATEWAYS: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tollgate}
spec: {controllerName: tollgate.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: a, namespace: web}
spec:
  gatewayClassName: tollgate
  listeners: [{name: http, protocol: HTTP, port: 8001}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: b, namespace: web}
spec:
  gatewayClassName: tollgate
  listeners: [{name: http, protocol: HTTP, port: 8002}]
---
apiVersion: v1
kind: Service
metadata:
  name: svc-b
  namespace: web
  annotations: {tollgate.dev/static-endpoints: \"127.0.0.1:3000\"}
spec: {ports: [{port: 3000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-b, namespace: web}
spec:
  parentRefs: [{name: b}]
  rules: [{backendRefs: [{name: svc-b, port: 3000}]}]
";

    fn options() -> translate::Options {
        translate::Options {
            listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
            port_remap: true,
            port_map: Default::default(),
            filter_runtime: translate::FilterRuntime::DynamicModule,
            ratelimit_service: None,
        }
    }

    /// `TWO_GATEWAYS` loaded, fresh views of them, and the snapshot of both.
    fn two_gateways() -> (Resources, GatewayViews, Arc<Snapshot>) {
        let mut resources = Resources::default();
        load_str("gw.yaml", TWO_GATEWAYS, &mut resources).unwrap();
        let options = options();
        let all = Arc::new(Snapshot::from_translation(&translate::translate(
            &resources, &options,
        )));
        (resources, GatewayViews::new(options), all)
    }

    fn node(gateway: Option<&str>) -> Node {
        let metadata = gateway.map(|g| Struct {
            fields: [(
                GATEWAY_METADATA_KEY.to_owned(),
                Value {
                    kind: Some(Kind::StringValue(g.to_owned())),
                },
            )]
            .into_iter()
            .collect(),
        });
        Node {
            id: "n".into(),
            metadata,
            ..Node::default()
        }
    }

    #[test]
    fn a_gateway_node_gets_only_its_gateway() {
        let (resources, views, all) = two_gateways();
        let mut everything = views.subscribe(&node(None));
        views.publish(resources.clone(), all.clone());
        assert!(everything.has_changed().unwrap());
        assert_eq!(all.resources(&Listener::type_url()).entries.len(), 2);
        assert_eq!(
            everything.borrow_and_update().as_ref().unwrap().version(),
            all.version()
        );

        let view_a = views.subscribe(&node(Some("web/a")));
        let view_b = views.subscribe(&node(Some("web/b")));
        let listeners = |rx: &watch::Receiver<Option<Arc<Snapshot>>>| -> Vec<String> {
            let s = rx.borrow().clone().unwrap();
            s.resources(&Listener::type_url())
                .entries
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(listeners(&view_a), ["http-8001"]);
        assert_eq!(listeners(&view_b), ["http-8002"]);
        let clusters = |rx: &watch::Receiver<Option<Arc<Snapshot>>>| {
            rx.borrow()
                .clone()
                .unwrap()
                .resources(&envoy_types::pb::envoy::config::cluster::v3::Cluster::type_url())
                .entries
                .len()
        };
        assert_eq!(
            clusters(&view_a),
            0,
            "b's route and its cluster are not a's"
        );
        assert_eq!(clusters(&view_b), 1);

        // The same configuration again notifies nobody.
        views.publish(resources, all);
        assert!(!everything.has_changed().unwrap());
    }

    #[test]
    fn nodes_naming_gateways_that_do_not_exist_share_one_snapshot_of_nothing() {
        let (resources, views, all) = two_gateways();
        views.publish(resources.clone(), all.clone());
        let made_up: Vec<_> = (0..500)
            .map(|i| views.subscribe(&node(Some(&format!("web/made-up-{i}")))))
            .collect();
        let real = views.subscribe(&node(Some("web/a")));
        views.publish(resources, all);
        let first = made_up[0].borrow().clone().unwrap();
        assert!(first.resources(&Listener::type_url()).entries.is_empty());
        for view in &made_up {
            let snapshot = view.borrow().clone().unwrap();
            assert!(Arc::ptr_eq(&snapshot, &first), "computed once, shared");
        }
        assert_eq!(
            real.borrow()
                .clone()
                .unwrap()
                .resources(&Listener::type_url())
                .entries
                .len(),
            1
        );
    }

    #[test]
    fn a_gateway_is_accepted_once_a_node_of_it_or_of_every_gateway_acknowledged_its_current_version(
    ) {
        let (resources, views, all) = two_gateways();
        views.publish(resources.clone(), all.clone());
        let mut acceptances = views.acceptances();
        let a = views.subscribe(&node(Some("web/a")));
        assert!(!views.accepted("web", "a"), "served, not acknowledged");
        let a_version = a.borrow().clone().unwrap().version().to_owned();
        views.acknowledged(&node(Some("web/a")), &a_version);
        assert!(acceptances.has_changed().unwrap());
        acceptances.mark_unchanged();
        assert!(views.accepted("web", "a"));
        assert!(!views.accepted("web", "b"), "a's Envoy does not run b");

        // b changes: a's view keeps its version, so a stays accepted.
        let mut edited = resources.clone();
        edited.http_routes.clear();
        let edited_all = Arc::new(Snapshot::from_translation(&translate::translate(
            &edited,
            &options(),
        )));
        views.publish(edited, edited_all.clone());
        assert!(views.accepted("web", "a"));

        // A node of every Gateway that accepted the whole runs them all.
        views.acknowledged(&node(None), all.version());
        assert!(!views.accepted("web", "b"), "it accepted an older whole");
        views.acknowledged(&node(None), edited_all.version());
        assert!(views.accepted("web", "b"));
        views.acknowledged(&node(None), edited_all.version());
        assert!(acceptances.has_changed().unwrap(), "new versions are news");
        drop(a);
    }

    #[test]
    fn gateway_names_are_namespace_slash_name() {
        assert_eq!(
            parse_gateway("web/a"),
            Some(("web".to_owned(), "a".to_owned()))
        );
        for bad in ["a", "/a", "web/", "web/a/b"] {
            assert_eq!(parse_gateway(bad), None, "{bad}");
        }
        assert_eq!(gateway_of(&node(Some("nonsense"))), None);
    }
}
