//! Discovery for the stood-in groups, which the API server cannot serve (a
//! CRD cannot be in `""` or `apps`): `/api`, `/api/v1`, `/apis` (legacy and
//! aggregated, the form kubectl asks for first), `/apis/apps[/v1]` and the
//! OpenAPI v3 documents of `api/v1` and `apis/apps/v1`. Each answer is the
//! API server's own answer for the test groups, renamed: the test groups are
//! hidden, `""` and `apps` appear. kubectl 1.36 reads OpenAPI v3 for `apply`:
//! a PATCH operation with a `fieldValidation` parameter tells it the server
//! validates fields itself (strictly, so a typo is still refused). The
//! OpenAPI v2 document (protobuf, not read by `apply`) passes through
//! unchanged, with the test groups' names.

use anyhow::Result;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::rewrite::ResponseBody;
use super::upstream::{json_response, State};
use super::{APPS_GROUP, CORE_GROUP, NAMESPACE_STAND_IN_PLURAL};

/// The media type of aggregated discovery (v2; v2beta1 has the same shape).
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The answer to a discovery path, or `None` if `path` is not one.
pub(crate) async fn serve(
    state: &State,
    path: &str,
    accept: &str,
) -> Option<Result<Response<ResponseBody>>> {
    let answer = match path {
        "/api" | "/api/" => match aggregated_version(accept) {
            Some(version) => core_aggregated(state, version).await,
            None => Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": state.address()},
                    ],
                }),
            )),
        },
        "/apis" | "/apis/" => match aggregated_version(accept) {
            Some(version) => groups_aggregated(state, version).await,
            None => groups_legacy(state).await,
        },
        "/api/v1" => resource_list(state, CORE_GROUP).await,
        "/apis/apps" => Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            }),
        )),
        "/apis/apps/v1" => resource_list(state, APPS_GROUP).await,
        "/openapi/v3" => openapi_root(state).await,
        "/openapi/v3/api/v1" => openapi_document(state, CORE_GROUP).await,
        "/openapi/v3/apis/apps/v1" => openapi_document(state, APPS_GROUP).await,
        _ => return None,
    };
    Some(answer)
}

/// `v2` or `v2beta1` if `accept` asks for aggregated discovery (in its order).
fn aggregated_version(accept: &str) -> Option<&'static str> {
    accept.split(',').find_map(|entry| {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        if !params.contains(&"as=APIGroupDiscoveryList")
            || !params.contains(&"g=apidiscovery.k8s.io")
        {
            return None;
        }
        if params.contains(&"v=v2") {
            Some("v2")
        } else if params.contains(&"v=v2beta1") {
            Some("v2beta1")
        } else {
            None
        }
    })
}

/// The API server's strings for a test group, as the real group's:
/// group names, group versions and the Namespace stand-in's plural.
fn real_string(s: &str) -> Option<String> {
    let core_v1 = format!("{CORE_GROUP}/v1");
    let apps_v1 = format!("{APPS_GROUP}/v1");
    if s == CORE_GROUP {
        Some(String::new())
    } else if s == APPS_GROUP {
        Some("apps".to_owned())
    } else if s == core_v1 {
        Some("v1".to_owned())
    } else if s == apps_v1 {
        Some("apps/v1".to_owned())
    } else {
        s.strip_prefix(NAMESPACE_STAND_IN_PLURAL)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| format!("namespaces{rest}"))
    }
}

/// Applies `f` to every string value (not keys) in `value`.
fn rename(value: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| rename(v, f)),
        _ => {}
    }
}

fn aggregated_response(items: Vec<Value>, version: &str) -> Response<ResponseBody> {
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    let mut response = json_response(StatusCode::OK, &body);
    let content_type = AGGREGATED.replace("v=v2;", &format!("v={version};"));
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// The API server's aggregated groups: the test groups' entries (renamed to
/// `""` and `apps`) and the rest.
async fn server_groups(state: &State) -> Result<(Option<Value>, Option<Value>, Vec<Value>)> {
    let list = state.get_json("/apis", AGGREGATED).await?;
    let (mut core, mut apps, mut others) = (None, None, Vec::new());
    let items = match list.get("items") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    for mut item in items {
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match name.as_str() {
            CORE_GROUP | APPS_GROUP => {
                rename(&mut item, &real_string);
                if name == CORE_GROUP {
                    // The core group's entry has no name.
                    item["metadata"] = json!({"creationTimestamp": null});
                    core = Some(item);
                } else {
                    apps = Some(item);
                }
            }
            _ => others.push(item),
        }
    }
    Ok((core, apps, others))
}

async fn core_aggregated(state: &State, version: &str) -> Result<Response<ResponseBody>> {
    let (core, _, _) = server_groups(state).await?;
    Ok(aggregated_response(core.into_iter().collect(), version))
}

/// Every group but core: `apps` first, then the API server's own.
async fn all_groups(state: &State) -> Result<Vec<Value>> {
    let (_, apps, others) = server_groups(state).await?;
    Ok(apps.into_iter().chain(others).collect())
}

async fn groups_aggregated(state: &State, version: &str) -> Result<Response<ResponseBody>> {
    Ok(aggregated_response(all_groups(state).await?, version))
}

/// The legacy APIGroupList, made from the aggregated one (the API server's
/// own legacy list names only apiextensions.k8s.io).
async fn groups_legacy(state: &State) -> Result<Response<ResponseBody>> {
    let groups: Vec<Value> = all_groups(state)
        .await?
        .iter()
        .map(|item| {
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            let versions: Vec<Value> = item["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["version"].as_str())
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            let preferred = versions.first().cloned().unwrap_or(Value::Null);
            json!({"name": name, "versions": versions, "preferredVersion": preferred})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    ))
}

/// `/api/v1` or `/apis/apps/v1`: the test group's APIResourceList, renamed.
async fn resource_list(state: &State, group: &str) -> Result<Response<ResponseBody>> {
    let mut list = state
        .get_json(&format!("/apis/{group}/v1"), "application/json")
        .await?;
    rename(&mut list, &real_string);
    Ok(json_response(StatusCode::OK, &list))
}

/// The OpenAPI v3 index, with `api/v1` and `apis/apps/v1` in place of the
/// test groups (same hashes: the documents are renamed, not changed).
async fn openapi_root(state: &State) -> Result<Response<ResponseBody>> {
    let mut root = state.get_json("/openapi/v3", "application/json").await?;
    if let Some(Value::Object(paths)) = root.get_mut("paths") {
        let mut renamed = Map::new();
        for (key, mut entry) in std::mem::take(paths) {
            let real = if key == format!("apis/{CORE_GROUP}/v1") {
                Some(("api/v1", CORE_GROUP))
            } else if key == format!("apis/{APPS_GROUP}/v1") {
                Some(("apis/apps/v1", APPS_GROUP))
            } else if key.contains(CORE_GROUP) || key.contains(APPS_GROUP) {
                continue;
            } else {
                None
            };
            match real {
                Some((real_key, group)) => {
                    if let Some(Value::String(url)) = entry.get_mut("serverRelativeURL") {
                        *url = url.replace(&format!("apis/{group}/v1"), real_key);
                    }
                    renamed.insert(real_key.to_owned(), entry);
                }
                None => {
                    renamed.insert(key, entry);
                }
            }
        }
        *paths = renamed;
    }
    Ok(json_response(StatusCode::OK, &root))
}

/// The OpenAPI v3 document of a test group, as `api/v1` or `apis/apps/v1`:
/// paths, schema names (`io.k8s.api.core.v1.Service`), references and
/// `x-kubernetes-group-version-kind` renamed.
async fn openapi_document(state: &State, group: &str) -> Result<Response<ResponseBody>> {
    let mut doc = state
        .get_json(&format!("/openapi/v3/apis/{group}/v1"), "application/json")
        .await?;
    rename_openapi(&mut doc);
    Ok(json_response(StatusCode::OK, &doc))
}

/// A test group's name reversed, as the API server names its schemas
/// (`core.stand-in.tollgate.test` → `test.tollgate.stand-in.core`).
fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

fn openapi_string(s: &str) -> String {
    if let Some(real) = real_string(s) {
        return real;
    }
    s.replace(&format!("/apis/{CORE_GROUP}/v1"), "/api/v1")
        .replace(&format!("/apis/{APPS_GROUP}/v1"), "/apis/apps/v1")
        .replace(
            &format!("{}.v1.", reversed(CORE_GROUP)),
            "io.k8s.api.core.v1.",
        )
        .replace(
            &format!("{}.v1.", reversed(APPS_GROUP)),
            "io.k8s.api.apps.v1.",
        )
        .replace(&format!("/{NAMESPACE_STAND_IN_PLURAL}"), "/namespaces")
}

fn rename_openapi(value: &mut Value) {
    match value {
        Value::String(s) => *s = openapi_string(s),
        Value::Array(items) => items.iter_mut().for_each(rename_openapi),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (key, mut v) in old {
                rename_openapi(&mut v);
                map.insert(openapi_string(&key), v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_asks_for_aggregated_discovery_first() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(kubectl), Some("v2"));
        assert_eq!(aggregated_version("application/json, */*"), None);
    }

    #[test]
    fn openapi_names_become_the_real_ones() {
        assert_eq!(
            openapi_string("#/components/schemas/test.tollgate.stand-in.core.v1.Service"),
            "#/components/schemas/io.k8s.api.core.v1.Service"
        );
        assert_eq!(
            openapi_string("/apis/core.stand-in.tollgate.test/v1/standinnamespaces/{name}"),
            "/api/v1/namespaces/{name}"
        );
        assert_eq!(openapi_string("apps.stand-in.tollgate.test"), "apps");
    }
}
