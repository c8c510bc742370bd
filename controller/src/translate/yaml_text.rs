//! YAML text for a rendered document (`tollgate translate -o yaml`, the
//! golden files), written directly. serde_yaml_ng's libyaml emitter took a
//! fifth of `tollgate translate` at 10,000 routes (about 0.3 s for 8.5 MiB);
//! this writes the same block style in a single pass over the value.
//!
//! The output is read by Envoy, whose YAML loader is YAML 1.1, as well as by
//! YAML 1.2 tools, so a string is written plain only when no schema of either
//! version could read it as anything but that string: it starts with a letter,
//! `/` or `_`, holds only letters, digits, spaces and a few punctuation marks
//! that mean nothing there (no `: `, no ` #`), and is not one of 1.1's
//! booleans or null. Text of several lines is a literal block (`|`); anything
//! else is single-quoted, or double-quoted with escapes when it holds another
//! non-printable character.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The document as block-style YAML, keys in the value's order.
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(1 << 16);
    match value {
        Value::Object(map) if !map.is_empty() => block_map(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => block_seq(&mut out, items, 0),
        other => {
            inline(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

/// `key: value` lines at `indent`; with `continues_line`, the first one goes
/// on the line already started (a sequence item's `- `).
fn block_map(out: &mut String, map: &Map<String, Value>, indent: usize, continues_line: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !continues_line {
            pad(out, indent);
        }
        scalar(out, key);
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                block_map(out, inner, indent + 2, false);
            }
            // A sequence under a key is not indented further, as kubectl and
            // serde_yaml write it.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                block_seq(out, items, indent);
            }
            other => {
                out.push(' ');
                inline(out, other, indent);
                out.push('\n');
            }
        }
    }
}

fn block_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push(' ');
                block_map(out, map, indent + 2, true);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                block_seq(out, inner, indent + 2);
            }
            other => {
                out.push(' ');
                inline(out, other, indent);
                out.push('\n');
            }
        }
    }
}

/// A scalar, or an empty collection in flow style; a literal block's lines
/// are indented past `indent`.
fn inline(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) if is_literal_block(s) => literal_block(out, s, indent + 2),
        Value::String(s) => scalar(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar(out: &mut String, s: &str) {
    if is_plain(s) {
        out.push_str(s);
    } else if s.chars().all(is_single_quotable) {
        out.push('\'');
        for c in s.chars() {
            if c == '\'' {
                out.push('\'');
            }
            out.push(c);
        }
        out.push('\'');
    } else {
        double_quoted(out, s);
    }
}

/// Whether `s` reads back as this string, plain, in YAML 1.1 and 1.2.
fn is_plain(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || PLAIN_INSIDE.contains(c))
        && !s.ends_with([':', ' '])
        && !s.contains(": ")
        && !s.contains(" #")
        && !is_yaml11_keyword(s)
}

/// Characters a plain string may hold after its first, besides letters and
/// digits: none starts a comment, a flow collection or a key in block style
/// where they stand (`: ` and ` #` are refused as pairs).
const PLAIN_INSIDE: &str = "_./-+: ,()\"'=;";

/// Whether `s` is lines of printable text that a literal block keeps
/// exactly: no line starts with a space (the block's indentation would
/// change), and it ends in at most one line break.
fn is_literal_block(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with("\n\n")
        && s.split('\n').all(|line| !line.starts_with(' '))
        && s.chars().all(|c| c == '\n' || is_single_quotable(c))
}

/// `|` (or `|-` without a final line break), then the lines at `indent`.
fn literal_block(out: &mut String, s: &str, indent: usize) {
    let text = match s.strip_suffix('\n') {
        Some(text) => {
            out.push_str("|\n");
            text
        }
        None => {
            out.push_str("|-\n");
            s
        }
    };
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
    }
}

/// Words YAML 1.1 reads as booleans or null (in any case, to be safe).
fn is_yaml11_keyword(s: &str) -> bool {
    const WORDS: [&str; 10] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~",
    ];
    s.len() <= 5 && WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// Printable and not a line break, so it can stand between single quotes.
fn is_single_quotable(c: char) -> bool {
    !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}'))
}

fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_single_quotable(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRICKY: &[&str] = &[
        "a:",
        "k8s:",
        " multi\nline\n",
        "two\n\n",
        "",
        "yes",
        "No",
        "ON",
        "y",
        "~",
        "null",
        "true",
        "1s",
        "0x1F",
        "1:20",
        "0o17",
        "1_000",
        ".inf",
        "-",
        "- x",
        "a: b",
        "a #b",
        "#c",
        "*.example.com",
        "'q'",
        "\"d\"",
        "@type",
        "%x",
        "!t",
        "&a",
        "|",
        ">",
        " lead",
        "trail ",
        "multi\nline",
        "tab\there",
        "\u{7f}\u{2028}é",
    ];

    fn reads_back(value: &Value) {
        let text = to_string(value);
        let back: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(&back, value, "\n{text}");
    }

    #[test]
    fn tricky_strings_read_back_as_themselves_as_keys_and_values() {
        for &s in TRICKY {
            reads_back(&json!(s));
            reads_back(&json!({ s: s, "list": [s, {s: [s]}] }));
        }
    }

    #[test]
    fn plain_strings_are_never_yaml11_booleans_numbers_or_null() {
        for &s in TRICKY {
            assert!(!is_plain(s), "{s:?} must be quoted");
        }
        for s in [
            "/foo",
            "type.googleapis.com/envoy.config.route.v3.Route",
            "http-80",
            "a+b",
        ] {
            assert!(is_plain(s), "{s:?} can stay plain");
        }
    }

    #[test]
    fn lines_of_text_are_literal_blocks() {
        for s in [
            "a\nb\n",
            "a\n\nb",
            "-----BEGIN X-----\nAA==\n-----END X-----\n",
        ] {
            reads_back(&json!({"pem": s, "list": [s]}));
            assert!(to_string(&json!({"k": s})).starts_with("k: |"), "{s:?}");
        }
        assert_eq!(to_string(&json!({"k": "a\nb\n"})), "k: |\n  a\n  b\n");
        assert_eq!(to_string(&json!(["a\n\nb"])), "- |-\n  a\n\n  b\n");
    }

    #[test]
    fn block_style_as_kubectl_writes_it() {
        let value = json!({
            "listeners": [{"name": "http", "port": 80, "filters": [], "tls": {}}],
            "nested": [[1, 2], []],
            "empty": null,
        });
        assert_eq!(
            to_string(&value),
            "empty: null\nlisteners:\n- filters: []\n  name: http\n  port: 80\n  tls: {}\nnested:\n-\n  - 1\n  - 2\n- []\n"
        );
        reads_back(&value);
    }
}
