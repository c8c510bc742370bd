//! What the Kubernetes tests share: reading objects back with kubectl
//! until they say what a test waits for, and picking their conditions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)] // each test uses some

use std::time::{Duration, Instant};

use e2e::kube_apiserver::KubeApiServer;
use serde_json::Value;

/// `kubectl get KIND NAME -o json`, polled (bounded: 20 s) until `done`.
pub async fn object_until(
    api: &KubeApiServer,
    object: &[&str],
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    let mut args = vec!["get"];
    args.extend_from_slice(object);
    args.extend(["-o", "json"]);
    let mut last = Value::Null;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(text) = api.kubectl_ok(&args) {
            last = serde_json::from_str(&text).unwrap();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{object:?}: not {what} after 20 s; last:\n{last:#}");
}

/// The condition of type `kind` in a conditions list.
pub fn condition<'a>(conditions: &'a Value, kind: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// The route parent entry written by `controller`.
pub fn parent<'a>(route: &'a Value, controller: &str) -> &'a Value {
    route["status"]["parents"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["controllerName"] == controller))
        .unwrap_or(&Value::Null)
}
