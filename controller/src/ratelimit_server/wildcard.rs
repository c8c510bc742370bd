//! Descriptor values with `*` in a config file (`value: foo*`, `bar*b`,
//! `foo*bar*baz`): `*` stands for any run of characters, anywhere in the
//! value, as envoyproxy/ratelimit matches them. Each request value a pattern
//! matches counts under its own key (the request's value, not the pattern),
//! so `user: foo*` is one limit per matching user.
//!
//! Matching is greedy and linear in the value for each literal piece (the
//! value is bounded by the service's entry size), with no backtracking: the
//! first piece must start the value, the last must end it (unless the pattern
//! ends in `*`), and the pieces between are found left to right, each at its
//! earliest place, which is enough for `*`-only patterns.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    /// The literal pieces between the `*`s (the first and last may be empty).
    pieces: Vec<String>,
}

impl Wildcard {
    /// The pattern of `value`, or None when it holds no `*` (an exact value).
    pub fn parse(value: &str) -> Option<Wildcard> {
        value.contains('*').then(|| Wildcard {
            pieces: value.split('*').map(str::to_owned).collect(),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return value.is_empty(),
        };
        let Some(mut tail) = value.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return tail.is_empty();
        };
        for piece in middle {
            match tail.find(piece.as_str()) {
                Some(at) => tail = &tail[at + piece.len()..],
                None => return false,
            }
        }
        tail.len() >= last.len() && tail.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Wildcard::parse(pattern).unwrap().matches(value)
    }

    #[test]
    fn a_star_stands_for_any_run_anywhere_in_the_value() {
        assert!(matches("foo*", "foo") && matches("foo*", "foobar"));
        assert!(!matches("foo*", "barfoo"));
        assert!(matches("*foo", "barfoo") && !matches("*foo", "foobar"));
        assert!(matches("bar*b", "barb") && matches("bar*b", "bar-xyz-b"));
        assert!(!matches("bar*b", "bar-xyz") && !matches("bar*b", "bab"));
        assert!(matches("foo*bar*baz", "foo1bar2baz") && matches("foo*bar*baz", "foobarbaz"));
        assert!(!matches("foo*bar*baz", "foo1baz2bar"));
        assert!(matches("*", "") && matches("*", "anything"));
        assert!(
            matches("a*a", "aa") && !matches("a*a", "a"),
            "pieces may not overlap"
        );
    }

    #[test]
    fn a_value_without_a_star_is_not_a_pattern() {
        assert_eq!(Wildcard::parse("plain"), None);
    }
}
