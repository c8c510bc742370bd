//! Canary selection: which backend a request goes to, by rules, a sticky key
//! or weight. `config` is the public JSON shape, `policy` the compiled,
//! validated form and the selection, `spread` the hashing and the weighted
//! draw, `flow` the filter's stream for every runtime.

pub mod config;
pub mod flow;
pub mod policy;
pub mod spread;
