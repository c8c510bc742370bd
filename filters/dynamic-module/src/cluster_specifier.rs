//! Canary selection as an Envoy cluster specifier: Envoy loads it with
//! `envoy.extensions.router.cluster_specifiers.dynamic_modules.v3.DynamicModuleClusterSpecifier`
//! (`dynamic_module_config: {name: tollgate}`, `specifier_name: canary`,
//! `specifier_config` a `StringValue` holding the canary filter's JSON), on a
//! route's `inline_cluster_specifier_plugin` or a named `cluster_specifier_plugin`.
//! Envoy asks it for the cluster while it resolves the route, so no header is
//! written and the route is not matched twice, as it is for the filter.
//!
//! The decision is the filter's ([`CanaryPolicy::select`], with the same
//! per-worker draws); the policy is compiled by
//! [`CanaryPolicy::compile_request_only`], which refuses what a selector that
//! sees only the request headers cannot do (`header`, `sticky.setCookie`).
//! When nothing applies the module reports no decision and the route stays as
//! Envoy resolved it.

#![allow(unsafe_code)] // the exported hooks and the callbacks are the foreign function interface

use std::cell::OnceCell;
use std::sync::Arc;

use serde_json::Value;
use tollgate_core::canary::policy::CanaryPolicy;
use tollgate_core::error::parse_json;
use tollgate_core::request_parts::RequestAttrs;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;

use crate::abi::{
    self, EnvoyBuffer, ModuleBuffer, ModulePtr, SpecifierConfigEnvoyPtr, SpecifierContextEnvoyPtr,
};
use crate::filter::with_draws;
use crate::{guard, log, metrics, text};

/// The one specifier this module holds, by `specifier_name`.
const NAME: &str = "canary";

/// A specifier config: the policy and its counters. Shared by every worker.
struct SpecifierConfig {
    policy: Arc<CanaryPolicy>,
    /// Envoy's config, for counting (it outlives ours: Envoy destroys ours
    /// from its destructor).
    envoy: SpecifierConfigEnvoyPtr,
    selected: Option<usize>,
    unselected: Option<usize>,
}

fn compile(config: &[u8]) -> Result<Arc<CanaryPolicy>, ConfigError> {
    let policies = parse_json(config)
        .and_then(|doc: Value| RoutePolicies::parse(doc, CanaryPolicy::compile_request_only))?;
    policies.for_route(None).cloned().ok_or_else(|| {
        ConfigError::new(
            "routes",
            "a cluster specifier sits on its route and holds one policy, not policies by route name",
        )
    })
}

impl SpecifierConfig {
    /// # Safety
    /// `envoy` must be the config pointer of the running `config_new` hook.
    unsafe fn counter(
        envoy: SpecifierConfigEnvoyPtr,
        name: &str,
        label: Option<&str>,
    ) -> Option<usize> {
        metrics::define_counter(name, label, |name, labels, count, id| {
            // SAFETY: per the caller; the buffers outlive the call.
            unsafe {
                abi::envoy_dynamic_module_callback_cluster_specifier_config_define_counter(
                    envoy, name, labels, count, id,
                )
            }
        })
    }

    /// Adds one to counter `id`, with the label's value when it has one.
    fn count(&self, id: Option<usize>, label: Option<&str>) {
        let Some(id) = id else {
            return;
        };
        metrics::increment_counter(id, label, |id, values, count, amount| {
            // SAFETY: Envoy's config is alive while ours is; the label values
            // outlive the call and their number is the number of labels defined.
            unsafe {
                abi::envoy_dynamic_module_callback_cluster_specifier_config_increment_counter(
                    self.envoy, id, values, count, amount,
                )
            }
        });
    }
}

/// The request as the selection reads it: header values are Envoy's own bytes,
/// borrowed for the running `select` hook (nothing is copied). A value that is
/// not UTF-8 is not seen (it could match no `Exact` value anyway).
struct SelectRequest<'a> {
    context: SpecifierContextEnvoyPtr,
    path: OnceCell<&'a str>,
}

impl<'a> SelectRequest<'a> {
    /// # Safety
    /// `context` must be the context of the running `select` hook, and the
    /// request must not outlive it (`'a` is that hook).
    unsafe fn new(context: SpecifierContextEnvoyPtr) -> Self {
        SelectRequest {
            context,
            path: OnceCell::new(),
        }
    }

    /// Value `index` of header `name` as Envoy holds it, and how many values
    /// the name has.
    fn raw(&self, name: &str, index: usize) -> Option<(&'a [u8], usize)> {
        let mut result = EnvoyBuffer::EMPTY;
        let mut total = 0usize;
        // SAFETY: the live context of the running hook; `name` outlives the call.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_cluster_specifier_get_request_header_value(
                self.context,
                ModuleBuffer::of(name.as_bytes()),
                &mut result,
                index,
                &mut total,
            )
        };
        if !found {
            return None;
        }
        if result.ptr.is_null() {
            return Some((&[], total));
        }
        // SAFETY: Envoy's view into the request headers, which it holds
        // unchanged for the whole hook (`'a`).
        Some((
            unsafe { std::slice::from_raw_parts(result.ptr, result.length) },
            total,
        ))
    }

    fn text(&self, name: &str, index: usize) -> Option<&'a str> {
        self.raw(name, index)
            .and_then(|(v, _)| std::str::from_utf8(v).ok())
    }
}

impl RequestAttrs for SelectRequest<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        let Some((first, total)) = self.raw(name, 0) else {
            return Vec::new();
        };
        let mut values = Vec::with_capacity(total);
        values.extend(std::str::from_utf8(first).ok());
        values.extend((1..total).filter_map(|i| self.text(name, i)));
        values
    }

    fn method(&self) -> &str {
        self.header(":method").unwrap_or_default()
    }

    fn path(&self) -> &str {
        self.path
            .get_or_init(|| self.text(":path", 0).unwrap_or("/"))
    }

    /// Not offered to a cluster specifier (and no canary rule reads it).
    fn source_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
}

/// # Safety
/// Called by Envoy on the main thread with live buffers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_cluster_specifier_config_new(
    config_envoy: SpecifierConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ModulePtr {
    guard("cluster_specifier_config_new", std::ptr::null(), || {
        // SAFETY: Envoy's buffers, valid during this hook.
        let (name, config) = unsafe { (text(name), crate::bytes(config)) };
        if name != NAME {
            log::error(&format!(
                "tollgate: rejected cluster specifier configuration: `specifier_name` `{name}` is not a Tollgate cluster specifier; expected {NAME}"
            ));
            return std::ptr::null();
        }
        let policy = match compile(&config) {
            Ok(policy) => policy,
            Err(e) => {
                log::error(&format!(
                    "tollgate canary cluster specifier: rejected configuration: {e}"
                ));
                return std::ptr::null();
            }
        };
        // SAFETY: the config pointer of this hook (counters are defined now or never).
        let (selected, unselected) = unsafe {
            (
                SpecifierConfig::counter(config_envoy, "tollgate_canary_selected", Some("backend")),
                SpecifierConfig::counter(config_envoy, "tollgate_canary_unselected", None),
            )
        };
        Box::into_raw(Box::new(SpecifierConfig {
            policy,
            envoy: config_envoy,
            selected,
            unselected,
        }))
        .cast_const()
        .cast()
    })
}

/// # Safety
/// `config` must come from `on_cluster_specifier_config_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_cluster_specifier_config_destroy(
    config: ModulePtr,
) {
    guard("cluster_specifier_config_destroy", (), || {
        // SAFETY: made by Box::into_raw in config_new; released once.
        drop(unsafe { Box::from_raw(config.cast::<SpecifierConfig>().cast_mut()) });
    })
}

/// Names the cluster and returns true, or returns false (no decision: the
/// route keeps what Envoy resolved) when nothing applies or on a panic.
///
/// # Safety
/// Called by Envoy on a worker with our live config and its selection context.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_cluster_specifier_select(
    config: ModulePtr,
    context: SpecifierContextEnvoyPtr,
) -> bool {
    guard("cluster_specifier_select", false, || {
        // SAFETY: our live config (Envoy keeps it until config_destroy).
        let config = unsafe { &*config.cast::<SpecifierConfig>() };
        // SAFETY: the context of this hook; the request is dropped before it returns.
        let request = unsafe { SelectRequest::new(context) };
        let Some(selection) = with_draws(|draws| config.policy.select(&request, draws)) else {
            config.count(config.unselected, None);
            return false;
        };
        let Some(name) = config.policy.backend_names().get(selection.backend) else {
            return false;
        };
        // SAFETY: the context of this hook; Envoy copies the name.
        unsafe {
            abi::envoy_dynamic_module_callback_cluster_specifier_set_cluster_name(
                context,
                ModuleBuffer::of(name.as_bytes()),
            )
        };
        config.count(config.selected, Some(name));
        true
    })
}
