//! The Tollgate controller as a library: the subcommands of the `tollgate`
//! binary (`main.rs` only parses the command line, sets up logging and calls
//! one of them), and the stages under them — the translator, the xDS server,
//! `serve`'s watcher and views, the rate limit service — so integration tests
//! and future providers (Kubernetes) use them directly.

pub mod bootstrap_command;
pub mod manifests;
pub mod ratelimit_server;
pub mod serve;
mod shutdown;
pub mod translate;
pub mod translate_command;
pub mod translator_args;
pub mod validate_command;
pub mod xds;

/// What the controller reads, loaded from a directory of YAML: a crate of its
/// own, so the fuzz targets build it without the rest of the controller.
pub use tollgate_resources as resources;
