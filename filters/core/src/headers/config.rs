//! JSON configuration of the header modification filter (the public API).
//!
//! `{"request": Mods?, "response": Mods?}` where `Mods` mirrors Gateway API's
//! `HTTPHeaderFilter` plus `removeMatching`. Unknown fields are errors.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderModConfig {
    #[serde(default)]
    pub request: Option<ModsConfig>,
    #[serde(default)]
    pub response: Option<ModsConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModsConfig {
    /// Overwrite (or create) the header with this value.
    #[serde(default)]
    pub set: Vec<HeaderValueConfig>,
    /// Append a value, keeping existing ones.
    #[serde(default)]
    pub add: Vec<HeaderValueConfig>,
    /// Drop every value of these headers.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Drop every header whose whole name matches one of these regular expressions.
    #[serde(default)]
    pub remove_matching: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueConfig {
    pub name: String,
    pub value: String,
}
