//! `allowedRoutes.namespaces.from: Selector`: a label selector evaluated on
//! the labels of the route's Namespace.
//!
//! File mode has no API server, so a namespace is what the directory says: the
//! labels of its `Namespace` object when there is one, plus the label
//! `kubernetes.io/metadata.name: <name>` that Kubernetes (1.21+) sets on every
//! namespace and nobody can change. A namespace without a Namespace object has
//! that label only, so selecting by name (the common way to share a Gateway)
//! works without writing Namespace objects.

use std::collections::BTreeMap;

use crate::resources::gateway_api::{LabelSelector, SelectorOperator};
use crate::resources::Resources;

pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The labels of namespace `name`.
pub fn labels(resources: &Resources, name: &str) -> BTreeMap<String, String> {
    let mut labels = resources
        .namespaces
        .iter()
        .map(|n| &n.object.metadata)
        .find(|m| m.name == name)
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(NAME_LABEL.to_owned(), name.to_owned());
    labels
}

/// Kubernetes' semantics: every `matchLabels` pair and every expression must
/// hold; an empty selector selects everything. (The API server refuses `In`
/// or `NotIn` without values and `Exists`/`DoesNotExist` with values; here `In`
/// with no values selects nothing, and values of `Exists` are ignored.)
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|e| {
            let value = labels.get(&e.key);
            match e.operator {
                SelectorOperator::In => value.is_some_and(|v| e.values.contains(v)),
                SelectorOperator::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::loader::load_str;

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(matches(&selector("{}"), &set(&[])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector("matchLabels: {team: a, env: prod}");
        assert!(matches(
            &s,
            &set(&[("team", "a"), ("env", "prod"), ("x", "y")])
        ));
        assert!(!matches(&s, &set(&[("team", "a")])));
        assert!(!matches(&s, &set(&[("team", "a"), ("env", "dev")])));
    }

    #[test]
    fn expressions() {
        let in_ = selector("matchExpressions: [{key: env, operator: In, values: [prod, stage]}]");
        assert!(matches(&in_, &set(&[("env", "stage")])));
        assert!(!matches(&in_, &set(&[("env", "dev")])));
        assert!(!matches(&in_, &set(&[])));
        let not_in = selector("matchExpressions: [{key: env, operator: NotIn, values: [prod]}]");
        assert!(matches(&not_in, &set(&[("env", "dev")])));
        assert!(
            matches(&not_in, &set(&[])),
            "NotIn holds when the label is absent"
        );
        assert!(!matches(&not_in, &set(&[("env", "prod")])));
        let exists = selector("matchExpressions: [{key: env, operator: Exists}]");
        assert!(matches(&exists, &set(&[("env", "")])));
        assert!(!matches(&exists, &set(&[])));
        let absent = selector("matchExpressions: [{key: env, operator: DoesNotExist}]");
        assert!(matches(&absent, &set(&[])));
        assert!(!matches(&absent, &set(&[("env", "prod")])));
        let both =
            selector("matchLabels: {team: a}\nmatchExpressions: [{key: env, operator: Exists}]");
        assert!(!matches(&both, &set(&[("team", "a")])));
        assert!(matches(&both, &set(&[("team", "a"), ("env", "x")])));
    }

    #[test]
    fn a_namespace_always_carries_its_name_label() {
        let mut resources = Resources::default();
        load_str(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: web, labels: {team: a, kubernetes.io/metadata.name: spoofed}}\n",
            &mut resources,
        )
        .unwrap();
        assert_eq!(
            labels(&resources, "web"),
            set(&[("team", "a"), (NAME_LABEL, "web")])
        );
        assert_eq!(labels(&resources, "other"), set(&[(NAME_LABEL, "other")]));
    }
}
