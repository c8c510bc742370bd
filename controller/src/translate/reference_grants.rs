//! ReferenceGrant: whether an object may reference one in another namespace.
//! Shared by backendRefs (routes → Services) and certificateRefs (Gateways →
//! Secrets).

use crate::resources::Resources;

/// The referencing side: an object's group, kind and namespace.
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The referenced side: a named object of a group and kind in a namespace.
pub struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// True when a ReferenceGrant in `to.namespace` lets `from` reference `to`
/// (every object of the kind when the grant's `to` names none).
pub fn permits(resources: &Resources, from: &From<'_>, to: &To<'_>) -> bool {
    resources
        .reference_grants
        .iter()
        .map(|g| &g.object)
        .filter(|g| g.metadata.namespace() == to.namespace)
        .any(|g| {
            g.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            }) && g.spec.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name.as_deref().is_none_or(|n| n == to.name)
            })
        })
}
