//! What one YAML file may cost to load. The config directory is written by
//! people and tools we do not control, and one hostile or broken file must
//! cost only itself: it is refused with a load error naming it, and the last
//! good configuration keeps serving.
//!
//! - **Size**: a file over [`MAX_FILE_BYTES`] is not parsed, and a file may
//!   hold at most [`MAX_DOCUMENTS`] documents.
//! - **Nesting**: libyaml (under serde_yaml_ng) spends time quadratic in the
//!   depth of flow collections: 100,000 nested `{a: ` took 84 s before its
//!   parser refused them. A document with more than [`MAX_DEPTH`] brackets,
//!   the only kind that can nest that deep in flow style, is first walked by
//!   yaml-rust2's event parser, which is linear and stops at depth 256 on its
//!   own, and refused when it nests deeper than [`MAX_DEPTH`]. Block nesting
//!   is linear in libyaml and serde_yaml_ng refuses it past 128 levels.
//! - **Alias expansion**: one anchored list of K items referenced J times is
//!   K × J values; a 25 KB file expanded to 1.59 GB. A document's values are
//!   built by [`BoundedValue`], which charges each value against a budget of
//!   [`BUDGET_PER_BYTE`] per byte of the document (more than the same bytes
//!   could cost without aliases) and stops the parse when it runs out.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The largest file read.
pub const MAX_FILE_BYTES: u64 = 8 << 20;
/// The most documents (`---`-separated) in one file.
pub const MAX_DOCUMENTS: usize = 20_000;
/// The deepest nesting of collections (block and flow levels together) in a
/// document with more than this many brackets; block nesting alone is refused
/// by serde_yaml_ng past 128 levels.
pub const MAX_DEPTH: usize = 64;
/// Budget units per byte of a document's text, and the units a value costs:
/// [`NODE_COST`] for each value (about the size of a `serde_json::Value`)
/// plus one per byte of each string. Text without aliases costs at most
/// about 32 per byte (`{a,b}`: a key and a null per two bytes), so a
/// document may expand to twice what its size allows plainly.
pub const BUDGET_PER_BYTE: usize = 64;
/// Every document may also expand by this much, however small.
pub const BUDGET_PER_DOCUMENT: usize = 4096;
const NODE_COST: usize = 32;

/// Why a document is refused before or while it is parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// 1-based line within the document, when known.
    pub line: Option<usize>,
    pub message: String,
}

/// Refuses a document whose collections nest deeper than [`MAX_DEPTH`].
/// Documents with few brackets cannot, and are not walked.
pub fn check_depth(doc: &str) -> Result<(), Refused> {
    let brackets = doc.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if brackets <= MAX_DEPTH {
        return Ok(());
    }
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(doc);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(()),
            Ok((Event::SequenceStart(..) | Event::MappingStart(..), at)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Refused {
                        line: Some(at.line()),
                        message: format!(
                            "collections nested deeper than {MAX_DEPTH} levels; not loaded"
                        ),
                    });
                }
            }
            Ok((Event::SequenceEnd | Event::MappingEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
            // yaml-rust2 stopped (a syntax error, or its own limit of 256
            // flow levels). The depth so far is within bounds; if what
            // follows cannot nest past twice the limit either, serde_yaml_ng
            // may parse the document (and word any error its own way).
            Err(e) => {
                let after: usize = doc
                    .chars()
                    .skip(e.marker().index())
                    .filter(|c| matches!(c, '[' | '{'))
                    .count();
                if after <= MAX_DEPTH {
                    return Ok(());
                }
                return Err(Refused {
                    line: Some(e.marker().line()),
                    message: e.info().to_owned(),
                });
            }
        }
    }
}

/// Budget for one document of `len` bytes.
pub fn budget_for(len: usize) -> usize {
    len.saturating_mul(BUDGET_PER_BYTE)
        .saturating_add(BUDGET_PER_DOCUMENT)
}

/// Deserializes a [`Value`] as serde_json's own visitor does, charging every
/// value against `budget` units: a document whose aliases expand past it is
/// an error, raised while the values are built, before the memory is spent.
pub struct BoundedValue<'a> {
    pub budget: &'a mut usize,
}

/// The message of a budget overrun (the loader tells it from other errors).
pub const EXPANSION_REFUSED: &str = "expands to too many values (YAML aliases?); not loaded";

impl BoundedValue<'_> {
    fn charge<E: de::Error>(&mut self, units: usize) -> Result<(), E> {
        match self.budget.checked_sub(units) {
            Some(left) => {
                *self.budget = left;
                Ok(())
            }
            None => Err(E::custom(EXPANSION_REFUSED)),
        }
    }

    fn reborrow(&mut self) -> BoundedValue<'_> {
        BoundedValue {
            budget: self.budget,
        }
    }
}

impl<'de> DeserializeSeed<'de> for BoundedValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoundedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.charge(NODE_COST + v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.charge(NODE_COST + v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(NODE_COST)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(NODE_COST)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.reborrow())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.charge(NODE_COST)?;
        let mut values = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.charge(NODE_COST + key.len())?;
            let value = map.next_value_seed(self.reborrow())?;
            values.insert(key, value);
        }
        Ok(Value::Object(values))
    }
}

/// Parses one document into a [`Value`] within its budget.
pub fn parse_value(doc: &str) -> Result<Value, serde_yaml_ng::Error> {
    let mut budget = budget_for(doc.len());
    BoundedValue {
        budget: &mut budget,
    }
    .deserialize(serde_yaml_ng::Deserializer::from_str(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a: &a [x, x, …]` (K items) and `b: [*a, *a, …]` (J references).
    fn aliases(k: usize, j: usize) -> String {
        format!(
            "a: &a [{}]\nb: [{}]\n",
            vec!["x"; k].join(", "),
            vec!["*a"; j].join(", ")
        )
    }

    #[test]
    fn a_document_parses_to_the_value_serde_json_would_build() {
        let doc = "apiVersion: v1\nkind: Service\nmetadata: {name: a, labels: {x: 'y'}}\nspec:\n  ports: [{port: 80}, {port: 443}]\n  f: 1.5\n  n: ~\n  t: true\n  big: 18446744073709551615\n  neg: -3\n";
        let expected: Value = serde_yaml_ng::from_str(doc).unwrap();
        assert_eq!(parse_value(doc).unwrap(), expected);
    }

    #[test]
    fn an_anchor_referenced_a_few_times_still_loads() {
        let doc = aliases(20, 10);
        let value = parse_value(&doc).unwrap();
        assert_eq!(value["b"].as_array().unwrap().len(), 10);
    }

    #[test]
    fn an_anchored_list_referenced_thousands_of_times_is_refused_while_it_is_built() {
        // 2,000 × 2,000 = 4 million values from 10 KB.
        let doc = aliases(2000, 2000);
        let err = parse_value(&doc).unwrap_err();
        assert!(err.to_string().contains(EXPANSION_REFUSED), "{err}");
    }

    #[test]
    fn a_long_string_referenced_many_times_is_refused() {
        let doc = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(100_000),
            vec!["*a"; 1000].join(",")
        );
        assert!(parse_value(&doc).is_err());
    }

    #[test]
    fn plain_documents_of_the_densest_kinds_fit_their_budget() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
        let dense = [
            format!("{{{}}}", keys.join(",")),
            keys.iter().map(|k| format!("{k}:\n")).collect(),
            format!("[{}]", vec!["[]"; 10_000].join(",")),
            "-\n".repeat(10_000),
            format!("[{}]", vec!["''"; 10_000].join(",")),
        ];
        for doc in dense {
            assert!(
                serde_yaml_ng::from_str::<Value>(&doc).is_ok(),
                "{}",
                &doc[..20]
            );
            assert!(parse_value(&doc).is_ok(), "{}", &doc[..20]);
        }
    }

    #[test]
    fn deep_flow_nesting_is_refused_quickly_with_its_line() {
        for opener in ["{a: ", "[", "{"] {
            let doc = format!("kind: x\nspec: {}", opener.repeat(100_000));
            let refused = check_depth(&doc).unwrap_err();
            assert_eq!(refused.line, Some(2), "{opener}: {refused:?}");
        }
    }

    #[test]
    fn flow_nesting_within_the_limit_loads_and_past_it_does_not() {
        let nest = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
        // A block mapping (one level) holding the flow collections.
        assert!(check_depth(&format!("a: {}", nest(MAX_DEPTH - 1))).is_ok());
        let refused = check_depth(&format!("a: {}", nest(MAX_DEPTH + 1))).unwrap_err();
        assert!(
            refused.message.contains("nested deeper than 64 levels"),
            "{refused:?}"
        );
    }

    #[test]
    fn many_shallow_brackets_are_not_nesting() {
        let doc = format!("items: [{}]\n", vec!["{a: 1}"; 5000].join(", "));
        assert!(check_depth(&doc).is_ok());
    }
}
