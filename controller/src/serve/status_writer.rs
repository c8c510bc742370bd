//! Writes every object's status back to the Kubernetes API server, on the
//! leader only (every replica translates; one writes). GatewayClasses,
//! Gateways and Tollgate's policies by server-side apply with our field
//! manager; a route's `status.parents`, an atomic list other controllers
//! share, by read, merge and replace with the resourceVersion read (a 409
//! means someone wrote in between: read again and merge again).
//!
//! The leader also provisions the Gateways' Envoys ([`super::provision`]),
//! before their status: a Gateway's address is its Envoy Service's.
//!
//! It writes when the translation's status changes, when an Envoy accepts
//! a new configuration (a Gateway's `Programmed`), when this replica becomes
//! the leader, again a while after a write failed, and every 10 s anyway.
//! What to write comes from [`super::kube_status`]; an object whose status
//! the server already holds is not written, so a new leader rewrites
//! nothing that is right.
//!
//! The Envoy Gateway policy kinds (BackendTrafficPolicy, SecurityPolicy)
//! get no status here: their CRDs define `status.ancestors`, which the
//! translator does not compute yet.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::kube_status::{self, holds, timeless};
use super::kubernetes::ApiObjects;
use super::metrics::Metrics;
use super::provider::StatusSink;
use super::provision::Provisioner;
use super::replica_acceptance::ReplicaAcceptance;
use super::views::GatewayViews;
use super::Current;
use crate::resources::policies::{PolicyKind, TOLLGATE_GROUP};
use crate::translate::status::{RouteParentStatus, Status, CONTROLLER_NAME};

/// Our field manager for server-side apply.
const FIELD_MANAGER: &str = CONTROLLER_NAME;
/// A failed write is tried again after this long.
const RETRY: Duration = Duration::from_secs(5);
/// While a Gateway is not known to run, the other replicas' lists are read
/// again this often.
const PENDING_RECHECK: Duration = Duration::from_secs(2);
/// The leader goes over everything this often even when nothing it watches
/// changed: a provisioned object deleted by hand (those kinds are not
/// watched) is applied again.
const RESYNC: Duration = Duration::from_secs(10);
/// Attempts at a route's parents when others keep writing in between.
const CONFLICT_ATTEMPTS: usize = 5;
const ROUTE_KINDS: [&str; 2] = ["HTTPRoute", "GRPCRoute"];
/// The Gateway API kinds whose status this writes (besides Tollgate's
/// policy kinds): what the install's RBAC lets it write.
pub const GATEWAY_API_KINDS: [&str; 4] =
    ["GatewayClass", "Gateway", ROUTE_KINDS[0], ROUTE_KINDS[1]];

/// What a reload served: the configuration's version and every object's status.
type Served = Option<(String, Arc<Status>)>;

/// The status sink of `serve --provider kubernetes`: hands each new status
/// to the writer task.
pub struct KubernetesStatus(watch::Sender<Served>);

impl StatusSink for KubernetesStatus {
    /// Every reload wakes the writer, even with the same status: what it
    /// writes also depends on objects the translation does not show (a
    /// provisioned Service's load balancer address, a status someone else
    /// changed); what the server holds is not written again.
    fn publish(&mut self, current: &Current) {
        if let (Some(snapshot), Some(status)) = (&current.snapshot, &current.status) {
            self.0
                .send_replace(Some((snapshot.version().to_owned(), status.clone())));
        }
    }
}

/// Starts the writer; the sink feeds it, `leader` gates it, and it ends
/// when `stop` turns true.
pub fn spawn(
    objects: ApiObjects,
    views: Arc<GatewayViews>,
    provisioner: Option<Provisioner>,
    replicas: Option<ReplicaAcceptance>,
    leader: watch::Receiver<bool>,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) -> (KubernetesStatus, tokio::task::JoinHandle<()>) {
    let (sink, statuses) = watch::channel(None);
    let writer = Writer {
        objects,
        views,
        provisioner,
        replicas,
        metrics,
        leader,
        written: HashMap::new(),
    };
    let task = tokio::spawn(writer.run(statuses, stop));
    (KubernetesStatus(sink), task)
}

/// `(kind, namespace, name)`.
type Key = (&'static str, String, String);

struct Writer {
    objects: ApiObjects,
    views: Arc<GatewayViews>,
    /// `None` with `--provision none`.
    provisioner: Option<Provisioner>,
    /// Which Gateways the other replicas' Envoys run.
    replicas: Option<ReplicaAcceptance>,
    metrics: Metrics,
    /// Whether this replica leads: checked before every write, so a replica
    /// that lost the Lease mid-batch writes nothing more.
    leader: watch::Receiver<bool>,
    /// What this replica last wrote to each object (without times), and the
    /// object's resourceVersion it wrote over: until the watch brings the
    /// write back, the cache still shows that version, and the write is not
    /// repeated.
    written: HashMap<Key, (String, Value)>,
}

impl Writer {
    async fn run(mut self, mut statuses: watch::Receiver<Served>, mut stop: watch::Receiver<bool>) {
        let mut leader = self.leader.clone();
        let mut acceptances = self.views.acceptances();
        let mut retry: Option<Duration> = None;
        loop {
            tokio::select! {
                changed = statuses.changed() => if changed.is_err() { return },
                changed = acceptances.changed() => if changed.is_err() { return },
                changed = leader.changed() => if changed.is_err() { return },
                () = super::after(retry) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let served = statuses.borrow_and_update().clone();
            acceptances.mark_unchanged();
            let leading = *leader.borrow_and_update();
            self.metrics.leading(leading);
            let Some((version, status)) = served else {
                continue;
            };
            // Every replica says which Gateways its Envoys run.
            let mut running: BTreeSet<String> = status
                .gateways
                .iter()
                .filter(|g| self.views.accepted(&g.namespace, &g.name))
                .map(|g| gateway_key(&g.namespace, &g.name))
                .collect();
            if let Some(replicas) = &mut self.replicas {
                replicas.publish(&version, &running).await;
            }
            if !leading {
                self.written.clear();
                if let Some(provisioner) = &mut self.provisioner {
                    provisioner.forget();
                }
                retry = None;
                continue;
            }
            if let Some(replicas) = &self.replicas {
                running.extend(replicas.elsewhere(&version).await);
            }
            let mut failed = false;
            if let Some(provisioner) = &mut self.provisioner {
                failed |= provisioner
                    .reconcile(&self.objects, &self.metrics, &self.leader)
                    .await;
            }
            failed |= self.write_all(&status, &running).await;
            // Another replica's Envoys may come to run a Gateway: look again.
            let pending = status
                .gateways
                .iter()
                .any(|g| !running.contains(&gateway_key(&g.namespace, &g.name)));
            retry = Some(if failed {
                RETRY
            } else if pending {
                PENDING_RECHECK
            } else {
                RESYNC
            });
        }
    }

    /// Writes every status the server does not hold (`running`: the
    /// Gateways whose Envoys run their configuration); whether a write failed.
    async fn write_all(&mut self, status: &Status, running: &BTreeSet<String>) -> bool {
        let now = now();
        // What was written to objects since deleted is forgotten.
        let objects = &self.objects;
        self.written
            .retain(|(kind, namespace, name), _| objects.contains(kind, namespace, name));
        let mut failed = false;
        for class in &status.gateway_classes {
            let Some(object) = self.objects.get("GatewayClass", "", &class.name) else {
                continue;
            };
            let desired =
                kube_status::conditions_only(&class.conditions, object.get("status"), &now);
            failed |= !self.apply("GatewayClass", &object, desired).await;
        }
        for gateway in &status.gateways {
            let Some(object) = self
                .objects
                .get("Gateway", &gateway.namespace, &gateway.name)
            else {
                continue;
            };
            let runs = running.contains(&gateway_key(&gateway.namespace, &gateway.name));
            let mut desired = kube_status::gateway(gateway, object.get("status"), runs, &now);
            if let Some(provisioner) = &self.provisioner {
                let (namespace, name) = provisioner.service_of(&gateway.namespace, &gateway.name);
                let service = self.objects.get("Service", namespace, &name);
                if !kube_status::addresses_from(&mut desired, service.as_ref()) {
                    kube_status::unaddressed(&mut desired, object.get("status"), &name, &now);
                }
            }
            failed |= !self.apply("Gateway", &object, desired).await;
        }
        for policy in &status.policies {
            let Some(kind) = PolicyKind::from_group_kind(TOLLGATE_GROUP, policy.kind) else {
                continue;
            };
            let Some(object) = self
                .objects
                .get(kind.name(), &policy.namespace, &policy.name)
            else {
                continue;
            };
            let desired =
                kube_status::conditions_only(&policy.conditions, object.get("status"), &now);
            failed |= !self.apply(kind.name(), &object, desired).await;
        }
        let routes = [&status.http_routes, &status.grpc_routes];
        for (kind, statuses) in ROUTE_KINDS.into_iter().zip(routes) {
            for object in self.objects.all(kind) {
                let (namespace, name) = namespace_name(&object);
                let ours = statuses
                    .iter()
                    .find(|r| r.namespace == namespace && r.name == name)
                    .map_or(&[][..], |r| &r.parents[..]);
                failed |= !self.replace_parents(kind, object, ours, &now).await;
            }
        }
        failed
    }

    /// Server-side applies `status` to `object` unless the server holds it
    /// (or holds our write of it, not yet seen); whether it went well.
    async fn apply(&mut self, kind: &'static str, object: &Value, status: Value) -> bool {
        if holds(object.get("status"), &status) {
            return true;
        }
        let (namespace, name) = namespace_name(object);
        let key: Key = (kind, namespace.to_owned(), name.to_owned());
        if self.already_written(&key, object, &status) {
            return true;
        }
        let Some(api) = self.objects.api(kind, namespace) else {
            return true;
        };
        let mut metadata = json!({ "name": name });
        if !namespace.is_empty() {
            metadata["namespace"] = json!(namespace);
        }
        let body = json!({
            "apiVersion": object["apiVersion"],
            "kind": kind,
            "metadata": metadata,
            "status": status,
        });
        if !*self.leader.borrow() {
            return true;
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = api.patch_status(name, &params, &Patch::Apply(&body)).await;
        self.record(key, object, &status, result.map(|_| ()))
    }

    /// Replaces our entries of a route's `status.parents` (read, merge,
    /// replace with its resourceVersion; again on a conflict).
    async fn replace_parents(
        &mut self,
        kind: &'static str,
        mut object: Value,
        ours: &[RouteParentStatus],
        now: &str,
    ) -> bool {
        let (namespace, name) = namespace_name(&object);
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        let Some(api) = self.objects.api(kind, &namespace) else {
            return true;
        };
        let key: Key = (kind, namespace, name.clone());
        for _ in 0..CONFLICT_ATTEMPTS {
            let Some(parents) = kube_status::route_parents(ours, object.get("status"), now) else {
                return true;
            };
            let status = json!({ "parents": parents });
            if self.already_written(&key, &object, &status) {
                return true;
            }
            let mut replaced = object.clone();
            replaced["status"]["parents"] = parents;
            if let Some(metadata) = replaced["metadata"].as_object_mut() {
                // Left out, the server keeps its own record of who owns what.
                metadata.remove("managedFields");
            }
            if !*self.leader.borrow() {
                return true;
            }
            let result = match serde_json::from_value::<DynamicObject>(replaced) {
                Ok(replaced) => {
                    api.replace_status(&name, &PostParams::default(), &replaced)
                        .await
                }
                Err(e) => {
                    tracing::warn!(kind, name, "route status: {e}");
                    return false;
                }
            };
            if let Err(kube::Error::Api(response)) = &result {
                if response.code == 409 {
                    self.metrics.status_write(kind, "conflict");
                    match api.get_status(&name).await.map(serde_json::to_value) {
                        Ok(Ok(fresh)) => {
                            object = fresh;
                            continue;
                        }
                        Ok(Err(e)) => tracing::warn!(kind, name, "reading status: {e}"),
                        Err(e) => tracing::warn!(kind, name, "reading status: {e}"),
                    }
                    return false;
                }
            }
            return self.record(key, &object, &status, result.map(|_| ()));
        }
        tracing::warn!(kind, name, "status.parents: still conflicting after {CONFLICT_ATTEMPTS} attempts; trying again later");
        false
    }

    /// Whether this replica wrote `status` over the version of `object`
    /// the cache still shows (the watch has not brought the write back yet).
    fn already_written(&self, key: &Key, object: &Value, status: &Value) -> bool {
        self.written.get(key).is_some_and(|(version, written)| {
            version == resource_version(object) && *written == timeless(status)
        })
    }

    /// Counts and logs a write; whether it went well.
    fn record(
        &mut self,
        key: Key,
        object: &Value,
        status: &Value,
        result: Result<(), kube::Error>,
    ) -> bool {
        let (kind, namespace, name) = &key;
        match result {
            Ok(()) => {
                self.metrics.status_write(kind, "ok");
                tracing::debug!(kind, namespace, name, "status written");
                let version = resource_version(object).to_owned();
                self.written.insert(key, (version, timeless(status)));
                true
            }
            Err(e) => {
                self.metrics.status_write(kind, "error");
                // A 403 names the missing RBAC rule (verb and resource).
                tracing::warn!(kind, namespace, name, "writing status: {e}");
                false
            }
        }
    }
}

/// How a Gateway is named in the running set and the replicas' lists
/// (`NAMESPACE/NAME`).
fn gateway_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn namespace_name(object: &Value) -> (&str, &str) {
    let metadata = &object["metadata"];
    (
        metadata["namespace"].as_str().unwrap_or(""),
        metadata["name"].as_str().unwrap_or(""),
    )
}

fn resource_version(object: &Value) -> &str {
    object["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

/// The time a condition changes, as Kubernetes writes it (seconds, UTC).
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::kubernetes::Kubernetes;
    use crate::translate::status::{Condition, ParentReference};
    use e2e::kube_apiserver::KubeApiServer;

    const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: eg}]\n  rules: [{filters: [{type: RequestRedirect, requestRedirect: {hostname: x.example}}]}]\n";

    /// Another controller's entry, as `kubectl patch --subresource=status`
    /// would write it.
    fn theirs(name: &str) -> String {
        format!(
            r#"{{"status":{{"parents":[{{"parentRef":{{"name":"{name}"}},"controllerName":"example.com/other","conditions":[{{"type":"Accepted","status":"True","reason":"Accepted","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}}]}}]}}}}"#
        )
    }

    /// A route's status written by someone else between our read and our
    /// write: the replace gets 409, reads again, and merges again, so their
    /// write is kept and ours lands (against a real API server).
    #[tokio::test]
    async fn a_conflicting_write_to_a_routes_parents_is_read_again_and_kept() {
        let api = KubeApiServer::start().unwrap();
        api.apply(ROUTE).unwrap();
        let patch = |name: &str| {
            api.kubectl_ok(&[
                "patch",
                "httproute",
                "r",
                "--subresource=status",
                "--type=merge",
                "-p",
                &theirs(name),
            ])
            .unwrap();
        };
        patch("first");
        let cluster = Kubernetes::start(Some(&api.kubeconfig)).await.unwrap();
        let objects = cluster.objects();
        let stale = objects.get("HTTPRoute", "default", "r").unwrap();
        // Theirs changes after the read we write over.
        patch("second");
        let options = crate::translate::Options {
            listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
            port_remap: true,
            port_map: Default::default(),
            filter_runtime: crate::translate::FilterRuntime::DynamicModule,
            ratelimit_service: None,
        };
        let metrics = Metrics::new();
        let mut writer = Writer {
            objects,
            views: Arc::new(GatewayViews::new(options)),
            provisioner: None,
            replicas: None,
            metrics: metrics.clone(),
            leader: watch::channel(true).1,
            written: HashMap::new(),
        };
        let ours = RouteParentStatus {
            parent_ref: ParentReference {
                namespace: "default".into(),
                name: "eg".into(),
                section_name: None,
                port: None,
            },
            controller_name: CONTROLLER_NAME.into(),
            conditions: vec![Condition {
                observed_generation: 1,
                ..Condition::new("Accepted", true, "Accepted", String::new())
            }],
        };
        assert!(
            writer
                .replace_parents("HTTPRoute", stale, &[ours], &now())
                .await
        );
        let route: Value = serde_json::from_str(
            &api.kubectl_ok(&["get", "httproute", "r", "-o", "json"])
                .unwrap(),
        )
        .unwrap();
        let parents: Vec<&str> = route["status"]["parents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["parentRef"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            parents,
            ["second", "eg"],
            "theirs as they wrote it last, then ours"
        );
        let text = metrics.render().unwrap();
        assert!(
            text.contains("tollgate_status_writes_total{kind=\"HTTPRoute\",result=\"conflict\"} 1"),
            "{text}"
        );
    }
}
