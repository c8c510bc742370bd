//! What the Gateway API CRDs check of a route as a whole (an HTTPRoute or a
//! GRPCRoute), made here because file mode has no API server to refuse the
//! object: its hostnames, its parentRefs' two CEL rules, and an HTTPRoute's
//! `minItems: 1` on rules. A route that fails is refused on every parent
//! (`Accepted=False UnsupportedValue`, naming the field); it costs only
//! itself. (`rules: []` would otherwise give its hostnames an empty virtual
//! host that takes them from other routes, and a parent named twice would be
//! attached, and counted, twice.)

use super::hostnames;
use super::listeners::RouteKind;
use crate::resources::ParentRef;

/// The first thing the CRD would refuse in the route, as `field: why`.
pub fn check(
    kind: RouteKind,
    hostnames: &[String],
    parent_refs: &[ParentRef],
    rules: usize,
) -> Result<(), String> {
    for (i, h) in hostnames.iter().enumerate() {
        hostnames::check(h).map_err(|e| format!("spec.hostnames[{i}]: {e}"))?;
    }
    parent_refs_unambiguous(parent_refs)?;
    if kind == RouteKind::Http && rules == 0 {
        return Err("spec.rules: an HTTPRoute needs at least one rule".to_owned());
    }
    Ok(())
}

/// The CRD's CEL rules on `parentRefs`: refs to the same parent either all
/// name a `sectionName` or none does, and no two name the same one.
fn parent_refs_unambiguous(refs: &[ParentRef]) -> Result<(), String> {
    for (j, b) in refs.iter().enumerate() {
        for (i, a) in refs[..j].iter().enumerate() {
            if parent(a) != parent(b) {
                continue;
            }
            let why = match (section(a), section(b)) {
                (Some(x), Some(y)) if x != y => continue,
                (Some(_), Some(_)) | (None, None) => "names the same parent and sectionName as",
                _ => "names the same parent as, with a sectionName only on one of them,",
            };
            return Err(format!("spec.parentRefs[{j}] {why} parentRefs[{i}]"));
        }
    }
    Ok(())
}

/// The parent a ref names, group and kind defaulted as the API server does.
fn parent(p: &ParentRef) -> (&str, &str, &str, &str) {
    (
        p.group.as_deref().unwrap_or("gateway.networking.k8s.io"),
        p.kind.as_deref().unwrap_or("Gateway"),
        p.namespace.as_deref().unwrap_or(""),
        p.name.as_str(),
    )
}

fn section(p: &ParentRef) -> Option<&str> {
    p.section_name.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(yaml: &str) -> Vec<ParentRef> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn checked(yaml: &str) -> Result<(), String> {
        check(RouteKind::Http, &[], &refs(yaml), 1)
    }

    #[test]
    fn a_parent_named_twice_needs_distinct_section_names() {
        assert_eq!(
            checked("[{name: eg, sectionName: a}, {name: eg, sectionName: b}, {name: other}]"),
            Ok(())
        );
        assert_eq!(
            checked("[{name: eg}, {name: eg}]"),
            Err(
                "spec.parentRefs[1] names the same parent and sectionName as parentRefs[0]"
                    .to_owned()
            )
        );
        assert!(checked("[{name: eg, sectionName: a}, {name: eg, sectionName: a}]").is_err());
        assert!(checked("[{name: eg, sectionName: a}, {name: eg}]")
            .unwrap_err()
            .contains("only on one of them"));
        // The CEL rule compares namespaces as written, and group/kind after defaulting.
        assert_eq!(
            checked("[{name: eg}, {name: eg, namespace: other}]"),
            Ok(())
        );
        assert!(checked(
            "[{name: eg}, {name: eg, group: gateway.networking.k8s.io, kind: Gateway}]"
        )
        .is_err());
    }

    #[test]
    fn hostnames_and_an_empty_rule_list_are_checked() {
        let bad = ["Example.com".to_owned()];
        assert!(check(RouteKind::Grpc, &bad, &[], 1)
            .unwrap_err()
            .starts_with("spec.hostnames[0]: "));
        assert_eq!(
            check(RouteKind::Http, &[], &[], 0),
            Err("spec.rules: an HTTPRoute needs at least one rule".to_owned())
        );
        assert_eq!(check(RouteKind::Grpc, &[], &[], 0), Ok(()));
    }
}
