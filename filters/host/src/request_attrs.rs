//! The request as the rate limit and canary rules see it: headers read with
//! one host call and the client address with another, each only when a rule
//! asks for it (a rule without selectors needs neither).

use std::cell::OnceCell;
use std::net::{IpAddr, SocketAddr};

use proxy_wasm::types::MapType;
use tollgate_core::request_parts::RequestAttrs;

use crate::{abi, request};

#[derive(Default)]
pub struct Attrs {
    headers: OnceCell<Vec<(String, String)>>,
    source: OnceCell<Option<IpAddr>>,
}

impl Attrs {
    fn headers(&self) -> &[(String, String)] {
        self.headers.get_or_init(|| {
            abi::get_headers(MapType::HttpRequestHeaders).unwrap_or_else(|e| {
                log::warn!("tollgate: reading request headers failed: {e:?}");
                Vec::new()
            })
        })
    }
}

impl RequestAttrs for Attrs {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers()
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value without collecting them all (most rules read one).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn method(&self) -> &str {
        self.header(":method").unwrap_or_default()
    }

    fn path(&self) -> &str {
        self.header(":path").unwrap_or("/")
    }

    /// Envoy's `source.address` (`ip:port`): the downstream peer, or the address
    /// Envoy derived from `x-forwarded-for` when configured to trust it.
    fn source_ip(&self) -> Option<IpAddr> {
        *self.source.get_or_init(|| {
            request::property_string(&["source", "address"])
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .map(|a| a.ip())
        })
    }
}
