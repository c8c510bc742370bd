//! backendRefs → Envoy STATIC clusters, one per Service port, shared by every
//! rule that references it. STATIC rather than EDS: file mode knows every
//! address up front, and a changed address re-sends the cluster anyway.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};

use super::weights::Share;
use super::{http2_upstream, reference_grants, GATEWAY_GROUP};
use crate::resources::{
    BackendRef, Resources, Service, SERVICE_NAME_LABEL, STATIC_ENDPOINTS_ANNOTATION,
};

/// Why a backendRef resolves to nothing: the route's `ResolvedRefs` reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: &'static str,
    pub message: String,
}

/// Resolves backendRefs against the loaded Services, collecting the clusters.
pub struct Backends<'a> {
    resources: &'a Resources,
    /// Services by namespace and name (the first of duplicates, as a scan
    /// in load order would find).
    services: HashMap<(&'a str, &'a str), &'a Service>,
    clusters: BTreeMap<String, Cluster>,
    /// Clusters whose upstream speaks HTTP/2.
    http2: BTreeSet<String>,
}

impl<'a> Backends<'a> {
    pub fn new(resources: &'a Resources) -> Self {
        let mut services = HashMap::new();
        for service in &resources.services {
            let meta = &service.object.metadata;
            services
                .entry((meta.namespace(), meta.name.as_str()))
                .or_insert(&*service.object);
        }
        Self {
            resources,
            services,
            clusters: BTreeMap::new(),
            http2: BTreeSet::new(),
        }
    }

    /// The weighted shares of one rule's backendRefs, from a `route_kind` route
    /// named `route` (`<namespace>/<name>`). Every unresolved ref of the rule
    /// shares one cluster name that is never defined (see `weights`), and the
    /// route's first unresolved ref is kept in `first_unresolved` for its
    /// `ResolvedRefs` condition.
    pub fn rule_shares(
        &mut self,
        route_kind: &str,
        (namespace, name): (&str, &str),
        rule_index: usize,
        refs: &[BackendRef],
        first_unresolved: &mut Option<Unresolved>,
    ) -> Vec<(Share, u32)> {
        let invalid = format!("invalid-backend/{namespace}/{name}/rule/{rule_index}");
        refs.iter()
            .map(|b| match self.resolve_from(route_kind, namespace, b) {
                Ok(cluster) => (Share::Cluster(cluster), b.weight),
                Err(unresolved) => {
                    first_unresolved.get_or_insert(unresolved);
                    (Share::Invalid(invalid.clone()), b.weight)
                }
            })
            .collect()
    }

    /// The Envoy cluster for `backend`, referenced from a `route_kind` route in
    /// `route_namespace`. A GRPCRoute's backend, or a Service port whose
    /// `appProtocol` says so, gets a cluster speaking HTTP/2 upstream.
    pub fn resolve_from(
        &mut self,
        route_kind: &str,
        route_namespace: &str,
        backend: &BackendRef,
    ) -> Result<String, Unresolved> {
        let group = backend.group.as_deref().unwrap_or("");
        let kind = backend.kind.as_deref().unwrap_or("Service");
        if !group.is_empty() || kind != "Service" {
            return Err(Unresolved {
                reason: "InvalidKind",
                message: format!("backendRef kind {group:?}/{kind:?} is not a Service"),
            });
        }
        let namespace = backend.namespace.as_deref().unwrap_or(route_namespace);
        let from = reference_grants::From {
            group: GATEWAY_GROUP,
            kind: route_kind,
            namespace: route_namespace,
        };
        let to = reference_grants::To {
            group: "",
            kind: "Service",
            namespace,
            name: &backend.name,
        };
        if namespace != route_namespace && !reference_grants::permits(self.resources, &from, &to) {
            return Err(Unresolved {
                reason: "RefNotPermitted",
                message: format!(
                    "no ReferenceGrant in {namespace:?} lets {route_kind}s in {route_namespace:?} reference Service {:?}",
                    backend.name
                ),
            });
        }
        let not_found = |message: String| Unresolved {
            reason: "BackendNotFound",
            message,
        };
        let service = *self
            .services
            .get(&(namespace, backend.name.as_str()))
            .ok_or_else(|| not_found(format!("Service {namespace}/{} not found", backend.name)))?;
        let port = backend.port.ok_or_else(|| {
            not_found(format!(
                "backendRef to Service {namespace}/{} has no port",
                backend.name
            ))
        })?;
        let service_port = service
            .spec
            .ports
            .iter()
            .find(|p| p.port == port)
            .ok_or_else(|| {
                not_found(format!(
                    "Service {namespace}/{} has no port {port}",
                    backend.name
                ))
            })?;
        let name = format!("service/{namespace}/{}/{port}", backend.name);
        if !self.clusters.contains_key(&name) {
            let endpoints = self
                .endpoints(service, service_port.name.as_deref())
                .map_err(not_found)?;
            self.clusters
                .insert(name.clone(), static_cluster(&name, &endpoints));
        }
        if route_kind == "GRPCRoute" || http2_upstream::app_protocol(service_port) {
            self.http2.insert(name.clone());
        }
        Ok(name)
    }

    pub fn into_clusters(self) -> Vec<Cluster> {
        let http2 = self.http2;
        self.clusters
            .into_iter()
            .map(|(name, mut cluster)| {
                if http2.contains(&name) {
                    http2_upstream::enable(&mut cluster);
                }
                cluster
            })
            .collect()
    }

    /// The annotation when present; otherwise the ready IP addresses of the
    /// Service's EndpointSlices, on the slice port named like the Service port.
    fn endpoints(
        &self,
        service: &Service,
        port_name: Option<&str>,
    ) -> Result<Vec<SocketAddr>, String> {
        if let Some(list) = service
            .metadata
            .annotations
            .get(STATIC_ENDPOINTS_ANNOTATION)
        {
            return list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<SocketAddr>().map_err(|_| {
                        format!(
                            "Service {}/{}: {STATIC_ENDPOINTS_ANNOTATION}: {s:?} is not ip:port",
                            service.metadata.namespace(),
                            service.metadata.name
                        )
                    })
                })
                .collect();
        }
        let port_name = port_name.unwrap_or("");
        let mut out = Vec::new();
        let slices = self
            .resources
            .endpoint_slices
            .iter()
            .map(|s| &s.object)
            .filter(|s| {
                s.metadata.namespace() == service.metadata.namespace()
                    && s.metadata.labels.get(SERVICE_NAME_LABEL) == Some(&service.metadata.name)
            });
        for slice in slices {
            let Some(port) = slice
                .ports
                .iter()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            else {
                continue;
            };
            for endpoint in slice
                .endpoints
                .iter()
                .filter(|e| e.conditions.ready != Some(false))
            {
                // FQDN slices cannot feed a STATIC cluster; they are left out.
                out.extend(
                    endpoint
                        .addresses
                        .iter()
                        .filter_map(|a| a.parse::<IpAddr>().ok())
                        .map(|ip| SocketAddr::new(ip, port.port)),
                );
            }
        }
        Ok(out)
    }
}

pub(super) fn static_cluster(name: &str, endpoints: &[SocketAddr]) -> Cluster {
    let lb_endpoints = endpoints
        .iter()
        .map(|addr| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: addr.ip().to_string(),
                        port_specifier: Some(PortSpecifier::PortValue(u32::from(addr.port()))),
                        ..SocketAddress::default()
                    })),
                }),
                ..Endpoint::default()
            })),
            ..LbEndpoint::default()
        })
        .collect();
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints,
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        }),
        ..Cluster::default()
    }
}
