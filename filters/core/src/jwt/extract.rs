//! Finding the token in a request: headers (with a value prefix), query
//! parameters and cookies, in configured order; default `Authorization: Bearer`.
//! Also computes the request without the token, for `forward: false`.

use super::config::ExtractFromConfig;
use crate::request_parts::{query_values, request_cookie_values};
use crate::{http_field, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Lower-case header name and the prefix before the token (matched case-insensitively).
    Header {
        name: String,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

/// What the filter can read of a request; the glue answers from the host.
pub trait TokenCarrier {
    /// Every value of a header (lower-case name), in arrival order.
    fn header_values(&mut self, name: &str) -> Vec<String>;
    /// `:path`, with query.
    fn path(&mut self) -> Option<String>;
}

/// The outcome of looking for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// The token, and the index of the source it came from.
    Token {
        token: String,
        source: usize,
    },
    /// A source carries more than one candidate (two Authorization headers, a
    /// repeated parameter): refused rather than guessing which one counts.
    Ambiguous(String),
}

impl TokenSource {
    /// The sources a provider's `extractFrom` lists, or `Authorization: Bearer` without it.
    pub fn compile(config: Option<&ExtractFromConfig>) -> Result<Vec<TokenSource>, ConfigError> {
        let Some(config) = config else {
            return Ok(vec![TokenSource::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            }]);
        };
        let mut out = Vec::new();
        for (i, h) in config.headers.iter().enumerate() {
            let name = http_field::header_name(&format!("headers[{i}].name"), &h.name)?;
            let prefix = h.value_prefix.clone().unwrap_or_default();
            http_field::header_value(&format!("headers[{i}].valuePrefix"), &prefix)?;
            out.push(TokenSource::Header { name, prefix });
        }
        for (i, p) in config.params.iter().enumerate() {
            if p.is_empty() || p.contains(['&', '=', '#']) {
                return Err(ConfigError::new(
                    format!("params[{i}]"),
                    format!("`{p}` is not a query parameter name"),
                ));
            }
            out.push(TokenSource::Param(p.clone()));
        }
        for (i, c) in config.cookies.iter().enumerate() {
            if c.is_empty() || c.contains([';', '=', ' ', ',']) {
                return Err(ConfigError::new(
                    format!("cookies[{i}]"),
                    format!("`{c}` is not a cookie name"),
                ));
            }
            out.push(TokenSource::Cookie(c.clone()));
        }
        if out.is_empty() {
            return Err(ConfigError::new(
                "",
                "extractFrom lists no header, param or cookie",
            ));
        }
        Ok(out)
    }
}

/// Looks through `sources` in order; the first that holds a token wins.
pub fn find(sources: &[TokenSource], req: &mut dyn TokenCarrier) -> Found {
    for (i, source) in sources.iter().enumerate() {
        let candidates = match source {
            TokenSource::Header { name, prefix } => req
                .header_values(name)
                .into_iter()
                .filter_map(|v| strip_prefix_ignore_case(&v, prefix).map(|t| t.trim().to_string()))
                .collect(),
            TokenSource::Param(name) => req
                .path()
                .map(|p| query_values(&p, name))
                .unwrap_or_default(),
            TokenSource::Cookie(name) => {
                let headers = req.header_values("cookie");
                request_cookie_values(headers.iter().map(String::as_str), name)
            }
        };
        let mut candidates: Vec<String> =
            candidates.into_iter().filter(|t| !t.is_empty()).collect();
        match candidates.len() {
            0 => continue,
            1 => {
                return Found::Token {
                    token: candidates.remove(0),
                    source: i,
                }
            }
            n => return Found::Ambiguous(format!("{n} tokens in {}", source.describe())),
        }
    }
    Found::Missing
}

impl TokenSource {
    fn describe(&self) -> String {
        match self {
            TokenSource::Header { name, .. } => format!("header {name}"),
            TokenSource::Param(p) => format!("query parameter {p}"),
            TokenSource::Cookie(c) => format!("cookie {c}"),
        }
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// `path` without the query parameter `name` (for `forward: false`).
pub fn strip_param(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| kv.split('=').next() != Some(name))
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// A `cookie` header value without the cookie `name`; None when nothing is left.
pub fn strip_cookie(header: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::config::HeaderExtractorConfig;

    #[derive(Default)]
    struct Req {
        headers: Vec<(&'static str, &'static str)>,
        path: &'static str,
    }
    impl TokenCarrier for Req {
        fn header_values(&mut self, name: &str) -> Vec<String> {
            self.headers
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .collect()
        }
        fn path(&mut self) -> Option<String> {
            Some(self.path.to_string())
        }
    }

    fn default_sources() -> Vec<TokenSource> {
        TokenSource::compile(None).unwrap()
    }

    #[test]
    fn bearer_by_default_case_insensitive_scheme() {
        let mut r = Req {
            headers: vec![("authorization", "bearer abc.def.ghi")],
            path: "/",
        };
        assert_eq!(
            find(&default_sources(), &mut r),
            Found::Token {
                token: "abc.def.ghi".into(),
                source: 0
            }
        );
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_missing() {
        for value in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer"] {
            let mut r = Req {
                headers: vec![("authorization", value)],
                path: "/",
            };
            assert_eq!(
                find(&default_sources(), &mut r),
                Found::Missing,
                "{value:?}"
            );
        }
        assert_eq!(
            find(&default_sources(), &mut Req::default()),
            Found::Missing
        );
    }

    #[test]
    fn duplicate_authorization_headers_are_ambiguous() {
        let mut r = Req {
            headers: vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
            path: "/",
        };
        assert!(matches!(
            find(&default_sources(), &mut r),
            Found::Ambiguous(_)
        ));
    }

    #[test]
    fn configured_sources_in_order() {
        let sources = TokenSource::compile(Some(&ExtractFromConfig {
            headers: vec![HeaderExtractorConfig {
                name: "X-Token".into(),
                value_prefix: None,
            }],
            params: vec!["access_token".into()],
            cookies: vec!["session".into()],
        }))
        .unwrap();
        let mut by_param = Req {
            headers: vec![],
            path: "/p?a=1&access_token=tok&b=2",
        };
        assert_eq!(
            find(&sources, &mut by_param),
            Found::Token {
                token: "tok".into(),
                source: 1
            }
        );
        let mut by_cookie = Req {
            headers: vec![("cookie", "theme=dark; session=\"ck\"")],
            path: "/",
        };
        assert_eq!(
            find(&sources, &mut by_cookie),
            Found::Token {
                token: "ck".into(),
                source: 2
            }
        );
        let mut in_second_cookie_header = Req {
            headers: vec![("cookie", "theme=dark"), ("cookie", "lang=en; session=ck2")],
            path: "/",
        };
        assert_eq!(
            find(&sources, &mut in_second_cookie_header),
            Found::Token {
                token: "ck2".into(),
                source: 2
            },
            "every Cookie header is read"
        );
        let mut by_header = Req {
            headers: vec![("x-token", "hd"), ("cookie", "session=ck")],
            path: "/",
        };
        assert_eq!(
            find(&sources, &mut by_header),
            Found::Token {
                token: "hd".into(),
                source: 0
            }
        );
        let mut twice = Req {
            headers: vec![],
            path: "/?access_token=a&access_token=b",
        };
        assert!(matches!(find(&sources, &mut twice), Found::Ambiguous(_)));
    }

    #[test]
    fn stripping_the_token_keeps_everything_else() {
        assert_eq!(
            strip_param("/p?a=1&access_token=t&b=2", "access_token"),
            "/p?a=1&b=2"
        );
        assert_eq!(strip_param("/p?access_token=t", "access_token"), "/p");
        assert_eq!(strip_param("/p", "access_token"), "/p");
        assert_eq!(
            strip_cookie("a=1; session=t; b=2", "session").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(strip_cookie("session=t", "session"), None);
    }

    #[test]
    fn bad_sources_name_the_field() {
        let bad = |c: ExtractFromConfig| TokenSource::compile(Some(&c)).unwrap_err().field;
        assert_eq!(bad(ExtractFromConfig::default()), "");
        assert_eq!(
            bad(ExtractFromConfig {
                headers: vec![HeaderExtractorConfig {
                    name: ":path".into(),
                    value_prefix: None
                }],
                ..Default::default()
            }),
            "headers[0].name"
        );
        assert_eq!(
            bad(ExtractFromConfig {
                params: vec!["a=b".into()],
                ..Default::default()
            }),
            "params[0]"
        );
        assert_eq!(
            bad(ExtractFromConfig {
                cookies: vec!["a b".into()],
                ..Default::default()
            }),
            "cookies[0]"
        );
    }
}
