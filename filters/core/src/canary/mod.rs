//! Canary selection: which backend a request goes to, by rules, a sticky key
//! or weight. `config` is the public JSON shape, `policy` the compiled,
//! validated form and the selection, `spread` the hashing and the weighted
//! draw.

pub mod config;
pub mod policy;
pub mod spread;
