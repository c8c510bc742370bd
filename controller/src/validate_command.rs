//! `tollgate validate DIR`: every problem a directory holds, each at its
//! `file:line`, before any Envoy sees it — what `serve` would log and put in
//! status, in one pass, for CI and pre-commit hooks.
//!
//! Two kinds of problems: the loader's (YAML syntax, unknown or mistyped
//! fields; already `file:line:column`) and the translation's, which are the
//! status conditions that say something is wrong (`Accepted: False`,
//! `ResolvedRefs: False`, `Conflicted: True`, …), placed at the line where the
//! object's document starts. An object refused at load is reported once, by
//! the loader's line (its status says the same). Exits non-zero when there is
//! any problem.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use crate::resources::refused::RefusedKind;
use crate::resources::{self, Loaded, Origin, Resources};
use crate::translate::status::{Condition, RouteStatus, Status};
use crate::translate::{self};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of Gateway API and Tollgate policy YAML (`*.yaml`, `*.yml`, recursive).
    dir: PathBuf,
    #[command(flatten)]
    translator: crate::translator_args::TranslatorArgs,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let loaded = match resources::load_dir(&args.dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            for problem in &e.problems {
                println!("{problem}");
            }
            anyhow::bail!("{}: {} problem(s)", args.dir.display(), e.problems.len());
        }
    };
    for warning in &loaded.warnings {
        println!("warning: {warning}");
    }
    let load_problems: Vec<String> = loaded.problems().map(str::to_owned).collect();
    for problem in &load_problems {
        println!("{problem}");
    }
    let options = args.translator.options()?;
    let translation = translate::translate(&loaded, &options);
    let mut report = problems(&loaded, &translation.status);
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    report.problems.extend(load_problems);
    if report.problems.is_empty() {
        println!("{}: no problems", args.dir.display());
        Ok(())
    } else {
        anyhow::bail!(
            "{}: {} problem(s)",
            args.dir.display(),
            report.problems.len()
        )
    }
}

#[derive(Debug, Default)]
struct Report {
    problems: Vec<String>,
    warnings: Vec<String>,
}

/// True when the condition reports something wrong: `Conflicted` is bad when
/// True, every other type the status carries is bad when False.
fn is_problem(condition: &Condition) -> bool {
    (condition.kind == "Conflicted") == (condition.status == "True")
}

fn describe(condition: &Condition) -> String {
    let mut text = format!(
        "{}={} ({})",
        condition.kind, condition.status, condition.reason
    );
    if !condition.message.is_empty() {
        text.push_str(": ");
        text.push_str(&condition.message);
    }
    text
}

/// `(namespace, name)` → `file:line`, for one kind.
fn sources<T>(
    objects: &[Loaded<T>],
    key: impl Fn(&T) -> (String, String),
) -> BTreeMap<(String, String), String> {
    objects
        .iter()
        .map(|o| (key(&o.object), o.source.to_string()))
        .collect()
}

fn problems(resources: &Resources, status: &Status) -> Report {
    let mut report = Report::default();
    // Refused objects: (kind, namespace, name); cluster-scoped ones with "".
    let refused: HashSet<(RefusedKind, &str, &str)> = resources
        .refused
        .iter()
        .map(|r| {
            let (kind, meta) = (r.object.kind, &r.object.metadata);
            let namespace = match kind {
                RefusedKind::GatewayClass => "",
                _ => meta.namespace(),
            };
            (kind, namespace, meta.name.as_str())
        })
        .collect();
    let is_refused = |kind, namespace: &str, name: &str| refused.contains(&(kind, namespace, name));
    let classes = sources(&resources.gateway_classes, |c| {
        (String::new(), c.metadata.name.clone())
    });
    let gateways = sources(&resources.gateways, |g| {
        (g.metadata.namespace().to_owned(), g.metadata.name.clone())
    });
    let at = |map: &BTreeMap<(String, String), String>, ns: &str, name: &str| {
        map.get(&(ns.to_owned(), name.to_owned()))
            .map_or_else(|| "?".to_owned(), Clone::clone)
    };
    for class in &status.gateway_classes {
        if is_refused(RefusedKind::GatewayClass, "", &class.name) {
            continue;
        }
        let source = at(&classes, "", &class.name);
        for c in class.conditions.iter().filter(|c| is_problem(c)) {
            report.problems.push(format!(
                "{source}: GatewayClass {}: {}",
                class.name,
                describe(c)
            ));
        }
    }
    for gateway in &status.gateways {
        if is_refused(RefusedKind::Gateway, &gateway.namespace, &gateway.name) {
            continue;
        }
        let source = at(&gateways, &gateway.namespace, &gateway.name);
        let what = format!("Gateway {}/{}", gateway.namespace, gateway.name);
        for c in gateway.conditions.iter().filter(|c| is_problem(c)) {
            report
                .problems
                .push(format!("{source}: {what}: {}", describe(c)));
        }
        for listener in &gateway.listeners {
            for c in listener.conditions.iter().filter(|c| is_problem(c)) {
                report.problems.push(format!(
                    "{source}: {what} listener {}: {}",
                    listener.name,
                    describe(c)
                ));
            }
        }
    }
    let http_routes = sources(&resources.http_routes, |r| {
        (r.metadata.namespace().to_owned(), r.metadata.name.clone())
    });
    let grpc_routes = sources(&resources.grpc_routes, |r| {
        (r.metadata.namespace().to_owned(), r.metadata.name.clone())
    });
    for (kind, refused_kind, statuses, map) in [
        (
            "HTTPRoute",
            RefusedKind::HttpRoute,
            &status.http_routes,
            &http_routes,
        ),
        (
            "GRPCRoute",
            RefusedKind::GrpcRoute,
            &status.grpc_routes,
            &grpc_routes,
        ),
    ] {
        for route in statuses {
            if is_refused(refused_kind, &route.namespace, &route.name) {
                continue;
            }
            let source = at(map, &route.namespace, &route.name);
            for parent in &route.parents {
                let p = &parent.parent_ref;
                let section = p
                    .section_name
                    .as_deref()
                    .map_or_else(String::new, |s| format!(" section {s}"));
                for c in parent.conditions.iter().filter(|c| is_problem(c)) {
                    report.problems.push(format!(
                        "{source}: {kind} {}/{} parent Gateway {}/{}{section}: {}",
                        route.namespace,
                        route.name,
                        p.namespace,
                        p.name,
                        describe(c)
                    ));
                }
            }
        }
    }
    // Policy statuses come in load order, one per loaded policy (then the
    // refused ones, reported by the loader).
    for (policy, loaded) in status.policies.iter().zip(&resources.policies) {
        for c in policy.conditions.iter().filter(|c| is_problem(c)) {
            report.problems.push(format!(
                "{}: {} {}/{}: {}",
                loaded.source,
                policy.kind,
                policy.namespace,
                policy.name,
                describe(c)
            ));
        }
    }
    // A route whose parentRefs name no Gateway Tollgate owns gets no status;
    // that is right for another controller's route, and a typo otherwise.
    let http = resources
        .http_routes
        .iter()
        .map(|r| (&r.object.metadata, &r.source));
    let http = http.map(|(meta, source)| (meta.namespace(), meta.name.as_str(), source));
    let grpc = resources
        .grpc_routes
        .iter()
        .map(|r| (&r.object.metadata, &r.source));
    let grpc = grpc.map(|(meta, source)| (meta.namespace(), meta.name.as_str(), source));
    report
        .warnings
        .extend(unowned("HTTPRoute", &status.http_routes, http));
    report
        .warnings
        .extend(unowned("GRPCRoute", &status.grpc_routes, grpc));
    report
}

/// A warning for each route (namespace, name, source) without a status.
fn unowned<'a>(
    kind: &str,
    statuses: &[RouteStatus],
    routes: impl Iterator<Item = (&'a str, &'a str, &'a Origin)>,
) -> Vec<String> {
    let owned: HashSet<(&str, &str)> = statuses
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();
    routes
        .filter(|(ns, name, _)| !owned.contains(&(*ns, *name)))
        .map(|(ns, name, source)| {
            format!(
                "{source}: {kind} {ns}/{name} attaches to no Gateway of a Tollgate GatewayClass"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::loader::load_str;

    const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: tollgate}\nspec: {controllerName: tollgate.dev/gateway-controller}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  gatewayClassName: tollgate\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n";

    fn report(routes: &str) -> Report {
        let mut resources = Resources::default();
        load_str("gw.yaml", GATEWAY, &mut resources).unwrap();
        load_str("routes.yaml", routes, &mut resources).unwrap();
        let options = translate::Options {
            listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
            port_remap: true,
            port_map: Default::default(),
            filter_runtime: translate::FilterRuntime::DynamicModule,
            ratelimit_service: None,
        };
        let translation = translate::translate(&resources, &options);
        problems(&resources, &translation.status)
    }

    #[test]
    fn a_clean_directory_has_no_problems() {
        let r = report("apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  annotations: {tollgate.dev/static-endpoints: \"127.0.0.1:3000\"}\nspec: {ports: [{port: 80}]}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: echo, port: 80}]}]\n");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn a_route_problem_is_placed_at_the_route_document() {
        let r = report("# routes\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: gw, sectionName: https}]\n  rules: [{backendRefs: [{name: missing, port: 80}]}]\n");
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(
            r.problems[0].starts_with("routes.yaml:3: HTTPRoute default/r parent Gateway default/gw section https: Accepted=False (NoMatchingParent)"),
            "{}",
            r.problems[0]
        );
        assert!(
            r.problems[1].contains("ResolvedRefs=False (BackendNotFound)"),
            "{}",
            r.problems[1]
        );
    }

    #[test]
    fn a_route_for_no_gateway_of_ours_is_a_warning() {
        let r = report("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: gw-typo}]\n");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(
            r.warnings,
            vec!["routes.yaml:1: HTTPRoute default/r attaches to no Gateway of a Tollgate GatewayClass"]
        );
    }

    #[test]
    fn a_policy_problem_is_placed_at_the_policy_document() {
        let r = report("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: gw}]\n---\napiVersion: tollgate.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: global}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]\n  rateLimit: {global: {rules: [{limit: {requests: 1, unit: Second}}]}}\n");
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(
            r.problems[0].starts_with("routes.yaml:7: RateLimitPolicy default/global: Accepted=False (Invalid): spec.rateLimit.global: global rules need the rate limit service"),
            "{}",
            r.problems[0]
        );
    }

    #[test]
    fn conflicted_is_a_problem_when_true_and_the_others_when_false() {
        let c = |kind, ok| Condition::new(kind, ok, "R", String::new());
        assert!(is_problem(&c("Conflicted", true)));
        assert!(!is_problem(&c("Conflicted", false)));
        assert!(is_problem(&c("Accepted", false)));
        assert!(!is_problem(&c("Programmed", true)));
    }
}
