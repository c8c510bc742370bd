//! One object per kind, namespace and name. An API server cannot hold two;
//! a directory can (a file copied, a route pasted twice), and silently
//! keeping the first would serve something the operator did not look at.
//! Each repeat is a load problem naming both places.

use std::collections::hash_map::{Entry, HashMap};

use super::meta::ObjectMeta;
use super::{Origin, Resources};

/// A problem for every object that repeats an earlier one's identity.
pub fn find(resources: &Resources) -> Vec<String> {
    let mut seen = Seen::default();
    let r = resources;
    for l in &r.gateway_classes {
        seen.check("GatewayClass", false, &l.object.metadata, &l.source);
    }
    for l in &r.namespaces {
        seen.check("Namespace", false, &l.object.metadata, &l.source);
    }
    for l in &r.gateways {
        seen.check("Gateway", true, &l.object.metadata, &l.source);
    }
    for l in &r.http_routes {
        seen.check("HTTPRoute", true, &l.object.metadata, &l.source);
    }
    for l in &r.grpc_routes {
        seen.check("GRPCRoute", true, &l.object.metadata, &l.source);
    }
    for l in &r.reference_grants {
        seen.check("ReferenceGrant", true, &l.object.metadata, &l.source);
    }
    for l in &r.services {
        seen.check("Service", true, &l.object.metadata, &l.source);
    }
    for l in &r.endpoint_slices {
        seen.check("EndpointSlice", true, &l.object.metadata, &l.source);
    }
    for l in &r.secrets {
        seen.check("Secret", true, &l.object.metadata, &l.source);
    }
    for l in &r.policies {
        seen.check(l.object.kind.name(), true, &l.object.metadata, &l.source);
    }
    seen.problems
}

/// Where each identity was first defined, and the repeats found so far.
#[derive(Default)]
struct Seen<'r> {
    first: HashMap<(&'static str, &'r str, &'r str), &'r Origin>,
    problems: Vec<String>,
}

impl<'r> Seen<'r> {
    fn check(
        &mut self,
        kind: &'static str,
        namespaced: bool,
        meta: &'r ObjectMeta,
        source: &'r Origin,
    ) {
        let namespace = if namespaced { meta.namespace() } else { "" };
        match self.first.entry((kind, namespace, meta.name.as_str())) {
            Entry::Occupied(earlier) => self.problems.push(format!(
                "{source}: {kind} {namespace}{}{} is already defined at {}; each object must be defined once",
                if namespaced { "/" } else { "" },
                meta.name,
                earlier.get()
            )),
            Entry::Vacant(slot) => {
                slot.insert(source);
            }
        }
    }
}
