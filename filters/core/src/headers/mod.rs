//! The header modification filter: Gateway API `HTTPHeaderFilter` semantics for
//! request and response headers, with value templates.
//!
//! `config` is the public JSON shape, `template` the `%{...}` value language,
//! `policy` the compiled, validated form and the per-request edit it performs,
//! `flow` the filter's stream for every runtime.

pub mod config;
pub mod flow;
pub mod policy;
pub mod template;

pub use config::HeaderModConfig;
pub use policy::{HeaderEditor, HeaderPolicy, Mods, Rendered};
pub use template::{RequestSource, Template};
