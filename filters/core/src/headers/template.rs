//! Header value templates: `%{request.header.<name>}`, `%{request.path}`,
//! `%{request.method}`, `%{request.host}`, `%{source.address}`, `%{request.id}`.
//!
//! Parsed once at configure time into literal and variable parts, so a value
//! without variables costs nothing per request. `%%{` writes a literal `%{`; any
//! other `%` is literal. A missing source renders as the empty string.

use std::borrow::Cow;

use crate::http_field;
use crate::ConfigError;

/// Where a request's values come from; the glue answers from the host, lazily.
pub trait RequestSource {
    /// First value of a request header (lower-case name; `:path`, `:method` and
    /// `:authority` for the pseudo-headers).
    fn header(&mut self, name: &str) -> Option<String>;
    /// The downstream peer as Envoy's `source.address` attribute gives it (`ip:port`).
    fn source_address(&mut self) -> Option<String>;
    /// Envoy's request ID (`request.id` attribute, the `x-request-id` header).
    fn request_id(&mut self) -> Option<String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Header(String),
    Path,
    Method,
    Host,
    SourceAddress,
    RequestId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A parsed header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

const VARIABLES: &str =
    "request.header.<name>, request.path, request.method, request.host, source.address, request.id";

impl Template {
    /// Parses and validates a configured value; `field` names it in errors.
    pub fn parse(field: &str, value: &str) -> Result<Self, ConfigError> {
        http_field::header_value(field, value)?;
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = value;
        while let Some(at) = rest.find('%') {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("%%{") {
                literal.push_str("%{");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("%{") {
                let Some(end) = after.find('}') else {
                    return Err(ConfigError::new(
                        field,
                        format!(
                            "unterminated `%{{` in `{value}`; write `%%{{` for a literal `%{{`"
                        ),
                    ));
                };
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(parse_var(field, &after[..end])?));
                rest = &after[end + 1..];
            } else {
                literal.push('%');
                rest = &tail[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() || parts.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// The value when it has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Renders the value for one request.
    pub fn render(&self, src: &mut dyn RequestSource) -> Cow<'_, str> {
        if let Some(s) = self.as_literal() {
            return Cow::Borrowed(s);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(var) => {
                    let value = match var {
                        Var::Header(name) => src.header(name),
                        Var::Path => src.header(":path"),
                        Var::Method => src.header(":method"),
                        Var::Host => src.header(":authority"),
                        Var::SourceAddress => src.source_address(),
                        Var::RequestId => src.request_id(),
                    };
                    // Host values are already valid header values; dropping control
                    // characters anyway keeps a misbehaving source from splitting a header.
                    out.extend(
                        value
                            .unwrap_or_default()
                            .chars()
                            .filter(|c| !c.is_control() || *c == '\t'),
                    );
                }
            }
        }
        Cow::Owned(out)
    }
}

fn parse_var(field: &str, name: &str) -> Result<Var, ConfigError> {
    Ok(match name {
        "request.path" => Var::Path,
        "request.method" => Var::Method,
        "request.host" => Var::Host,
        "source.address" => Var::SourceAddress,
        "request.id" => Var::RequestId,
        _ => match name.strip_prefix("request.header.") {
            // Reading Host is fine (only writing it is not); say what to use instead.
            Some(header) if header.eq_ignore_ascii_case("host") => {
                return Err(ConfigError::new(
                    field,
                    "use `%{request.host}` to read the host",
                ))
            }
            Some(header) => Var::Header(http_field::header_name(field, header)?),
            None => {
                return Err(ConfigError::new(
                    field,
                    format!("unknown variable `%{{{name}}}`; known: {VARIABLES}"),
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Src(HashMap<&'static str, &'static str>);
    impl RequestSource for Src {
        fn header(&mut self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
        fn source_address(&mut self) -> Option<String> {
            Some("127.0.0.1:5000".into())
        }
        fn request_id(&mut self) -> Option<String> {
            None
        }
    }

    fn render(t: &str, src: &mut Src) -> String {
        Template::parse("v", t).unwrap().render(src).into_owned()
    }

    #[test]
    fn literal_values_are_borrowed() {
        let t = Template::parse("v", "plain 100% value").unwrap();
        assert_eq!(t.as_literal(), Some("plain 100% value"));
        assert!(matches!(t.render(&mut Src::default()), Cow::Borrowed(_)));
        assert_eq!(Template::parse("v", "").unwrap().as_literal(), Some(""));
    }

    #[test]
    fn variables_render_from_the_request() {
        let mut src = Src(HashMap::from([
            (":path", "/a?b=1"),
            (":method", "GET"),
            (":authority", "example.com"),
            ("x-user", "alice"),
        ]));
        assert_eq!(
            render("%{request.method} %{request.host}%{request.path} by %{request.header.X-User} from %{source.address}", &mut src),
            "GET example.com/a?b=1 by alice from 127.0.0.1:5000"
        );
        assert_eq!(
            render("[%{request.header.missing}][%{request.id}]", &mut src),
            "[][]"
        );
        assert_eq!(
            render("%%{request.path} 50%", &mut src),
            "%{request.path} 50%"
        );
    }

    #[test]
    fn bad_templates_are_rejected() {
        for bad in [
            "%{nope}",
            "%{request.path",
            "%{request.header.}",
            "%{request.header.a b}",
            "%{request.header.host}",
        ] {
            let e = Template::parse("request.set[0].value", bad).unwrap_err();
            assert_eq!(e.field, "request.set[0].value", "{bad}");
        }
        assert!(Template::parse("v", "a\r\nb").is_err());
    }

    struct Evil;
    impl RequestSource for Evil {
        fn header(&mut self, _: &str) -> Option<String> {
            Some("a\r\nx-injected: 1".into())
        }
        fn source_address(&mut self) -> Option<String> {
            None
        }
        fn request_id(&mut self) -> Option<String> {
            None
        }
    }

    #[test]
    fn rendered_values_never_carry_line_breaks() {
        let t = Template::parse("v", "%{request.header.x}").unwrap();
        assert_eq!(t.render(&mut Evil), "ax-injected: 1");
    }
}
