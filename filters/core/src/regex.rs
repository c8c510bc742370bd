//! Every regular expression a filter configuration carries is compiled here, so
//! that one bound on what matching it may cost holds in every filter.
//!
//! `regex-lite` never backtracks, but its matching time is the compiled program's
//! size times the text's length, and both are large enough to hurt: an accepted
//! `removeMatching` of `(?:.*a.{5000})` (240 KB compiled) took 9 s per request on
//! a 55 KB header name inside Envoy, stalling its worker. So each pattern's
//! compiled size is bounded at configure time, and a pattern over the bound is a
//! config error naming its field. The bound and the worst case it leaves per
//! request, measured natively and inside Envoy, are in
//! docs/filters/README.md#regular-expressions.

use regex_lite::{Regex, RegexBuilder};

/// Most bytes one compiled expression may take (`regex-lite`'s own measure of
/// its program, about 48 bytes per state). Ordinary patterns are far below it:
/// `^/api/v[0-9]+/users/[^/]+$` is about 1 KB, twenty case-insensitive words in
/// one alternation about 5 KB.
pub const SIZE_LIMIT: usize = 8 * 1024;

/// Most levels of groups and repetitions inside one another. The parser and the
/// compiler recurse once per level on the wasm stack; real patterns use a few.
pub const NEST_LIMIT: u32 = 32;

/// Whether letters match regardless of case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// Compiles `pattern` to match the whole text (`^(?:pattern)$`), as Gateway
/// API's `RegularExpression` matches and `removeMatching` mean it, within
/// [`SIZE_LIMIT`] and [`NEST_LIMIT`]. The error is the message for the field.
pub fn whole(pattern: &str, case: Case) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(case == Case::Insensitive)
        .size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| {
            // regex-lite says which limit only in its message; the tests below
            // pin the wording, so an upgrade that changes it fails them.
            let e = e.to_string();
            if e.contains("size limit") {
                format!(
                    "`{pattern}` is too large: compiled, it exceeds the limit of {SIZE_LIMIT} bytes \
                     per regular expression (matching time grows with the compiled size; \
                     docs/filters/README.md#regular-expressions)"
                )
            } else if e.contains("nest") {
                format!(
                    "`{pattern}` nests groups or repetitions more than {NEST_LIMIT} deep, \
                     the limit per regular expression"
                )
            } else {
                format!("`{pattern}` is not a valid regular expression: {e}")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWENTY_WORDS: &str = "alpha|bravo|charlie|delta|echo|foxtrot|golf|hotel|india|juliett|\
                                kilo|lima|mike|november|oscar|papa|quebec|romeo|sierra|tango";

    #[test]
    fn ordinary_patterns_are_accepted_in_either_case_mode() {
        for pattern in [
            "x-internal-.*",
            "^/api/v[0-9]+/users/[^/]+$",
            "(?i)bearer [a-z0-9._-]+",
            TWENTY_WORDS,
            "x-(?:debug|trace|internal)-[a-z0-9-]+",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ] {
            for case in [Case::Sensitive, Case::Insensitive] {
                assert!(whole(pattern, case).is_ok(), "{pattern} ({case:?})");
            }
        }
    }

    #[test]
    fn the_patterns_that_stalled_envoy_are_refused_as_too_large() {
        for pattern in ["(?:.*a.{5000})", ".*a.{20000}", "a{5}{5}{5}{5}{5}{5}"] {
            let e = whole(pattern, Case::Insensitive).expect_err(pattern);
            assert!(e.contains("is too large"), "{e}");
            assert!(e.contains(&SIZE_LIMIT.to_string()), "{e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_and_bad_syntax_says_so() {
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        let e = whole(&deep, Case::Sensitive).unwrap_err();
        assert!(e.contains("32 deep"), "{e}");
        let e = whole("(unclosed", Case::Sensitive).unwrap_err();
        assert!(
            e.starts_with("`(unclosed` is not a valid regular expression"),
            "{e}"
        );
    }

    #[test]
    fn whole_means_the_whole_text() {
        let re = whole("a|b", Case::Insensitive).unwrap();
        assert!(re.is_match("A"));
        assert!(!re.is_match("ab"), "alternation inside the anchors");
    }
}
