//! A rule's backendRefs → where its requests go. Weighted splits go through
//! Tollgate's canary filter: the filter writes the chosen cluster's name to
//! `x-tollgate-backend` (overwriting whatever the client sent) and the route
//! forwards with `cluster_header`, so the split is the filter's (its even
//! spread, its metrics) and a later CanaryPolicy can add rules and stickiness
//! to the same config.

use tollgate_core::canary::config::{BackendConfig, CanaryConfig};

use super::route_plan::Destination;

/// One share of a rule's traffic: a cluster, or a backendRef that did not
/// resolve (its share answers 500).
pub enum Share {
    Cluster(String),
    Invalid(String),
}

/// How a rule reaches its backends: where its requests go (none: nowhere,
/// they answer 500) and whether a share of them names a backend that did not
/// resolve, and the canary policy its routes need when traffic is split.
pub struct BackendAction {
    pub destination: Option<(Destination, bool)>,
    pub canary: Option<CanaryConfig>,
}

/// Nothing to send to is a 500; a lone live cluster is a plain cluster.
/// Several live shares (weight > 0) are a canary split over their cluster
/// names (shares naming the same cluster add up). Invalid shares are named
/// after a cluster that is never defined, and the route answers exactly that
/// share of requests with the 500 the spec asks for (`emit_route`).
pub fn backend_action(shares: &[(Share, u32)]) -> BackendAction {
    let mut live: Vec<(&str, bool, u32)> = Vec::new();
    for (share, weight) in shares.iter().filter(|(_, w)| *w > 0) {
        let (name, valid) = match share {
            Share::Cluster(name) => (name.as_str(), true),
            Share::Invalid(name) => (name.as_str(), false),
        };
        match live.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, total)) => *total = total.saturating_add(*weight),
            None => live.push((name, valid, *weight)),
        }
    }
    match live.as_slice() {
        [(name, true, _)] => BackendAction {
            destination: Some((Destination::Cluster((*name).to_owned()), false)),
            canary: None,
        },
        many if many.iter().any(|(_, valid, _)| *valid) => BackendAction {
            destination: Some((
                Destination::CanaryHeader,
                many.iter().any(|(_, valid, _)| !valid),
            )),
            canary: Some(CanaryConfig {
                header: None,
                backends: many
                    .iter()
                    .map(|(name, _, weight)| BackendConfig {
                        name: (*name).to_owned(),
                        weight: Some(i64::from(*weight)),
                    })
                    .collect(),
                rules: Vec::new(),
                sticky: None,
            }),
        },
        _ => BackendAction {
            destination: None,
            canary: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_500(b: &BackendAction) -> bool {
        b.destination.is_none()
    }

    #[test]
    fn nothing_to_send_to_is_a_500() {
        assert!(is_500(&backend_action(&[])));
        assert!(is_500(&backend_action(&[(Share::Cluster("a".into()), 0)])));
        assert!(is_500(&backend_action(&[(Share::Invalid("x".into()), 3)])));
        assert!(is_500(&backend_action(&[
            (Share::Invalid("x".into()), 3),
            (Share::Invalid("y".into()), 1)
        ])));
    }

    #[test]
    fn a_lone_live_cluster_is_a_plain_cluster() {
        let b = backend_action(&[
            (Share::Cluster("a".into()), 1),
            (Share::Invalid("x".into()), 0),
            (Share::Cluster("a".into()), 4),
        ]);
        assert_eq!(
            b.destination,
            Some((Destination::Cluster("a".into()), false))
        );
        assert!(b.canary.is_none());
    }

    #[test]
    fn a_split_goes_through_the_canary_filter_and_invalid_shares_answer_500() {
        let b = backend_action(&[
            (Share::Cluster("a".into()), 1),
            (Share::Invalid("x".into()), 2),
            (Share::Cluster("b".into()), 0),
            (Share::Cluster("c".into()), 3),
            (Share::Invalid("x".into()), 1),
        ]);
        assert_eq!(b.destination, Some((Destination::CanaryHeader, true)));
        let canary = serde_json::to_value(b.canary.unwrap()).unwrap();
        assert_eq!(
            canary,
            serde_json::json!({"backends": [
                {"name": "a", "weight": 1}, {"name": "x", "weight": 3}, {"name": "c", "weight": 3}
            ]})
        );
    }
}
