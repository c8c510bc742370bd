//! The compiled header policy and the edit it performs on one message.
//!
//! Order within one direction is Gateway API's plus our extension: `remove`,
//! `removeMatching`, `set`, `add`. Templates are rendered against the headers as
//! they arrived, before any edit, so `set x: %{request.header.y}` followed by
//! `remove y` still sees `y`.

use regex_lite::Regex;

use super::config::{HeaderModConfig, HeaderValueConfig, ModsConfig};
use super::template::{RequestSource, Template};
use crate::http_field;
use crate::regex::{self, Case};
use crate::ConfigError;

/// The host's header map for one direction of one request, as the filter edits it.
/// Names are lower-case. Host errors are the implementor's to log: an edit that the
/// host refuses must not stop the others.
pub trait HeaderEditor {
    /// Names of the headers present now (only called for `removeMatching`).
    fn names(&mut self) -> Vec<String>;
    fn remove(&mut self, name: &str);
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: &str, value: &str);
    /// Appends a value, keeping the existing ones.
    fn add(&mut self, name: &str, value: &str);
}

/// A compiled `{"request": …, "response": …}` policy.
#[derive(Debug)]
pub struct HeaderPolicy {
    pub request: Option<Mods>,
    pub response: Option<Mods>,
}

impl HeaderPolicy {
    pub fn compile(config: HeaderModConfig) -> Result<Self, ConfigError> {
        let compile_side =
            |side: Option<ModsConfig>, at: &str| -> Result<Option<Mods>, ConfigError> {
                side.map(|m| Mods::compile(m).map_err(|e| e.within(at)))
                    .transpose()
                    .map(|m| m.filter(|m| !m.is_empty()))
            };
        Ok(HeaderPolicy {
            request: compile_side(config.request, "request")?,
            response: compile_side(config.response, "response")?,
        })
    }
}

/// The edits for one direction, validated and lower-cased.
#[derive(Debug)]
pub struct Mods {
    remove: Vec<String>,
    remove_matching: Vec<Regex>,
    set: Vec<(String, Template)>,
    add: Vec<(String, Template)>,
}

/// Values of the templated `set`/`add` entries rendered for one request, in order.
/// Empty (no allocation) when no value has a variable.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rendered(Vec<String>);

impl Mods {
    pub fn compile(config: ModsConfig) -> Result<Self, ConfigError> {
        let mut remove = Vec::with_capacity(config.remove.len());
        for (i, name) in config.remove.iter().enumerate() {
            let field = format!("remove[{i}]");
            let name = http_field::header_name(&field, name)?;
            if remove.contains(&name) {
                return Err(ConfigError::new(field, format!("`{name}` is listed twice")));
            }
            remove.push(name);
        }
        let remove_matching = config
            .remove_matching
            .iter()
            .enumerate()
            .map(|(i, pattern)| {
                // Case-insensitive: header names are.
                regex::whole(pattern, Case::Insensitive)
                    .map_err(|why| ConfigError::new(format!("removeMatching[{i}]"), why))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mods {
            remove,
            remove_matching,
            set: compile_values(&config.set, "set")?,
            add: compile_values(&config.add, "add")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.remove_matching.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    fn values(&self) -> impl Iterator<Item = &(String, Template)> {
        self.set.iter().chain(self.add.iter())
    }

    /// Renders the templated values for one request (before any edit is applied).
    /// Literal-only mods make no host call and allocate nothing here.
    pub fn render(&self, src: &mut dyn RequestSource) -> Rendered {
        Rendered(
            self.values()
                .filter(|(_, t)| t.as_literal().is_none())
                .map(|(_, t)| t.render(src).into_owned())
                .collect(),
        )
    }

    /// Applies the edits, taking templated values from `rendered` (from [`Mods::render`]).
    pub fn apply(&self, rendered: &Rendered, editor: &mut dyn HeaderEditor) {
        for name in &self.remove {
            editor.remove(name);
        }
        if !self.remove_matching.is_empty() {
            for name in editor.names() {
                // Pseudo-headers are never matched: they are how Envoy routes.
                if !name.starts_with(':')
                    && self.remove_matching.iter().any(|re| re.is_match(&name))
                {
                    editor.remove(&name);
                }
            }
        }
        let mut dynamic = rendered.0.iter();
        let mut value_of = |t: &Template| -> String {
            match t.as_literal() {
                Some(s) => s.to_string(),
                None => dynamic.next().cloned().unwrap_or_default(),
            }
        };
        for (name, t) in &self.set {
            let v = value_of(t);
            editor.set(name, &v);
        }
        for (name, t) in &self.add {
            let v = value_of(t);
            editor.add(name, &v);
        }
    }
}

fn compile_values(
    entries: &[HeaderValueConfig],
    list: &str,
) -> Result<Vec<(String, Template)>, ConfigError> {
    let mut out: Vec<(String, Template)> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let name = http_field::header_name(&format!("{list}[{i}].name"), &entry.name)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ConfigError::new(
                format!("{list}[{i}].name"),
                format!("`{name}` is listed twice in `{list}` (names are case-insensitive)"),
            ));
        }
        let template = Template::parse(&format!("{list}[{i}].value"), &entry.value)?;
        out.push((name, template));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_value;
    use serde_json::json;

    /// A header map with Envoy's semantics: ordered entries, repeated names allowed.
    #[derive(Default, Debug)]
    struct Map(Vec<(String, String)>);
    impl Map {
        fn of(pairs: &[(&str, &str)]) -> Self {
            Map(pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect())
        }
        fn get_all(&self, name: &str) -> Vec<&str> {
            self.0
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }
    impl HeaderEditor for Map {
        fn names(&mut self) -> Vec<String> {
            self.0.iter().map(|(k, _)| k.clone()).collect()
        }
        fn remove(&mut self, name: &str) {
            self.0.retain(|(k, _)| k != name);
        }
        fn set(&mut self, name: &str, value: &str) {
            self.remove(name);
            self.add(name, value);
        }
        fn add(&mut self, name: &str, value: &str) {
            self.0.push((name.into(), value.into()));
        }
    }
    impl RequestSource for Map {
        fn header(&mut self, name: &str) -> Option<String> {
            self.get_all(name).first().map(|s| s.to_string())
        }
        fn source_address(&mut self) -> Option<String> {
            None
        }
        fn request_id(&mut self) -> Option<String> {
            Some("rid".into())
        }
    }

    fn policy(v: serde_json::Value) -> Result<HeaderPolicy, ConfigError> {
        HeaderPolicy::compile(from_value(v)?)
    }

    fn run(mods: &Mods, map: &mut Map) {
        let rendered = mods.render(map);
        mods.apply(&rendered, map);
    }

    #[test]
    fn set_add_remove_follow_gateway_api() {
        let p = policy(json!({"request": {
            "set": [{"name": "X-Header-Set", "value": "set-overrides-values"}],
            "add": [{"name": "x-header-add", "value": "add-appends-values"}],
            "remove": ["X-Header-Remove"]
        }}))
        .unwrap();
        let mut m = Map::of(&[
            ("x-header-set", "some-other-value"),
            ("x-header-set", "second"),
            ("x-header-add", "some-other-value"),
            ("x-header-remove", "a"),
            ("x-header-remove", "b"),
        ]);
        run(p.request.as_ref().unwrap(), &mut m);
        assert_eq!(m.get_all("x-header-set"), ["set-overrides-values"]);
        assert_eq!(
            m.get_all("x-header-add"),
            ["some-other-value", "add-appends-values"]
        );
        assert!(m.get_all("x-header-remove").is_empty());
        assert!(p.response.is_none());
    }

    #[test]
    fn order_is_remove_remove_matching_set_add() {
        let p = policy(json!({"response": {
            "set": [{"name": "x-a", "value": "set"}],
            "add": [{"name": "x-a", "value": "added"}],
            "remove": ["x-a"],
            "removeMatching": ["x-debug-.*"]
        }}))
        .unwrap();
        let mut m = Map::of(&[
            (":status", "200"),
            ("x-a", "old"),
            ("X-Debug-One", "1"),
            ("x-debug-two", "2"),
            ("x-debugger", "k"),
        ]);
        m.0[2].0 = "x-debug-one".into();
        run(p.response.as_ref().unwrap(), &mut m);
        assert_eq!(m.get_all("x-a"), ["set", "added"]);
        assert!(m.get_all("x-debug-one").is_empty() && m.get_all("x-debug-two").is_empty());
        assert_eq!(
            m.get_all("x-debugger"),
            ["k"],
            "removeMatching matches whole names only"
        );
    }

    #[test]
    fn remove_matching_never_touches_pseudo_headers() {
        let p = policy(json!({"request": {"removeMatching": [".*"]}})).unwrap();
        let mut m = Map::of(&[(":path", "/"), (":authority", "h"), ("x", "1")]);
        run(p.request.as_ref().unwrap(), &mut m);
        assert_eq!(m.names(), [":path", ":authority"]);
    }

    #[test]
    fn remove_matching_is_case_insensitive() {
        let p = policy(json!({"request": {"removeMatching": ["X-SECRET-[a-z]+"]}})).unwrap();
        let mut m = Map::of(&[("x-secret-token", "1"), ("x-secret-", "2")]);
        run(p.request.as_ref().unwrap(), &mut m);
        assert_eq!(m.names(), ["x-secret-"]);
    }

    #[test]
    fn templates_see_the_headers_as_they_arrived() {
        let p = policy(json!({"request": {
            "remove": ["x-user"],
            "set": [{"name": "x-who", "value": "%{request.header.x-user}@%{request.id}"}],
            "add": [{"name": "x-lit", "value": "v"}, {"name": "x-path", "value": "%{request.path}"}]
        }}))
        .unwrap();
        let mods = p.request.as_ref().unwrap();
        let mut m = Map::of(&[(":path", "/p"), ("x-user", "alice")]);
        run(mods, &mut m);
        assert_eq!(m.get_all("x-who"), ["alice@rid"]);
        assert_eq!(m.get_all("x-path"), ["/p"]);
        assert_eq!(m.get_all("x-lit"), ["v"]);
        assert!(m.get_all("x-user").is_empty());
    }

    /// A source that fails the test when read: literal values must not touch the host.
    struct Untouchable;
    impl RequestSource for Untouchable {
        fn header(&mut self, name: &str) -> Option<String> {
            panic!("read header {name}")
        }
        fn source_address(&mut self) -> Option<String> {
            panic!("read source address")
        }
        fn request_id(&mut self) -> Option<String> {
            panic!("read request id")
        }
    }

    #[test]
    fn literal_policies_render_nothing_and_read_nothing() {
        let p = policy(json!({"request": {"set": [{"name": "a", "value": "b"}], "add": [{"name": "c", "value": "d"}]}}))
            .unwrap();
        let mods = p.request.as_ref().unwrap();
        assert_eq!(mods.render(&mut Untouchable), Rendered::default());
    }

    #[test]
    fn empty_sides_compile_to_none() {
        let p = policy(json!({"request": {}, "response": {"set": []}})).unwrap();
        assert!(p.request.is_none() && p.response.is_none());
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (
                json!({"request": {"set": [{"name": "a b", "value": "v"}]}}),
                "request.set[0].name",
            ),
            (
                json!({"request": {"set": [{"name": ":path", "value": "/x"}]}}),
                "request.set[0].name",
            ),
            (
                json!({"response": {"add": [{"name": "ok", "value": "a\r\nb"}]}}),
                "response.add[0].value",
            ),
            (
                json!({"request": {"remove": ["ok", "x\ny"]}}),
                "request.remove[1]",
            ),
            (
                json!({"request": {"removeMatching": ["ok", "(unclosed"]}}),
                "request.removeMatching[1]",
            ),
            (
                json!({"request": {"set": [{"name": "a", "value": "1"}, {"name": "A", "value": "2"}]}}),
                "request.set[1].name",
            ),
            (
                json!({"request": {"add": [{"name": "a", "value": "%{bogus}"}]}}),
                "request.add[0].value",
            ),
            (
                json!({"request": {"set": [{"name": "a"}]}}),
                "request.set[0]",
            ),
            (json!({"request": {"sett": []}}), "request.sett"),
            (json!({"requests": {}}), "requests"),
        ];
        for (config, field) in cases {
            let e = policy(config.clone()).unwrap_err();
            assert_eq!(e.field, field, "{config} -> {e}");
        }
    }

    #[test]
    fn costly_remove_matching_patterns_are_refused_naming_the_field() {
        // This one took 9 s per request on a 55 KB header name in Envoy.
        let e = policy(json!({"response": {"removeMatching": ["x-ok-.*", "(?:.*a.{5000})"]}}))
            .unwrap_err();
        assert_eq!(e.field, "response.removeMatching[1]");
        assert!(e.message.contains("is too large"), "{e}");
        let ok = policy(
            json!({"request": {"removeMatching": ["x-internal-.*", "x-(?:debug|trace)-[a-z0-9-]+"]}}),
        );
        assert!(ok.is_ok(), "ordinary patterns pass");
    }

    #[test]
    fn unknown_fields_say_which() {
        let e = policy(json!({"request": {"sett": []}})).unwrap_err();
        assert!(e.message.contains("unknown field `sett`"), "{e}");
    }
}
