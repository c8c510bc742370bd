//! What a Markdown page links to and which anchors its headings give, as GitHub
//! renders them (CommonMark, parsed by pulldown-cmark).

use std::collections::HashSet;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

/// A link or image destination and the line it is on (1-based).
#[derive(Debug, PartialEq)]
pub struct Link {
    pub line: usize,
    pub target: String,
}

/// Every link and image destination in `text`, reference-style ones included.
pub fn links(text: &str) -> Vec<Link> {
    Parser::new(text)
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(Link {
                line: line_of(text, range.start),
                target: dest_url.into_string(),
            }),
            _ => None,
        })
        .collect()
}

/// The anchors GitHub gives the headings of `text`: the heading's text in lower
/// case, spaces as `-`, other punctuation dropped, `-1`, `-2` … on repeats.
pub fn anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let slug = slug(&h);
                    let mut anchor = slug.clone();
                    let mut n = 0;
                    while !anchors.insert(anchor.clone()) {
                        n += 1;
                        anchor = format!("{slug}-{n}");
                    }
                }
            }
            _ => {}
        }
    }
    anchors
}

fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_reference_and_image_links_are_all_found_with_their_lines() {
        let text =
            "# T\n\nsee [a](docs/a.md) and ![i](img.png)\n\n[ref]: other.md#x\n\nuse [ref][].\n";
        let found: Vec<_> = links(text)
            .into_iter()
            .map(|l| (l.line, l.target))
            .collect();
        assert_eq!(
            found,
            [
                (3, "docs/a.md".into()),
                (3, "img.png".into()),
                (7, "other.md#x".into())
            ]
        );
    }

    #[test]
    fn a_link_inside_a_code_block_is_not_a_link() {
        assert!(links("```\n[a](missing.md)\n```\n`[b](missing.md)`\n").is_empty());
    }

    #[test]
    fn anchors_follow_githubs_rules_for_code_punctuation_and_repeats() {
        let text = "# Benchmark: canary (`make bench-canary`)\n## Tests\n## Tests\n## Rate limit filter (`dist/ratelimit.wasm`)\n";
        let anchors = anchors(text);
        for a in [
            "benchmark-canary-make-bench-canary",
            "tests",
            "tests-1",
            "rate-limit-filter-distratelimitwasm",
        ] {
            assert!(anchors.contains(a), "{a} missing from {anchors:?}");
        }
    }
}
