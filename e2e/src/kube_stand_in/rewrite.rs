//! Between the real URLs and kinds a client uses and the stand-in CRDs the
//! API server stores: paths (`/api/v1/...` → the core test group,
//! `/apis/apps/v1/...` → the apps test group) and `apiVersion`s in bodies,
//! both ways. Watch streams are rewritten one JSON line at a time as they
//! arrive, so a watch still streams.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Body, Frame};
use serde_json::Value;

use super::{
    is_stood_in, real_group, stand_in_group, APPS_GROUP, CORE_GROUP, NAMESPACE_STAND_IN_PLURAL,
};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// The API server path of a client's path to a stood-in core or apps
/// resource; `None` for every other path (passed through unchanged).
pub(crate) fn upstream_path(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        return Some(format!("/apis/{CORE_GROUP}/v1/{}", core_rest(rest)));
    }
    if let Some(rest) = path.strip_prefix("/apis/apps/v1/") {
        return Some(format!("/apis/{APPS_GROUP}/v1/{rest}"));
    }
    None
}

/// `namespaces[/NAME[/status|/finalize]]` (optionally after `watch/`) names
/// the Namespace stand-in; `namespaces/NS/RESOURCE...` stays a namespaced path.
fn core_rest(rest: &str) -> String {
    let (watch, rest) = match rest.strip_prefix("watch/") {
        Some(rest) => ("watch/", rest),
        None => ("", rest),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let namespace_itself = parts.first() == Some(&"namespaces")
        && parts
            .get(2)
            .is_none_or(|sub| matches!(*sub, "status" | "finalize"));
    if namespace_itself {
        let tail = &rest["namespaces".len()..];
        format!("{watch}{NAMESPACE_STAND_IN_PLURAL}{tail}")
    } else {
        format!("{watch}{rest}")
    }
}

/// The real resource name of a stand-in plural (the same for all but Namespace).
pub(crate) fn real_resource(group: &str, resource: &str) -> String {
    if group == CORE_GROUP && resource == NAMESPACE_STAND_IN_PLURAL {
        "namespaces".to_owned()
    } else {
        resource.to_owned()
    }
}

/// Request bodies: every object whose `apiVersion` and `kind` name a stood-in
/// kind (the body itself, ownerReferences, an Event's involvedObject) gets the
/// test group's apiVersion, and so do the object's managedFields entries.
/// Other objects (DeleteOptions `v1`, say) are left alone.
pub(crate) fn to_stand_in(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let stand_in = match (map.get("apiVersion"), map.get("kind")) {
                (Some(Value::String(api_version)), Some(Value::String(kind))) => {
                    stand_in_api_version(api_version, kind).map(|s| (api_version.clone(), s))
                }
                _ => None,
            };
            if let Some((real, stand_in)) = stand_in {
                map.insert("apiVersion".to_owned(), Value::String(stand_in.clone()));
                let managed = map
                    .get_mut("metadata")
                    .and_then(|m| m.get_mut("managedFields"))
                    .and_then(Value::as_array_mut);
                for entry in managed.into_iter().flatten() {
                    if entry.get("apiVersion").and_then(Value::as_str) == Some(&real) {
                        entry["apiVersion"] = Value::String(stand_in.clone());
                    }
                }
            }
            map.values_mut().for_each(to_stand_in);
        }
        Value::Array(items) => items.iter_mut().for_each(to_stand_in),
        _ => {}
    }
}

fn stand_in_api_version(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if version != "v1" || !is_stood_in(group, kind) {
        return None;
    }
    Some(format!("{}/v1", stand_in_group(group)?))
}

/// Response bodies: every test-group `apiVersion` becomes the real one
/// (objects, list items, managedFields, watch events), and a Status names
/// the real group and resource.
pub(crate) fn from_stand_in(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "apiVersion" => {
                        if let Some(real) = real_api_version(s) {
                            *s = real.to_owned();
                        }
                    }
                    _ => from_stand_in(v),
                }
            }
            if map.get("kind").and_then(Value::as_str) == Some("Status") {
                if let Some(Value::String(message)) = map.get_mut("message") {
                    *message = real_text(message);
                }
                if let Some(details) = map.get_mut("details").and_then(Value::as_object_mut) {
                    let group = details
                        .get("group")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(Value::String(kind)) = details.get_mut("kind") {
                        *kind = real_resource(&group, kind);
                    }
                    if let Some(Value::String(g)) = details.get_mut("group") {
                        *g = real_group(&group).to_owned();
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(from_stand_in),
        _ => {}
    }
}

fn real_api_version(api_version: &str) -> Option<&'static str> {
    let (group, version) = api_version.split_once('/')?;
    match (group, version) {
        (CORE_GROUP, "v1") => Some("v1"),
        (APPS_GROUP, "v1") => Some("apps/v1"),
        _ => None,
    }
}

/// A server message about a stand-in, as the real server would word it
/// (`services "x" not found`, `... in API group "" ...`).
pub(crate) fn real_text(text: &str) -> String {
    text.replace(&format!("\"{CORE_GROUP}\""), "\"\"")
        .replace(&format!(".{CORE_GROUP}"), "")
        .replace(CORE_GROUP, "")
        .replace(APPS_GROUP, "apps")
        .replace(NAMESPACE_STAND_IN_PLURAL, "namespaces")
}

/// A whole JSON response body, rewritten; anything that is not JSON as is.
pub(crate) fn response_body(bytes: &[u8]) -> Bytes {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut value) => {
            from_stand_in(&mut value);
            let mut out = value.to_string().into_bytes();
            out.push(b'\n');
            Bytes::from(out)
        }
        Err(_) => Bytes::copy_from_slice(bytes),
    }
}

/// Complete lines (each ending in `\n`) of a watch stream, rewritten.
fn rewrite_lines(lines: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(lines.len());
    for line in lines.split_inclusive(|b| *b == b'\n') {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        if trimmed.iter().all(u8::is_ascii_whitespace) {
            out.extend_from_slice(line);
        } else {
            out.extend_from_slice(&response_body(trimmed));
        }
    }
    Bytes::from(out)
}

/// A watch stream (one JSON event per line), rewritten line by line as the
/// chunks arrive: each chunk's complete lines go out at once, a partial line
/// waits for its end.
pub(crate) fn watch_body<B>(body: B) -> ResponseBody
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    struct State<B> {
        body: B,
        pending: Vec<u8>,
        done: bool,
    }
    let state = State {
        body,
        pending: Vec::new(),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            match s.body.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: none in a watch
                    };
                    s.pending.extend_from_slice(&data);
                    if let Some(end) = s.pending.iter().rposition(|b| *b == b'\n') {
                        let rest = s.pending.split_off(end + 1);
                        let lines = std::mem::replace(&mut s.pending, rest);
                        let frame: Result<Frame<Bytes>, BoxError> =
                            Ok(Frame::data(rewrite_lines(&lines)));
                        return Some((frame, s));
                    }
                }
                Some(Err(e)) => {
                    s.done = true;
                    return Some((Err(e.into()), s));
                }
                None => {
                    s.done = true;
                    if s.pending.is_empty() {
                        return None;
                    }
                    let last = rewrite_lines(&std::mem::take(&mut s.pending));
                    return Some((Ok(Frame::data(last)), s));
                }
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_paths_map_onto_the_test_group_and_namespaces_onto_their_stand_in() {
        let g = CORE_GROUP;
        let cases = [
            (
                "/api/v1/namespaces",
                format!("/apis/{g}/v1/standinnamespaces"),
            ),
            (
                "/api/v1/namespaces/a",
                format!("/apis/{g}/v1/standinnamespaces/a"),
            ),
            (
                "/api/v1/namespaces/a/status",
                format!("/apis/{g}/v1/standinnamespaces/a/status"),
            ),
            (
                "/api/v1/watch/namespaces",
                format!("/apis/{g}/v1/watch/standinnamespaces"),
            ),
            (
                "/api/v1/namespaces/a/services/s/status",
                format!("/apis/{g}/v1/namespaces/a/services/s/status"),
            ),
            ("/api/v1/secrets", format!("/apis/{g}/v1/secrets")),
        ];
        for (path, want) in cases {
            assert_eq!(
                upstream_path(path).as_deref(),
                Some(want.as_str()),
                "{path}"
            );
        }
        assert_eq!(
            upstream_path("/apis/apps/v1/namespaces/a/deployments").as_deref(),
            Some("/apis/apps.stand-in.tollgate.test/v1/namespaces/a/deployments")
        );
        assert_eq!(upstream_path("/apis/apps/v1"), None);
        assert_eq!(upstream_path("/api/v1"), None);
        assert_eq!(
            upstream_path("/apis/gateway.networking.k8s.io/v1/gateways"),
            None
        );
    }

    #[test]
    fn api_versions_go_to_the_test_group_and_back_and_other_objects_stay() {
        let mut body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "s"}],
                "managedFields": [{"apiVersion": "apps/v1", "manager": "m"}],
            },
            "spec": {"template": {"apiVersion": "v1", "kind": "Pod"}},
            "options": {"apiVersion": "v1", "kind": "DeleteOptions"},
        });
        let original = body.clone();
        to_stand_in(&mut body);
        assert_eq!(body["apiVersion"], "apps.stand-in.tollgate.test/v1");
        assert_eq!(
            body["metadata"]["managedFields"][0]["apiVersion"],
            "apps.stand-in.tollgate.test/v1"
        );
        assert_eq!(
            body["metadata"]["ownerReferences"][0]["apiVersion"],
            "core.stand-in.tollgate.test/v1"
        );
        assert_eq!(body["spec"]["template"]["apiVersion"], "v1");
        assert_eq!(body["options"]["apiVersion"], "v1");
        from_stand_in(&mut body);
        assert_eq!(body, original);
    }

    #[tokio::test]
    async fn a_watch_stream_is_rewritten_line_by_line_across_chunks() {
        let chunks = [
            "{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"core.stand-",
            "in.tollgate.test/v1\",\"kind\":\"Service\"}}\n{\"type\":\"BOOKMARK\",",
            "\"object\":{\"apiVersion\":\"apps.stand-in.tollgate.test/v1\"}}\n",
        ];
        let frames = chunks.map(|c| {
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c.as_bytes())))
        });
        let body = watch_body(StreamBody::new(futures_util::stream::iter(frames)));
        let mut stream = body.into_data_stream();
        use futures_util::StreamExt as _;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.push(String::from_utf8(chunk.unwrap().to_vec()).unwrap());
        }
        // The first chunk has no complete line: nothing goes out for it.
        assert_eq!(out.len(), 2, "{out:?}");
        let first: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(first["object"]["apiVersion"], "v1");
        let second: Value = serde_json::from_str(&out[1]).unwrap();
        assert_eq!(second["object"]["apiVersion"], "apps/v1");
    }

    #[test]
    fn a_status_names_the_real_group_and_resource() {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "code": 403,
            "message": "standinnamespaces is forbidden: User \"u\" cannot get resource \"standinnamespaces\" in API group \"core.stand-in.tollgate.test\"",
            "details": {"group": "core.stand-in.tollgate.test", "kind": "standinnamespaces"},
        });
        from_stand_in(&mut status);
        assert_eq!(
            status["message"],
            "namespaces is forbidden: User \"u\" cannot get resource \"namespaces\" in API group \"\""
        );
        assert_eq!(
            status["details"],
            json!({"group": "", "kind": "namespaces"})
        );
        assert_eq!(
            real_text("services.core.stand-in.tollgate.test \"x\" not found"),
            "services \"x\" not found"
        );
    }
}
