//! The flags that shape a translation, shared by `serve`, `translate` and
//! `validate` so the three always agree on what a directory becomes (and a
//! new option is added once).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::translate::{self, FilterRuntime, RuntimeKind};

/// Where Envoy binds the Gateways' listeners unless told otherwise: file
/// mode runs Envoy next to the user, and a listener reachable from the
/// network is something to ask for, not a default.
pub const DEFAULT_LISTENER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[derive(Debug, clap::Args)]
pub struct TranslatorArgs {
    /// The address Envoy binds every Gateway listener on, and the one Gateway status reports
    /// (`0.0.0.0` to accept connections from other machines).
    #[arg(long, value_name = "IP", default_value_t = DEFAULT_LISTENER_ADDRESS)]
    listener_address: IpAddr,
    /// Serve listener ports as written, even below 1024 (by default they move to port + 10000).
    #[arg(long)]
    no_port_remap: bool,
    /// Serve Gateway listener port PORT on Envoy port ENVOY_PORT instead (repeatable; wins over the
    /// remap). The Gateway keeps its port, e.g. in redirects.
    #[arg(long, value_name = "PORT=ENVOY_PORT", value_parser = parse_port_mapping)]
    port_map: Vec<(u16, u16)>,
    /// Which build of Tollgate's filters Envoy runs: `dynamic-module` (`libtollgate.so`, found by
    /// Envoy through `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`) or `wasm` (the `.wasm` files, by path).
    #[arg(long, value_enum, default_value_t = RuntimeKind::DynamicModule)]
    filter_runtime: RuntimeKind,
    /// With `--filter-runtime wasm`: directory of Tollgate's `.wasm` filters, as Envoy will read it
    /// [default: the directory of this binary when it holds them (`dist/`), else `./dist`; made
    /// absolute].
    #[arg(long, value_name = "DIR")]
    wasm_dir: Option<PathBuf>,
    /// `HOST:PORT` of the global rate limit service (`tollgate ratelimit-server`) that global rate
    /// limit rules call; without it a policy with global rules is Invalid.
    #[arg(long, value_name = "HOST:PORT", value_parser = translate::parse_service_address)]
    ratelimit_service: Option<String>,
}

impl TranslatorArgs {
    pub fn options(&self) -> anyhow::Result<translate::Options> {
        let filter_runtime = match (self.filter_runtime, &self.wasm_dir) {
            (RuntimeKind::DynamicModule, Some(_)) => {
                anyhow::bail!("--wasm-dir is for --filter-runtime wasm; the dynamic module is found through ENVOY_DYNAMIC_MODULES_SEARCH_PATH")
            }
            (RuntimeKind::DynamicModule, None) => FilterRuntime::DynamicModule,
            (RuntimeKind::Wasm, dir) => {
                let dir = dir.clone().unwrap_or_else(default_wasm_dir);
                FilterRuntime::Wasm {
                    dir: std::path::absolute(&dir)
                        .with_context(|| format!("making {} absolute", dir.display()))?,
                }
            }
        };
        Ok(translate::Options {
            listener_address: self.listener_address,
            port_remap: !self.no_port_remap,
            port_map: self.port_map.iter().copied().collect(),
            filter_runtime,
            ratelimit_service: self.ratelimit_service.clone(),
        })
    }
}

/// `--port-map 80=18080`.
pub fn parse_port_mapping(text: &str) -> Result<(u16, u16), String> {
    let (port, envoy) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PORT=ENVOY_PORT"))?;
    let parse = |p: &str| match p.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?} is not a port (1-65535)")),
        Ok(port) => Ok(port),
    };
    Ok((parse(port)?, parse(envoy)?))
}

/// `make build` puts `tollgate` next to the filters in `dist/`; a cargo build
/// (`target/debug/tollgate`) is run from the repository root.
pub fn default_wasm_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("header_mod.wasm").is_file())
        .unwrap_or_else(|| PathBuf::from("dist"))
}

#[cfg(test)]
mod tests {
    use super::parse_port_mapping;

    #[test]
    fn port_mappings_parse_and_bad_ones_are_named() {
        assert_eq!(parse_port_mapping("80=18080"), Ok((80, 18080)));
        assert_eq!(
            parse_port_mapping("80:18080"),
            Err("\"80:18080\" is not PORT=ENVOY_PORT".to_owned())
        );
        assert_eq!(
            parse_port_mapping("80=0"),
            Err("\"0\" is not a port (1-65535)".to_owned())
        );
        assert_eq!(
            parse_port_mapping("x=1"),
            Err("\"x\" is not a port (1-65535)".to_owned())
        );
    }
}
