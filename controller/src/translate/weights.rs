//! A rule's backendRefs → where its requests go. Weighted splits go through
//! Tollgate's canary filter: the filter writes the chosen cluster's name to
//! `x-tollgate-backend` (overwriting whatever the client sent) and the route
//! forwards with `cluster_header`, so the split is the filter's (its even
//! spread, its metrics) and a later CanaryPolicy can add rules and stickiness
//! to the same config.

use envoy_types::pb::envoy::config::route::v3::{
    route::Action, route_action::ClusterNotFoundResponseCode, route_action::ClusterSpecifier,
    DirectResponseAction, RouteAction,
};
use tollgate_core::canary::config::{BackendConfig, CanaryConfig};
use tollgate_core::canary::policy::DEFAULT_HEADER;

/// One share of a rule's traffic: a cluster, or a backendRef that did not
/// resolve (its share answers 500).
pub enum Share {
    Cluster(String),
    Invalid(String),
}

/// How a rule reaches its backends: the route action, and the canary policy
/// its routes need when traffic is split.
pub struct BackendAction {
    pub action: Action,
    pub canary: Option<CanaryConfig>,
}

/// Nothing to send to is a 500; a lone live cluster is a plain `cluster`.
/// Several live shares (weight > 0) are a canary split over their cluster
/// names (shares naming the same cluster add up). Invalid shares are named
/// after a cluster that is never defined, and the route's
/// `cluster_not_found_response_code: INTERNAL_SERVER_ERROR` answers exactly
/// that share of requests with the 500 the spec asks for.
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
    let route = |cluster_specifier, any_invalid: bool| {
        Action::Route(RouteAction {
            cluster_specifier: Some(cluster_specifier),
            cluster_not_found_response_code: if any_invalid {
                ClusterNotFoundResponseCode::InternalServerError as i32
            } else {
                ClusterNotFoundResponseCode::ServiceUnavailable as i32
            },
            ..RouteAction::default()
        })
    };
    match live.as_slice() {
        [(name, true, _)] => BackendAction {
            action: route(ClusterSpecifier::Cluster((*name).to_owned()), false),
            canary: None,
        },
        many if many.iter().any(|(_, valid, _)| *valid) => BackendAction {
            action: route(
                ClusterSpecifier::ClusterHeader(DEFAULT_HEADER.to_owned()),
                many.iter().any(|(_, valid, _)| !valid),
            ),
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
            action: internal_server_error(),
            canary: None,
        },
    }
}

/// The action of a rule whose requests can only fail: no live backend, or a
/// filter Tollgate cannot apply (the spec: never skip a filter).
pub fn internal_server_error() -> Action {
    Action::DirectResponse(DirectResponseAction {
        status: 500,
        ..DirectResponseAction::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_500(action: &Action) -> bool {
        matches!(action, Action::DirectResponse(d) if d.status == 500)
    }

    fn route(action: &Action) -> &RouteAction {
        let Action::Route(route) = action else {
            panic!("not a route: {action:?}");
        };
        route
    }

    #[test]
    fn nothing_to_send_to_is_a_500() {
        assert!(is_500(&backend_action(&[]).action));
        assert!(is_500(
            &backend_action(&[(Share::Cluster("a".into()), 0)]).action
        ));
        assert!(is_500(
            &backend_action(&[(Share::Invalid("x".into()), 3)]).action
        ));
        assert!(is_500(
            &backend_action(&[
                (Share::Invalid("x".into()), 3),
                (Share::Invalid("y".into()), 1)
            ])
            .action
        ));
    }

    #[test]
    fn a_lone_live_cluster_is_a_plain_cluster() {
        let b = backend_action(&[
            (Share::Cluster("a".into()), 1),
            (Share::Invalid("x".into()), 0),
            (Share::Cluster("a".into()), 4),
        ]);
        assert_eq!(
            route(&b.action).cluster_specifier,
            Some(ClusterSpecifier::Cluster("a".into()))
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
        let r = route(&b.action);
        assert_eq!(
            r.cluster_specifier,
            Some(ClusterSpecifier::ClusterHeader("x-tollgate-backend".into()))
        );
        assert_eq!(
            r.cluster_not_found_response_code,
            ClusterNotFoundResponseCode::InternalServerError as i32
        );
        let canary = serde_json::to_value(b.canary.unwrap()).unwrap();
        assert_eq!(
            canary,
            serde_json::json!({"backends": [
                {"name": "a", "weight": 1}, {"name": "x", "weight": 3}, {"name": "c", "weight": 3}
            ]})
        );
    }
}
