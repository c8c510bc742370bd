//! Paths named in running text, code comments included: any `*.md` (a document
//! cited by name) and anything under one of the repository's top-level
//! directories (`controller/src/main.rs`, `docs/`). Placeholders such as
//! `controller/tests/translate/<case>/in.yaml` and URLs are not paths.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex_lite::Regex;

use crate::markdown::line_of;

/// A path-like word and the line it is on (1-based).
#[derive(Debug, PartialEq)]
pub struct Citation {
    pub line: usize,
    pub path: String,
    /// A Markdown file's name (`DESIGN.md`, `../x.md`): it may be relative to
    /// the citing file's directory as well as to the root.
    pub is_document: bool,
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s)`'\x22>]*").unwrap_or_else(|_| unreachable!())
});
static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9_./-]+").unwrap_or_else(|_| unreachable!()));

/// Characters that, right before or after a word, make it part of something
/// else: a variable (`$DIR/x`), a template (`<case>/x`, `x/{name}`), a glob, an
/// absolute path (`/work/x.md`), a home directory, an email address.
const NOT_A_PATH_BEFORE: &[char] = &['$', '{', '<', '~', '@', '*', '%', '\\'];
const NOT_A_PATH_AFTER: &[char] = &['<', '{', '*', '$', '…', '%', '\\', '@'];

pub fn citations(text: &str, top_dirs: &BTreeSet<&str>) -> Vec<Citation> {
    // URLs are blanked out (same length, so offsets and lines stay true).
    let blanked = URL.replace_all(text, |c: &regex_lite::Captures| " ".repeat(c[0].len()));
    let mut found = Vec::new();
    for word in WORD.find_iter(&blanked) {
        let before = blanked[..word.start()].chars().next_back();
        let after = blanked[word.end()..].chars().next();
        if before.is_some_and(|c| NOT_A_PATH_BEFORE.contains(&c) || c.is_alphanumeric())
            || after.is_some_and(|c| NOT_A_PATH_AFTER.contains(&c) || c.is_alphanumeric())
            || word.as_str().starts_with('/')
        {
            continue;
        }
        let path = word.as_str().trim_end_matches(['.', ',', '-']);
        let path = path.strip_prefix("./").unwrap_or(path);
        let is_document = path.len() > ".md".len() && path.ends_with(".md");
        let under_top_dir = path
            .split_once('/')
            .is_some_and(|(top, _)| top_dirs.contains(top));
        if is_document || under_top_dir {
            found.push(Citation {
                line: line_of(text, word.start()),
                path: path.to_string(),
                is_document,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        citations(text, &BTreeSet::from(["docs", "controller"]))
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    #[test]
    fn documents_and_paths_under_top_level_directories_are_citations() {
        assert_eq!(
            paths("//! See DESIGN.md and `controller/src/main.rs`; docs/ too.\n(docs/a.md#x)"),
            ["DESIGN.md", "controller/src/main.rs", "docs/", "docs/a.md"]
        );
    }

    #[test]
    fn sentence_punctuation_after_a_path_is_not_part_of_it() {
        assert_eq!(
            paths("read docs/design.md. Then controller/src, and"),
            ["docs/design.md", "controller/src"]
        );
    }

    #[test]
    fn urls_placeholders_variables_and_absolute_paths_are_not_citations() {
        assert!(paths(
            "https://github.com/x/docs/README.md <https://a.example/controller/x.md> \
             controller/tests/<case>/in.yaml $ROOT/docs/x.md /work/shared/DESIGN.md \
             docs/*.md ~/docs/x.md other/dir/file.rs"
        )
        .is_empty());
    }

    #[test]
    fn a_relative_document_is_kept_as_written() {
        let found = citations("see ../shared/BENCHMARKING.md", &BTreeSet::new());
        assert_eq!(
            found,
            [Citation {
                line: 1,
                path: "../shared/BENCHMARKING.md".into(),
                is_document: true
            }]
        );
    }
}
