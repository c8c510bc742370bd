//! Property tests for the config and template parsers: arbitrary input is either
//! accepted or rejected with a field-naming error, never a panic (a panic in the
//! filter would kill the wasm VM), and what is accepted is safe to send.

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_core::error::parse_json;
use tollgate_core::headers::{HeaderEditor, HeaderPolicy, RequestSource, Template};
use tollgate_core::jwt::token;
use tollgate_core::route_policy::RoutePolicies;

/// Header names: mostly plausible, sometimes hostile.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-zA-Z][a-zA-Z0-9-]{0,20}",
        1 => Just(":path".to_string()),
        1 => Just("Host".to_string()),
        1 => ".{0,12}",
    ]
}

/// Values: literals, templates and control characters.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[ -~]{0,30}",
        3 => "%\\{request\\.(path|method|host|id|header\\.[a-z-]{0,8}|bogus)\\}?",
        1 => ".{0,20}",
    ]
}

fn entries() -> impl Strategy<Value = Value> {
    prop::collection::vec((name(), value()), 0..4).prop_map(|v| {
        Value::Array(
            v.into_iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect(),
        )
    })
}

fn mods() -> impl Strategy<Value = Value> {
    (
        entries(),
        entries(),
        prop::collection::vec(name(), 0..3),
        prop::collection::vec(prop_oneof![3 => Just("x-.*".to_string()), 1 => ".{0,10}".boxed()], 0..2),
    )
        .prop_map(|(set, add, remove, matching)| json!({"set": set, "add": add, "remove": remove, "removeMatching": matching}))
}

fn policy() -> impl Strategy<Value = Value> {
    (mods(), mods()).prop_map(|(req, resp)| json!({"request": req, "response": resp}))
}

fn config() -> impl Strategy<Value = Value> {
    prop_oneof![
        policy(),
        (policy(), policy()).prop_map(|(a, d)| json!({"routes": {"r": a}, "default": d})),
    ]
}

#[derive(Default)]
struct Recorder(Vec<(String, String)>);

impl HeaderEditor for Recorder {
    fn names(&mut self) -> Vec<String> {
        vec![":path".into(), "x-a".into(), "x-b".into()]
    }
    fn remove(&mut self, name: &str) {
        self.0.push((name.into(), String::new()));
    }
    fn set(&mut self, name: &str, value: &str) {
        self.0.push((name.into(), value.into()));
    }
    fn add(&mut self, name: &str, value: &str) {
        self.0.push((name.into(), value.into()));
    }
}

struct Hostile;

impl RequestSource for Hostile {
    fn header(&mut self, _: &str) -> Option<String> {
        Some("v\r\nx-injected: 1\0".into())
    }
    fn source_address(&mut self) -> Option<String> {
        None
    }
    fn request_id(&mut self) -> Option<String> {
        Some("id".into())
    }
}

fn is_safe_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(':')
        && n != "host"
        && n.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_json(&bytes).and_then(|doc| RoutePolicies::parse(doc, HeaderPolicy::compile));
    }

    #[test]
    fn accepted_configs_only_ever_write_safe_headers(doc in config()) {
        match RoutePolicies::parse(doc, HeaderPolicy::compile) {
            Err(e) => prop_assert!(!e.field.is_empty() || !e.message.is_empty()),
            Ok(policies) => {
                for route in [Some("r"), None] {
                    let Some(policy) = policies.for_route(route) else { continue };
                    for mods in [&policy.request, &policy.response].into_iter().flatten() {
                        let rendered = mods.render(&mut Hostile);
                        let mut out = Recorder::default();
                        mods.apply(&rendered, &mut out);
                        for (name, value) in out.0 {
                            prop_assert!(is_safe_name(&name), "unsafe name {name:?}");
                            prop_assert!(!value.chars().any(|c| c.is_control() && c != '\t'), "unsafe value {value:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn templates_never_panic_and_literals_render_verbatim(s in ".{0,40}") {
        if let Ok(t) = Template::parse("v", &s) {
            let out = t.render(&mut Hostile).into_owned();
            if !s.contains('%') {
                prop_assert_eq!(out, s);
            }
        }
    }

    #[test]
    fn token_decoding_never_panics(parts in prop::collection::vec("[A-Za-z0-9_=+/-]{0,40}", 0..6), raw in ".{0,60}") {
        let _ = token::decode(&parts.join("."));
        let _ = token::decode(&raw);
    }

    #[test]
    fn well_formed_tokens_round_trip(sub in "[ -~]{0,20}", kid in "[a-z0-9]{1,8}") {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let header = serde_json::json!({"alg": "ES256", "kid": kid}).to_string();
        let payload = serde_json::json!({"sub": sub}).to_string();
        let t = format!("{}.{}.{}", b64(&header), b64(&payload), b64("s"));
        let d = token::decode(&t).expect("well-formed");
        prop_assert_eq!(d.kid.as_deref(), Some(kid.as_str()));
        prop_assert_eq!(d.claims["sub"].as_str(), Some(sub.as_str()));
    }
}
