//! What a Gateway asks for as a whole, beyond its listeners: `addresses`,
//! `infrastructure` and `tls`. Each is honoured or reported in the Gateway's
//! status, never a reason to refuse the file (the spec, and the Gateway API
//! conformance test GatewayStaticAddresses):
//!
//! - `addresses`: every Gateway is served by one Envoy bound to one IP
//!   (`--listener-address`). An address of another type, or a value that is
//!   not an IP, is `Accepted=False UnsupportedAddress`; an IP other than the
//!   one Envoy binds is `Programmed=False AddressNotUsable`. Either way the
//!   Gateway's listeners are not served. An entry without a value asks for
//!   any address, and gets Envoy's.
//! - `infrastructure.parametersRef`: Tollgate's Gateways take no parameters,
//!   so one is `Accepted=False InvalidParameters`. `labels` and `annotations`
//!   are for the resources an implementation creates per Gateway; file mode
//!   creates none.
//! - `tls.frontend` (client certificate validation) is not implemented: the
//!   Gateway is `Accepted=False Invalid` rather than served without it.
//!   `tls.backend` (the certificate presented to backends over TLS) has no
//!   effect: Tollgate connects to backends in plain text (no
//!   BackendTLSPolicy), so there is no connection to present it on.

use std::net::IpAddr;

use crate::resources::gateway_api::GatewaySpec;

/// Why a Gateway as a whole is not served: its `Accepted` or only its
/// `Programmed` condition is False, with this reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayProblem {
    NotAccepted(&'static str, String),
    NotProgrammed(&'static str, String),
}

impl GatewayProblem {
    pub fn message(&self) -> &str {
        match self {
            GatewayProblem::NotAccepted(_, m) | GatewayProblem::NotProgrammed(_, m) => m,
        }
    }
}

/// The first thing `spec` asks for that a Tollgate Envoy bound to `bound`
/// cannot give.
pub fn problem(spec: &GatewaySpec, bound: IpAddr) -> Option<GatewayProblem> {
    let mut addresses = Vec::with_capacity(spec.addresses.len());
    for (i, a) in spec.addresses.iter().enumerate() {
        let kind = a.kind.as_deref().unwrap_or("IPAddress");
        if kind != "IPAddress" {
            return Some(GatewayProblem::NotAccepted(
                "UnsupportedAddress",
                format!("addresses[{i}].type {kind}: only IPAddress is supported (Envoy binds --listener-address {bound})"),
            ));
        }
        let Some(value) = &a.value else { continue };
        match value.parse::<IpAddr>() {
            Ok(ip) => addresses.push((i, ip)),
            Err(_) => {
                return Some(GatewayProblem::NotAccepted(
                    "UnsupportedAddress",
                    format!("addresses[{i}].value {value:?} is not an IP address"),
                ))
            }
        }
    }
    if let Some(p) = spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    {
        return Some(GatewayProblem::NotAccepted(
            "InvalidParameters",
            format!(
                "infrastructure.parametersRef {}/{} {:?}: Tollgate's Gateways take no parameters",
                p.group, p.kind, p.name
            ),
        ));
    }
    if spec.tls.as_ref().is_some_and(|t| t.frontend.is_some()) {
        return Some(GatewayProblem::NotAccepted(
            "Invalid",
            "tls.frontend (client certificate validation) is not supported yet; the Gateway is not served rather than served without it".to_owned(),
        ));
    }
    // Envoy bound to every address of the machine serves any of them.
    let unusable = addresses
        .into_iter()
        .find(|(_, ip)| !bound.is_unspecified() && *ip != bound);
    unusable.map(|(i, ip)| {
        GatewayProblem::NotProgrammed(
            "AddressNotUsable",
            format!("addresses[{i}].value {ip}: Envoy binds {bound} (--listener-address)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> GatewaySpec {
        serde_yaml_ng::from_str(&format!("gatewayClassName: c\nlisteners: []\n{extra}")).unwrap()
    }

    fn reason(extra: &str, bound: &str) -> Option<GatewayProblem> {
        problem(&spec(extra), bound.parse().unwrap())
    }

    #[test]
    fn the_bound_address_or_none_is_served() {
        assert_eq!(reason("", "127.0.0.1"), None);
        assert_eq!(reason("addresses: [{value: 127.0.0.1}]", "127.0.0.1"), None);
        assert_eq!(reason("addresses: [{type: IPAddress}]", "127.0.0.1"), None);
        assert_eq!(reason("addresses: [{value: 10.1.2.3}]", "0.0.0.0"), None);
        assert_eq!(
            reason(
                "infrastructure: {labels: {a: b}, annotations: {c: d}}\nallowedListeners: {namespaces: {from: All}}",
                "127.0.0.1"
            ),
            None
        );
        assert_eq!(
            reason(
                "tls: {backend: {clientCertificateRef: {name: c}}}",
                "127.0.0.1"
            ),
            None
        );
    }

    #[test]
    fn another_address_type_or_a_value_that_is_not_an_ip_is_not_accepted() {
        let Some(GatewayProblem::NotAccepted(r, m)) = reason(
            "addresses: [{type: Hostname, value: gw.example.com}]",
            "127.0.0.1",
        ) else {
            panic!("accepted")
        };
        assert_eq!(r, "UnsupportedAddress");
        assert!(m.starts_with("addresses[0].type Hostname"), "{m}");
        let Some(GatewayProblem::NotAccepted(r, _)) = reason(
            "addresses: [{value: 127.0.0.1}, {value: not-an-ip}]",
            "127.0.0.1",
        ) else {
            panic!("accepted")
        };
        assert_eq!(r, "UnsupportedAddress");
    }

    #[test]
    fn an_ip_envoy_does_not_bind_is_accepted_but_not_programmed() {
        assert_eq!(
            reason(
                "addresses: [{value: 127.0.0.1}, {value: 10.9.9.9}]",
                "127.0.0.1"
            ),
            Some(GatewayProblem::NotProgrammed(
                "AddressNotUsable",
                "addresses[1].value 10.9.9.9: Envoy binds 127.0.0.1 (--listener-address)"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn parameters_and_client_certificate_validation_are_not_accepted() {
        let parameters = reason(
            "infrastructure: {parametersRef: {group: example.com, kind: Config, name: c}}",
            "127.0.0.1",
        );
        assert!(matches!(
            parameters,
            Some(GatewayProblem::NotAccepted("InvalidParameters", _))
        ));
        let frontend = reason(
            "tls: {frontend: {default: {validation: {caCertificateRefs: [{name: ca, kind: ConfigMap, group: ''}]}}}}",
            "127.0.0.1",
        );
        assert!(matches!(
            frontend,
            Some(GatewayProblem::NotAccepted("Invalid", _))
        ));
    }
}
