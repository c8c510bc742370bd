//! `{{backend:<namespace>/<service>}}` in a manifest stands for the
//! `127.0.0.1:port` of the echo backend the runner starts for that Service.
//! Finding them tells the runner which backends to start; replacing them
//! gives the files to serve.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

const OPEN: &str = "{{";
const CLOSE: &str = "}}";
const BACKEND: &str = "backend:";

/// A Service by namespace and name; its echo backend's pod is named after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    pub namespace: String,
    pub name: String,
}

impl Backend {
    /// Parses `namespace/name`.
    pub fn parse(text: &str) -> Result<Backend, String> {
        match text.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Backend {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!("{text:?} is not <namespace>/<name>")),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One placeholder: where it is (1-based line) and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub line: usize,
    pub backend: Backend,
    /// Byte range of `{{…}}` in the text.
    range: std::ops::Range<usize>,
}

/// Every placeholder in `text`; an unclosed `{{` or one that is not a
/// `backend:` placeholder is an error naming its line.
pub fn find(text: &str) -> Result<Vec<Placeholder>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find(OPEN) {
        let start = from + offset;
        let line = text[..start].matches('\n').count() + 1;
        let inner_start = start + OPEN.len();
        let Some(len) = text[inner_start..].find(CLOSE) else {
            return Err(format!("line {line}: `{{{{` without a closing `}}}}`"));
        };
        let inner = &text[inner_start..inner_start + len];
        let Some(service) = inner.strip_prefix(BACKEND) else {
            return Err(format!(
                "line {line}: unknown placeholder {{{{{inner}}}}} (only {{{{backend:<namespace>/<service>}}}} exists)"
            ));
        };
        let backend = Backend::parse(service.trim()).map_err(|e| format!("line {line}: {e}"))?;
        let end = inner_start + len + CLOSE.len();
        found.push(Placeholder {
            line,
            backend,
            range: start..end,
        });
        from = end;
    }
    Ok(found)
}

/// The distinct backends `text` names.
pub fn backends(text: &str) -> Result<BTreeSet<Backend>, String> {
    Ok(find(text)?.into_iter().map(|p| p.backend).collect())
}

/// `text` with every placeholder replaced by its backend's address.
pub fn substitute(text: &str, addrs: &BTreeMap<Backend, SocketAddr>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for placeholder in find(text)? {
        let addr = addrs.get(&placeholder.backend).ok_or_else(|| {
            format!(
                "line {}: no address for backend {}",
                placeholder.line, placeholder.backend
            )
        })?;
        out.push_str(&text[copied..placeholder.range.start]);
        out.push_str(&addr.to_string());
        copied = placeholder.range.end;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(text: &str) -> Backend {
        Backend::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn finds_and_replaces_every_placeholder() {
        let text = "a: \"{{backend:ns/one}}\"\nb: \"{{backend:ns/two}},{{backend:ns/one}}\"\n";
        let found = find(text).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<(usize, String)> = found
            .iter()
            .map(|p| (p.line, p.backend.to_string()))
            .collect();
        assert_eq!(
            lines,
            [
                (1, "ns/one".into()),
                (2, "ns/two".into()),
                (2, "ns/one".into())
            ]
        );
        let addrs = BTreeMap::from([
            (backend("ns/one"), "127.0.0.1:3001".parse().expect("addr")),
            (backend("ns/two"), "127.0.0.1:3002".parse().expect("addr")),
        ]);
        assert_eq!(
            substitute(text, &addrs).unwrap_or_else(|e| panic!("{e}")),
            "a: \"127.0.0.1:3001\"\nb: \"127.0.0.1:3002,127.0.0.1:3001\"\n"
        );
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let text = "kind: Service\nmetadata: {name: x}\n";
        assert_eq!(substitute(text, &BTreeMap::new()).as_deref(), Ok(text));
    }

    #[test]
    fn a_missing_address_names_the_backend_and_line() {
        let err = substitute("x\ny: {{backend:ns/gone}}\n", &BTreeMap::new());
        assert_eq!(
            err,
            Err("line 2: no address for backend ns/gone".to_owned())
        );
    }

    #[test]
    fn malformed_placeholders_are_errors_with_their_line() {
        assert_eq!(
            find("a\n{{backend:ns/x"),
            Err("line 2: `{{` without a closing `}}`".to_owned())
        );
        assert_eq!(
            find("{{port:80}}"),
            Err(
                "line 1: unknown placeholder {{port:80}} (only {{backend:<namespace>/<service>}} exists)"
                    .to_owned()
            )
        );
        assert_eq!(
            find("{{backend:no-namespace}}"),
            Err("line 1: \"no-namespace\" is not <namespace>/<name>".to_owned())
        );
    }
}
