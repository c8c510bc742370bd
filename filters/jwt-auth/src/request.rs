//! The request as the JWT decision sees it: its headers, read with one host call.

use proxy_wasm::types::MapType;
use tollgate_core::jwt::extract::TokenCarrier;
use tollgate_host::abi;

pub struct RequestHeaders(Vec<(String, String)>);

impl RequestHeaders {
    /// Reads the effective context's request headers.
    pub fn fetch() -> Self {
        RequestHeaders(
            abi::get_headers(MapType::HttpRequestHeaders).unwrap_or_else(|e| {
                log::warn!("tollgate jwt_auth: reading request headers failed: {e:?}");
                Vec::new()
            }),
        )
    }

    pub fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request URL without its query, for the `WWW-Authenticate` realm.
    pub fn url(&self) -> String {
        let scheme = self.first(":scheme").unwrap_or("http");
        let authority = self.first(":authority").unwrap_or_default();
        let path = self.first(":path").unwrap_or("/");
        let path = path.split(['?', '#']).next().unwrap_or("/");
        format!("{scheme}://{authority}{path}")
    }
}

impl TokenCarrier for RequestHeaders {
    fn header_values(&mut self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn path(&mut self) -> Option<String> {
        self.first(":path").map(str::to_string)
    }
}
