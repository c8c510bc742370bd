//! The authorizer of the stand-in API: the API server sends a
//! SubjectAccessReview (its `--authorization-kubeconfig` names the proxy)
//! for every request of a caller outside `system:masters`, and this judges it
//! as Kubernetes RBAC would, from the RBAC objects stored in the API server
//! (the stand-in CRDs at the real `rbac.authorization.k8s.io` URLs), read
//! afresh for each review: ClusterRoleBindings → ClusterRoles, and in the
//! request's namespace RoleBindings → Roles or ClusterRoles; subjects by
//! user, group and ServiceAccount; rules by verb, API group, resource (with
//! `resource/subresource`, `*/subresource` and `*`), resourceNames and
//! nonResourceURLs (`*` suffix). A test group is judged as the group it
//! stands in for (`core.stand-in.tollgate.test` as `""`). The rules follow
//! `k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go`.
//!
//! Stand-in limits: ClusterRole aggregation (`aggregationRule`) is evaluated
//! here at review time (matchLabels and matchExpressions) instead of being
//! written into the role by a controller; the bootstrap roles a real cluster
//! binds (`system:discovery`, `system:basic-user`, `system:public-info-viewer`)
//! are built in, not stored; there is no escalation check on writing RBAC.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::real_group;
use super::rewrite::{real_resource, ResponseBody};
use super::upstream::{json_response, status_response, State};

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ReviewSpec {
    user: String,
    groups: Vec<String>,
    resource_attributes: Option<ResourceAttributes>,
    non_resource_attributes: Option<NonResourceAttributes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResourceAttributes {
    namespace: String,
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NonResourceAttributes {
    path: String,
    verb: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct Rule {
    verbs: Vec<String>,
    #[serde(rename = "apiGroups")]
    api_groups: Vec<String>,
    resources: Vec<String>,
    #[serde(rename = "resourceNames")]
    resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Role {
    metadata: Meta,
    rules: Vec<Rule>,
    #[serde(rename = "aggregationRule")]
    aggregation_rule: Option<AggregationRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AggregationRule {
    #[serde(rename = "clusterRoleSelectors")]
    cluster_role_selectors: Vec<LabelSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LabelSelector {
    #[serde(rename = "matchLabels")]
    match_labels: BTreeMap<String, String>,
    #[serde(rename = "matchExpressions")]
    match_expressions: Vec<Requirement>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Requirement {
    key: String,
    operator: String,
    values: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Binding {
    metadata: Meta,
    #[serde(rename = "roleRef")]
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RoleRef {
    kind: String,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

/// What is asked, with the test groups read as the real ones.
enum Request<'a> {
    Resource {
        verb: &'a str,
        group: &'a str,
        /// `resource` or `resource/subresource`.
        resource: String,
        subresource: &'a str,
        name: &'a str,
        namespace: &'a str,
    },
    NonResource {
        verb: &'a str,
        path: &'a str,
    },
}

/// The RBAC objects that can apply to one review.
#[derive(Default)]
struct Policy {
    cluster_roles: Vec<Role>,
    cluster_role_bindings: Vec<Binding>,
    roles: Vec<Role>,
    role_bindings: Vec<Binding>,
}

/// Answers a SubjectAccessReview (the API server's webhook authorizer).
pub(crate) async fn review(state: &State, body: &[u8]) -> Response<ResponseBody> {
    let mut review: Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return status_response(StatusCode::BAD_REQUEST, &format!("not JSON: {e}")),
    };
    let spec: ReviewSpec = match serde_json::from_value(review["spec"].clone()) {
        Ok(spec) => spec,
        Err(e) => return status_response(StatusCode::BAD_REQUEST, &format!("spec: {e}")),
    };
    let namespace = spec
        .resource_attributes
        .as_ref()
        .map(|r| r.namespace.as_str())
        .unwrap_or_default();
    review["status"] = match Policy::load(state, namespace).await {
        Ok(policy) => match policy.allows(&spec) {
            Some(reason) => json!({"allowed": true, "reason": reason}),
            None => json!({"allowed": false}),
        },
        Err(e) => json!({"allowed": false, "evaluationError": format!("{e:#}")}),
    };
    state.log(&format!(
        "review {} {:?} {:?} {:?}: {}",
        spec.user,
        spec.groups,
        spec.resource_attributes,
        spec.non_resource_attributes,
        review["status"]
    ));
    json_response(StatusCode::CREATED, &review)
}

impl Policy {
    /// Reads the cluster-wide RBAC objects and those of `namespace` (none
    /// while the RBAC CRDs are not registered yet).
    async fn load(state: &State, namespace: &str) -> Result<Policy> {
        let mut policy = Policy {
            cluster_roles: list(state, &format!("{RBAC}/clusterroles")).await?,
            cluster_role_bindings: list(state, &format!("{RBAC}/clusterrolebindings")).await?,
            ..Policy::default()
        };
        if !namespace.is_empty() {
            policy.roles = list(state, &format!("{RBAC}/namespaces/{namespace}/roles")).await?;
            policy.role_bindings = list(
                state,
                &format!("{RBAC}/namespaces/{namespace}/rolebindings"),
            )
            .await?;
        }
        Ok(policy)
    }

    /// `Some(reason)` if a rule allows the review's request.
    fn allows(&self, spec: &ReviewSpec) -> Option<String> {
        let request = match (&spec.resource_attributes, &spec.non_resource_attributes) {
            (Some(r), _) => Request::Resource {
                verb: &r.verb,
                group: real_group(&r.group),
                resource: match r.subresource.as_str() {
                    "" => real_resource(&r.group, &r.resource),
                    sub => format!("{}/{sub}", real_resource(&r.group, &r.resource)),
                },
                subresource: &r.subresource,
                name: &r.name,
                namespace: &r.namespace,
            },
            (None, Some(n)) => Request::NonResource {
                verb: &n.verb,
                path: &n.path,
            },
            (None, None) => return None,
        };
        let user = User {
            name: &spec.user,
            groups: &spec.groups,
        };
        for (group, role, rules) in bootstrap() {
            if user.groups.iter().any(|g| g == group) && rules.iter().any(|r| r.allows(&request)) {
                return Some(format!(
                    "RBAC: allowed by bootstrap ClusterRole {role:?} to Group {group:?}"
                ));
            }
        }
        for binding in &self.cluster_role_bindings {
            if binding.role_ref.kind != "ClusterRole" || !binding.applies_to(&user, "") {
                continue;
            }
            let rules = self.cluster_role_rules(&binding.role_ref.name, &mut BTreeSet::new());
            if rules.iter().any(|r| r.allows(&request)) {
                return Some(format!(
                    "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {:?}",
                    binding.metadata.name, binding.role_ref.name
                ));
            }
        }
        let Request::Resource { namespace, .. } = &request else {
            return None;
        };
        if namespace.is_empty() {
            return None;
        }
        for binding in &self.role_bindings {
            if binding.metadata.namespace != *namespace || !binding.applies_to(&user, namespace) {
                continue;
            }
            let rules: Vec<&Rule> = match binding.role_ref.kind.as_str() {
                "ClusterRole" => {
                    self.cluster_role_rules(&binding.role_ref.name, &mut BTreeSet::new())
                }
                "Role" => self
                    .roles
                    .iter()
                    .filter(|r| {
                        r.metadata.name == binding.role_ref.name
                            && r.metadata.namespace == *namespace
                    })
                    .flat_map(|r| &r.rules)
                    .collect(),
                _ => Vec::new(),
            };
            if rules.iter().any(|r| r.allows(&request)) {
                return Some(format!(
                    "RBAC: allowed by RoleBinding {:?} of {} {:?} in {namespace:?}",
                    binding.metadata.name, binding.role_ref.kind, binding.role_ref.name
                ));
            }
        }
        None
    }

    /// A ClusterRole's rules, with those of the ClusterRoles its
    /// aggregationRule selects (and theirs).
    fn cluster_role_rules<'a>(&'a self, name: &str, seen: &mut BTreeSet<String>) -> Vec<&'a Rule> {
        if !seen.insert(name.to_owned()) {
            return Vec::new();
        }
        let Some(role) = self.cluster_roles.iter().find(|r| r.metadata.name == name) else {
            return Vec::new();
        };
        let mut rules: Vec<&Rule> = role.rules.iter().collect();
        if let Some(aggregation) = &role.aggregation_rule {
            for other in &self.cluster_roles {
                if aggregation
                    .cluster_role_selectors
                    .iter()
                    .any(|s| s.matches(&other.metadata.labels))
                {
                    rules.extend(self.cluster_role_rules(&other.metadata.name, seen));
                }
            }
        }
        rules
    }
}

/// Every object of a list (each item read on its own: one malformed object
/// costs only itself); none if the kind is not served yet (404).
async fn list<T: DeserializeOwned>(state: &State, path: &str) -> Result<Vec<T>> {
    let (status, body) = state.get(path, "application/json").await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !status.is_success() {
        anyhow::bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    let list: Value = serde_json::from_slice(&body).with_context(|| format!("GET {path}"))?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| serde_json::from_value(item.clone()).ok())
        .collect())
}

struct User<'a> {
    name: &'a str,
    groups: &'a [String],
}

impl Binding {
    /// Whether a subject is `user`; a ServiceAccount subject without a
    /// namespace means the binding's (`namespace`).
    fn applies_to(&self, user: &User, namespace: &str) -> bool {
        self.subjects.iter().any(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => user.groups.contains(&s.name),
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() {
                    namespace
                } else {
                    &s.namespace
                };
                !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", s.name)
            }
            _ => false,
        })
    }
}

impl Rule {
    fn allows(&self, request: &Request) -> bool {
        match request {
            Request::Resource {
                verb,
                group,
                resource,
                subresource,
                name,
                ..
            } => {
                has(&self.verbs, verb)
                    && has(&self.api_groups, group)
                    && self.resource_matches(resource, subresource)
                    && (self.resource_names.is_empty()
                        || self.resource_names.iter().any(|n| n == name))
            }
            Request::NonResource { verb, path } => {
                has(&self.verbs, verb)
                    && self.non_resource_urls.iter().any(|url| {
                        url == "*"
                            || url == path
                            || url
                                .strip_suffix('*')
                                .is_some_and(|prefix| path.starts_with(prefix))
                    })
            }
        }
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == "*"
                || r == resource
                || (!subresource.is_empty()
                    && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
        })
    }
}

/// `list` contains `value` or `*`.
fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

impl LabelSelector {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !e.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// The bootstrap ClusterRoles every real cluster binds, with their group:
/// `(group, role, rules)`.
fn bootstrap() -> Vec<(&'static str, &'static str, Vec<Rule>)> {
    let urls = |urls: &[&str]| Rule {
        verbs: vec!["get".to_owned()],
        non_resource_urls: urls.iter().map(|u| (*u).to_owned()).collect(),
        ..Rule::default()
    };
    let public = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let discovery = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let create = |group: &str, resources: &[&str]| Rule {
        verbs: vec!["create".to_owned()],
        api_groups: vec![group.to_owned()],
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        ..Rule::default()
    };
    vec![
        (
            "system:authenticated",
            "system:discovery",
            vec![urls(&discovery)],
        ),
        (
            "system:authenticated",
            "system:basic-user",
            vec![
                create(
                    "authorization.k8s.io",
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                create("authentication.k8s.io", &["selfsubjectreviews"]),
            ],
        ),
        (
            "system:authenticated",
            "system:public-info-viewer",
            vec![urls(&public)],
        ),
        (
            "system:unauthenticated",
            "system:public-info-viewer",
            vec![urls(&public)],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: DeserializeOwned>(objects: &Value, key: &str) -> Vec<T> {
        let items = objects[key].as_array().cloned().unwrap_or_default();
        items
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect()
    }

    fn policy(objects: Value) -> Policy {
        Policy {
            cluster_roles: parse(&objects, "clusterroles"),
            cluster_role_bindings: parse(&objects, "clusterrolebindings"),
            roles: parse(&objects, "roles"),
            role_bindings: parse(&objects, "rolebindings"),
        }
    }

    fn spec(user: &str, groups: &[&str], attributes: Value) -> ReviewSpec {
        serde_json::from_value(json!({
            "user": user, "groups": groups, "resourceAttributes": attributes,
        }))
        .unwrap()
    }

    #[test]
    fn a_role_binding_allows_its_rules_in_its_namespace_only() {
        let p = policy(json!({
            "roles": [{"metadata": {"name": "r", "namespace": "a"},
                       "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}]}],
            "rolebindings": [{"metadata": {"name": "b", "namespace": "a"},
                              "roleRef": {"kind": "Role", "name": "r"},
                              "subjects": [{"kind": "ServiceAccount", "name": "ctl"}]}],
        }));
        let sa = "system:serviceaccount:a:ctl";
        let services = |ns: &str, verb: &str| json!({"namespace": ns, "verb": verb, "group": "core.stand-in.tollgate.test", "resource": "services"});
        assert!(p.allows(&spec(sa, &[], services("a", "list"))).is_some());
        assert!(p.allows(&spec(sa, &[], services("a", "delete"))).is_none());
        assert!(p.allows(&spec(sa, &[], services("b", "list"))).is_none());
        assert!(p
            .allows(&spec(
                "system:serviceaccount:b:ctl",
                &[],
                services("a", "list")
            ))
            .is_none());
    }

    #[test]
    fn cluster_roles_match_subresources_names_groups_and_aggregation() {
        let p = policy(json!({
            "clusterroles": [
                {"metadata": {"name": "status"},
                 "rules": [{"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gateways/status"], "verbs": ["patch"]},
                           {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["lock"], "verbs": ["*"]}]},
                {"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}},
                {"metadata": {"name": "part", "labels": {"x": "y"}},
                 "rules": [{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}]},
            ],
            "clusterrolebindings": [
                {"metadata": {"name": "s"}, "roleRef": {"kind": "ClusterRole", "name": "status"},
                 "subjects": [{"kind": "Group", "name": "ops"}]},
                {"metadata": {"name": "a"}, "roleRef": {"kind": "ClusterRole", "name": "agg"},
                 "subjects": [{"kind": "User", "name": "u"}]},
            ],
        }));
        let gw = |sub: &str| json!({"namespace": "a", "verb": "patch", "group": "gateway.networking.k8s.io", "resource": "gateways", "subresource": sub, "name": "g"});
        assert!(p.allows(&spec("x", &["ops"], gw("status"))).is_some());
        assert!(p.allows(&spec("x", &["ops"], gw(""))).is_none());
        assert!(p.allows(&spec("x", &["dev"], gw("status"))).is_none());
        let lease = |name: &str| json!({"namespace": "a", "verb": "update", "group": "coordination.k8s.io", "resource": "leases", "name": name});
        assert!(p.allows(&spec("x", &["ops"], lease("lock"))).is_some());
        assert!(p.allows(&spec("x", &["ops"], lease("other"))).is_none());
        let deploy = json!({"verb": "get", "group": "apps.stand-in.tollgate.test", "resource": "deployments", "namespace": "n"});
        assert!(p.allows(&spec("u", &[], deploy)).is_some());
    }

    #[test]
    fn authenticated_callers_may_read_discovery_and_no_more() {
        let p = Policy::default();
        let get = |path: &str| -> ReviewSpec {
            serde_json::from_value(json!({
                "user": "u", "groups": ["system:authenticated"],
                "nonResourceAttributes": {"path": path, "verb": "get"},
            }))
            .unwrap()
        };
        assert!(p.allows(&get("/openapi/v2")).is_some());
        assert!(p.allows(&get("/metrics")).is_none());
    }
}
