//! JSON configuration of the header modification filter (the public API).
//!
//! `{"request": Mods?, "response": Mods?}` where `Mods` mirrors Gateway API's
//! `HTTPHeaderFilter` plus `removeMatching`. Unknown fields are errors.
//! `Serialize` writes the same shape back, leaving out what is unset, so the
//! controller emits a policy as this very type.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderModConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ModsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ModsConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModsConfig {
    /// Overwrite (or create) the header with this value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValueConfig>,
    /// Append a value, keeping existing ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValueConfig>,
    /// Drop every value of these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Drop every header whose whole name matches one of these regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_matching: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderValueConfig {
    pub name: String,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_back_to_the_shape_it_reads() {
        let doc = json!({
            "request": {"set": [{"name": "x", "value": "1"}], "removeMatching": ["^x-.*"]},
            "response": {"add": [{"name": "y", "value": "2"}], "remove": ["z"]}
        });
        let config: HeaderModConfig = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(serde_json::to_value(&config).unwrap(), doc);
        assert_eq!(
            serde_json::to_value(HeaderModConfig::default()).unwrap(),
            json!({})
        );
    }
}
