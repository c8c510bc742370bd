//! Where a node of a YAML document is, by its field path
//! (`descriptors[1].rate_limit.unit`): the errors found after parsing (a
//! key/value pair twice at one level, a missing unit) come with a path, which
//! serde cannot place on a line; and a mapping key written twice, which
//! serde_yaml_ng places at the start of its mapping rather than at the second
//! key. yaml-rust2's event parser (linear, already bounding our YAML
//! elsewhere) gives each event's position.

use yaml_rust2::parser::{Event, Parser};

/// Lines (1-based) of the nodes of one document.
#[derive(Debug, Default)]
pub struct Lines {
    paths: Vec<(String, usize)>,
    /// The first mapping key that appears twice in its mapping: its path and
    /// the line of the second one.
    pub duplicate_key: Option<(String, usize)>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        seen: Vec<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

impl Lines {
    /// Indexes `text`; what cannot be parsed is simply not indexed.
    pub fn of(text: &str) -> Lines {
        let mut lines = Lines::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Ok((event, at)) = parser.next_token() {
            let line = at.line();
            match event {
                Event::StreamEnd => break,
                Event::Scalar(value, ..)
                    if matches!(stack.last(), Some(Frame::Map { key: None, .. })) =>
                {
                    if let Some(Frame::Map { path, key, seen }) = stack.last_mut() {
                        let here = join(path, &value);
                        if seen.contains(&value) && lines.duplicate_key.is_none() {
                            lines.duplicate_key = Some((here.clone(), line));
                        }
                        seen.push(value.clone());
                        lines.paths.push((here, line));
                        *key = Some(value);
                    }
                }
                Event::Scalar(..) | Event::Alias(..) => {
                    lines.value_starts(&mut stack, line);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = lines.value_starts(&mut stack, line);
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Map {
                            path,
                            key: None,
                            seen: Vec::new(),
                        },
                        _ => Frame::Seq { path, next: 0 },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        lines
    }

    /// A value begins in the innermost collection: its path (recorded for a
    /// sequence item; a mapping value's line is its key's).
    fn value_starts(&mut self, stack: &mut [Frame], line: usize) -> String {
        match stack.last_mut() {
            Some(Frame::Map { path, key, .. }) => {
                key.take().map_or_else(String::new, |k| join(path, &k))
            }
            Some(Frame::Seq { path, next }) => {
                let here = format!("{path}[{next}]");
                *next += 1;
                self.paths.push((here.clone(), line));
                here
            }
            None => String::new(),
        }
    }

    /// The line of the node at `path`, or of its nearest ancestor that exists
    /// (a missing field is reported on its parent).
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some((_, line)) = self.paths.iter().find(|(p, _)| p == path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "domain: edge
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: path
    descriptors:
      - key: method
        rate_limit:
          unit: second
";

    #[test]
    fn every_path_has_its_line() {
        let l = Lines::of(DOC);
        assert_eq!(l.line("domain"), Some(1));
        assert_eq!(l.line("descriptors[0]"), Some(3));
        assert_eq!(l.line("descriptors[0].rate_limit"), Some(4));
        assert_eq!(l.line("descriptors[1].descriptors[0].key"), Some(7));
        assert_eq!(
            l.line("descriptors[1].descriptors[0].rate_limit.unit"),
            Some(9)
        );
        assert_eq!(
            l.line("descriptors[1].descriptors[0].rate_limit.requests_per_unit"),
            Some(8),
            "a missing field: its parent's line"
        );
        assert_eq!(l.duplicate_key, None);
    }

    #[test]
    fn a_key_written_twice_is_placed_on_its_second_line() {
        let l = Lines::of("domain: d\ndescriptors:\n  - key: user\n    key: other\n");
        assert_eq!(l.duplicate_key, Some(("descriptors[0].key".into(), 4)));
    }
}
