//! Which build of Tollgate's filters Envoy runs, and the Envoy protos of each.
//!
//! - **Dynamic module** (the default): `libtollgate.so`, found by Envoy through
//!   `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`. Each filter kind is one
//!   `DynamicModuleFilter` in the chain whose own config is the empty envelope
//!   (`{"routes": {}}`: a route without a policy passes), and each route's
//!   policy is that route's `typed_per_filter_config` entry
//!   (`DynamicModuleFilterPerRoute`), which Envoy hands the filter for the
//!   matched route; so a policy edit is a route update, not a listener's.
//!   The JWT filter is the exception (see `FilterKind::per_route`): its
//!   policies stay in the chain's envelope.
//! - **Wasm**: `<wasm dir>/<filter>.wasm` on V8. Envoy's wasm filter has no
//!   per-route config, so the chain's filter carries the per-route envelope
//!   `{"routes": {"<Envoy route name>": <policy>}}` (docs/design.md).
//!
//! Both carry exactly the JSON the filters take (docs/filters/README.md), so
//! [`super::filter_chain`] checks a policy once, for either runtime.

use std::collections::BTreeMap;
use std::path::PathBuf;

use envoy_types::pb::envoy::config::core::v3::{
    async_data_source, data_source, AsyncDataSource, DataSource,
};
use envoy_types::pb::envoy::extensions::dynamic_modules::v3::DynamicModuleConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::{
    DynamicModuleFilter, DynamicModuleFilterPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::wasm::v3::{
    plugin_config, FailurePolicy, PluginConfig, VmConfig,
};
use envoy_types::pb::google::protobuf::{Any, StringValue};
use serde::Serialize;
use serde_json::Value;

use super::envoy::any;

/// The dynamic module's name: Envoy loads `lib<name>.so` from
/// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
pub const DYNAMIC_MODULE: &str = "tollgate";

/// `--filter-runtime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// `libtollgate.so`, native code loaded by Envoy (Envoy 1.40/1.41).
    #[default]
    DynamicModule,
    /// The `.wasm` filters on Envoy's V8 runtime.
    Wasm,
}

/// The runtime and where its files are, as Envoy will read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterRuntime {
    DynamicModule,
    /// The absolute directory holding `<filter>.wasm`.
    Wasm {
        dir: PathBuf,
    },
}

/// A filter's configuration in the chain: the per-route envelope.
#[derive(Serialize)]
struct Envelope<'a> {
    routes: BTreeMap<&'a str, &'a Value>,
}

impl FilterRuntime {
    /// The chain's filter `module` for a listener whose routes have `routes`'
    /// policies of it. The dynamic module's config is the empty envelope when
    /// the routes carry their policies (`per_route`), else the envelope.
    pub fn http_filter(
        &self,
        module: &str,
        routes: BTreeMap<&str, &Value>,
        per_route: bool,
    ) -> HttpFilter {
        let typed = match self {
            FilterRuntime::DynamicModule => any(&DynamicModuleFilter {
                dynamic_module_config: Some(module_config()),
                filter_name: module.to_owned(),
                filter_config: Some(json_config(&Envelope {
                    routes: if per_route { BTreeMap::new() } else { routes },
                })),
                ..DynamicModuleFilter::default()
            }),
            FilterRuntime::Wasm { dir } => any(&wasm(module, dir, &Envelope { routes })),
        };
        HttpFilter {
            name: filter_name(module),
            config_type: Some(http_filter::ConfigType::TypedConfig(typed)),
            ..HttpFilter::default()
        }
    }

    /// A route's `typed_per_filter_config` entry for its policy of filter
    /// `module`, when this runtime has per-route config (the wasm filter reads
    /// the envelope instead).
    pub fn per_route(&self, module: &str, policy: &Value) -> Option<(String, Any)> {
        match self {
            FilterRuntime::DynamicModule => Some((
                filter_name(module),
                any(&DynamicModuleFilterPerRoute {
                    dynamic_module_config: Some(module_config()),
                    filter_name: module.to_owned(),
                    filter_config: Some(json_config(policy)),
                    ..DynamicModuleFilterPerRoute::default()
                }),
            )),
            FilterRuntime::Wasm { .. } => None,
        }
    }
}

/// The chain's name of filter `module`, which `typed_per_filter_config` keys on.
fn filter_name(module: &str) -> String {
    format!("tollgate.{module}")
}

fn module_config() -> DynamicModuleConfig {
    DynamicModuleConfig {
        name: DYNAMIC_MODULE.to_owned(),
        ..DynamicModuleConfig::default()
    }
}

/// `config` as the `StringValue` of JSON the filters read.
fn json_config(config: &impl Serialize) -> Any {
    // String keys and JSON values: serialising cannot fail.
    let value = serde_json::to_string(config).unwrap_or_default();
    any(&StringValue { value })
}

/// The wasm filter as docs/filters/README.md and envoy-configs/ ship it: V8,
/// the module from `dir`, and `FAIL_RELOAD` so a crashed VM is reloaded
/// instead of every later request failing.
fn wasm(module: &str, dir: &std::path::Path, config: &impl Serialize) -> Wasm {
    Wasm {
        config: Some(PluginConfig {
            name: module.to_owned(),
            root_id: module.to_owned(),
            configuration: Some(json_config(config)),
            failure_policy: FailurePolicy::FailReload as i32,
            vm: Some(plugin_config::Vm::VmConfig(VmConfig {
                vm_id: module.to_owned(),
                runtime: "envoy.wasm.runtime.v8".to_owned(),
                code: Some(AsyncDataSource {
                    specifier: Some(async_data_source::Specifier::Local(DataSource {
                        specifier: Some(data_source::Specifier::Filename(
                            dir.join(format!("{module}.wasm")).display().to_string(),
                        )),
                        ..DataSource::default()
                    })),
                }),
                ..VmConfig::default()
            })),
            ..PluginConfig::default()
        }),
    }
}
