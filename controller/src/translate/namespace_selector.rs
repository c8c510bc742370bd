//! `allowedRoutes.namespaces.from: Selector`: a label selector evaluated on
//! the labels of the route's Namespace.
//!
//! File mode has no API server, so a namespace is what the directory says: the
//! labels of its `Namespace` object when there is one, plus the label
//! `kubernetes.io/metadata.name: <name>` that Kubernetes (1.21+) sets on every
//! namespace and nobody can change. A namespace without a Namespace object has
//! that label only, so selecting by name (the common way to share a Gateway)
//! works without writing Namespace objects.
//!
//! A selector the API server would refuse (`In` without values, a key that
//! is not a label key, …) is [`check`]ed here, since in file mode nothing else
//! validates it: its listener is not Accepted, rather than selecting nothing
//! in silence.

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

/// The first thing the API server's LabelSelector validation would refuse,
/// as `field: problem`.
pub fn check(selector: &LabelSelector) -> Result<(), String> {
    for (key, value) in &selector.match_labels {
        label_key(key).map_err(|e| format!("matchLabels key {key:?}: {e}"))?;
        label_value(value).map_err(|e| format!("matchLabels.{key} {value:?}: {e}"))?;
    }
    for (i, e) in selector.match_expressions.iter().enumerate() {
        let at = format!("matchExpressions[{i}]");
        label_key(&e.key).map_err(|why| format!("{at}.key {:?}: {why}", e.key))?;
        match e.operator {
            SelectorOperator::In | SelectorOperator::NotIn if e.values.is_empty() => {
                return Err(format!("{at}.values: {:?} needs at least one", e.operator));
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !e.values.is_empty() => {
                return Err(format!("{at}.values: {:?} takes none", e.operator));
            }
            _ => {}
        }
        for v in &e.values {
            label_value(v).map_err(|why| format!("{at}.values {v:?}: {why}"))?;
        }
    }
    Ok(())
}

/// `[prefix/]name`: a DNS subdomain prefix of at most 253 characters, a name
/// as [`label_value`] but not empty.
fn label_key(key: &str) -> Result<(), String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            let subdomain = prefix.len() <= 253
                && prefix.split('.').all(|part| {
                    !part.is_empty()
                        && part.len() <= 63
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !part.starts_with('-')
                        && !part.ends_with('-')
                });
            if !subdomain {
                return Err("its prefix is not a DNS subdomain".to_owned());
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("a label key needs a name".to_owned());
    }
    label_value(name)
}

/// At most 63 characters of `[A-Za-z0-9_.-]`, starting and ending with an
/// alphanumeric one (or empty).
fn label_value(value: &str) -> Result<(), String> {
    let edges_ok = |b: Option<&u8>| b.is_none_or(u8::is_ascii_alphanumeric);
    let ok = value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && edges_ok(value.as_bytes().first())
        && edges_ok(value.as_bytes().last());
    if ok {
        Ok(())
    } else {
        Err("not a label (at most 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends)".to_owned())
    }
}

/// Kubernetes' semantics: every `matchLabels` pair and every expression must
/// hold; an empty selector selects everything. Meant for selectors that
/// passed [`check`].
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
    fn a_selector_the_api_server_would_refuse_names_its_field() {
        let problem = |yaml: &str| check(&selector(yaml)).unwrap_err();
        assert_eq!(
            problem("matchExpressions: [{key: env, operator: In}]"),
            "matchExpressions[0].values: In needs at least one"
        );
        assert_eq!(
            problem("matchExpressions: [{key: env, operator: Exists, values: [a]}]"),
            "matchExpressions[0].values: Exists takes none"
        );
        assert!(problem("matchLabels: {\"bad key\": a}").starts_with("matchLabels key"));
        assert!(problem("matchLabels: {team: \"-a\"}").starts_with("matchLabels.team"));
        assert!(problem("matchLabels: {Example.com/team: a}").contains("prefix"));
        assert!(problem("matchLabels: {example.com/: a}").contains("needs a name"));
        let long = "a".repeat(64);
        assert!(check(&selector(&format!("matchLabels: {{team: {long}}}"))).is_err());
        for good in [
            "{}",
            "matchLabels: {kubernetes.io/metadata.name: web, team: \"\", a_b.c-d: X1}",
            "matchExpressions: [{key: env, operator: NotIn, values: [prod]}, {key: x, operator: DoesNotExist}]",
        ] {
            assert_eq!(check(&selector(good)), Ok(()), "{good}");
        }
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
