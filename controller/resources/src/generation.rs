//! `observedGeneration` in file mode. The API server bumps
//! `metadata.generation` on every spec change; YAML from a directory has no
//! API server, so unless the YAML carries `metadata.generation` the number is
//! derived from the spec itself: SHA-256 of its canonical JSON (object keys
//! sorted, no whitespace), the first four bytes as a big-endian `u32` shifted
//! right by one, plus one. That lands in 1..=2^31 (never 0, which means
//! "unset", and small enough for any client that reads it as int32), stays
//! the same across runs and machines for the same spec, and changes when the
//! spec changes (short of a 1 in 2^31 collision). Metadata edits (labels,
//! annotations) do not change it, as with the API server.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The generation of one object, given as parsed YAML.
pub fn of(object: &Value) -> i64 {
    if let Some(generation) = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
    {
        return generation;
    }
    // serde_json's maps keep their keys sorted (its `preserve_order` feature
    // is off; `same_spec_same_number_whatever_the_key_order_or_metadata`
    // fails if it is ever turned on), so the compact JSON is canonical as is.
    // Writing a value out cannot fail (its keys are strings).
    let spec = serde_json::to_vec(object.get("spec").unwrap_or(&Value::Null)).unwrap_or_default();
    let digest = Sha256::digest(&spec);
    let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    i64::from(first >> 1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_generation_wins() {
        assert_eq!(
            of(&json!({"metadata": {"generation": 7}, "spec": {"a": 1}})),
            7
        );
    }

    #[test]
    fn same_spec_same_number_whatever_the_key_order_or_metadata() {
        let a: Value = serde_yaml_ng::from_str(
            "metadata: {name: a, labels: {x: y}}\nspec: {b: [1, 2], a: {d: 1, c: 2}}\n",
        )
        .unwrap();
        let b: Value =
            serde_yaml_ng::from_str("metadata: {name: a}\nspec:\n  a: {c: 2, d: 1}\n  b: [1, 2]\n")
                .unwrap();
        assert_eq!(of(&a), of(&b));
    }

    #[test]
    fn a_spec_edit_changes_it() {
        let before = of(&json!({"spec": {"listeners": [{"port": 80}]}}));
        let after = of(&json!({"spec": {"listeners": [{"port": 81}]}}));
        assert_ne!(before, after);
        assert!((1..=1 << 31).contains(&before) && (1..=1 << 31).contains(&after));
    }

    /// Pinned: the number must not drift between releases, or every status
    /// would look out of date after an upgrade.
    #[test]
    fn the_derivation_is_stable() {
        assert_eq!(of(&json!({"spec": {}})), PINNED_EMPTY_SPEC);
    }

    /// Computed independently: `(int.from_bytes(sha256(b"{}")[:4], "big") >> 1) + 1` in Python.
    const PINNED_EMPTY_SPEC: i64 = 571_062_226;
}
