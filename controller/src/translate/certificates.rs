//! An HTTPS listener's `tls.certificateRefs` → the PEM certificate chains and
//! keys Envoy terminates TLS with. Every way a reference can fail becomes the
//! listener's `ResolvedRefs` reason, as the Gateway API conformance tests
//! expect: `InvalidCertificateRef` (not a Secret, missing, not
//! `kubernetes.io/tls`, data missing or not PEM) or `RefNotPermitted` (another
//! namespace without a ReferenceGrant). A key that is not the certificate's
//! is `InvalidCertificateRef` too: Envoy would refuse the whole listener, every
//! other hostname on the port with it.

use base64::Engine;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::reference_grants;
use super::GATEWAY_GROUP;
use crate::resources::gateway_api::SecretObjectReference;
use crate::resources::{Resources, Secret};

pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// One certificate chain and its private key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub chain: String,
    pub key: String,
}

/// Why a certificateRef resolves to nothing: the listener's `ResolvedRefs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

fn invalid(message: String) -> Problem {
    Problem {
        reason: "InvalidCertificateRef",
        message,
    }
}

/// The certificate one ref of a Gateway in `gateway_namespace` points to.
pub fn resolve(
    resources: &Resources,
    gateway_namespace: &str,
    reference: &SecretObjectReference,
) -> Result<Certificate, Problem> {
    let group = reference.group.as_deref().unwrap_or("");
    let kind = reference.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err(invalid(format!(
            "certificateRef {group:?}/{kind:?} {:?} is not a core Secret",
            reference.name
        )));
    }
    let namespace = reference.namespace.as_deref().unwrap_or(gateway_namespace);
    let from = reference_grants::From {
        group: GATEWAY_GROUP,
        kind: "Gateway",
        namespace: gateway_namespace,
    };
    let to = reference_grants::To {
        group: "",
        kind: "Secret",
        namespace,
        name: &reference.name,
    };
    if namespace != gateway_namespace && !reference_grants::permits(resources, &from, &to) {
        return Err(Problem {
            reason: "RefNotPermitted",
            message: format!(
                "no ReferenceGrant in {namespace:?} lets Gateways in {gateway_namespace:?} reference Secret {:?}",
                reference.name
            ),
        });
    }
    let secret = resources
        .secrets
        .iter()
        .map(|s| &s.object)
        .find(|s| s.metadata.namespace() == namespace && s.metadata.name == reference.name)
        .ok_or_else(|| invalid(format!("Secret {namespace}/{} not found", reference.name)))?;
    certificate(secret).map_err(|e| invalid(format!("Secret {namespace}/{}: {e}", reference.name)))
}

fn certificate(secret: &Secret) -> Result<Certificate, String> {
    let kind = secret.kind.as_deref().unwrap_or("Opaque");
    if kind != TLS_SECRET_TYPE {
        return Err(format!("type is {kind:?}, not {TLS_SECRET_TYPE:?}"));
    }
    let chain = field(secret, "tls.crt")?;
    let key = field(secret, "tls.key")?;
    pem_blocks(&chain, "tls.crt", |tag| tag == "CERTIFICATE")?;
    let keys = pem_blocks(&key, "tls.key", |tag| {
        // OpenSSL writes `EC PARAMETERS` in front of an EC key.
        tag.ends_with("PRIVATE KEY") || tag == "EC PARAMETERS"
    })?;
    if keys != 1 {
        return Err(format!("tls.key holds {keys} private keys, not one"));
    }
    key_is_the_certificates(&chain, &key)?;
    Ok(Certificate { chain, key })
}

/// Refuses a key that is not the private key of the chain's first
/// certificate. Only a definite mismatch is refused: what rustls cannot read
/// (a key type ring lacks, such as RSA under 2048 bits, or an X.509 v1
/// certificate) is left to Envoy, whose BoringSSL reads more.
fn key_is_the_certificates(chain: &str, key: &str) -> Result<(), String> {
    let Ok(certificates) = CertificateDer::pem_slice_iter(chain.as_bytes()).collect() else {
        return Ok(());
    };
    let Ok(key) = PrivateKeyDer::from_pem_slice(key.as_bytes()) else {
        return Ok(());
    };
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(certificates, key, &provider) {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("tls.key is not the private key of the certificate in tls.crt".to_owned())
        }
        _ => Ok(()),
    }
}

/// A data key as text: `stringData` wins over `data`, as the API server merges them.
fn field(secret: &Secret, name: &str) -> Result<String, String> {
    if let Some(text) = secret.string_data.get(name) {
        return Ok(text.clone());
    }
    let encoded = secret
        .data
        .get(name)
        .ok_or_else(|| format!("no {name} in data"))?;
    let compact: String = encoded.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("data.{name} is not base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("data.{name} is not PEM text"))
}

/// Checks that `text` is PEM made only of blocks `allowed` accepts; returns
/// how many blocks end in `PRIVATE KEY`.
fn pem_blocks(text: &str, name: &str, allowed: impl Fn(&str) -> bool) -> Result<usize, String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("{name} is not PEM: {e}"))?;
    if blocks.is_empty() {
        return Err(format!("{name} holds no PEM block"));
    }
    if let Some(other) = blocks.iter().find(|b| !allowed(b.tag())) {
        return Err(format!("{name} holds a PEM block {:?}", other.tag()));
    }
    Ok(blocks
        .iter()
        .filter(|b| b.tag().ends_with("PRIVATE KEY"))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::loader::load_str;

    fn test_data(name: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls-test-data");
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    /// A self-signed test-only certificate and key from the golden cases.
    fn test_pem() -> (String, String) {
        (test_data("tls.crt"), test_data("tls.key"))
    }

    fn secret_yaml(kind: &str, crt: &str, key: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: cert, namespace: certs}}\ntype: {kind}\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
            b64(crt),
            b64(key)
        )
    }

    fn resolve_yaml(yaml: &str, reference: &str) -> Result<Certificate, Problem> {
        let mut resources = Resources::default();
        load_str("in.yaml", yaml, &mut resources).unwrap();
        let reference: SecretObjectReference = serde_yaml_ng::from_str(reference).unwrap();
        resolve(&resources, "certs", &reference)
    }

    #[test]
    fn a_tls_secret_resolves_from_data_or_string_data() {
        let (crt, key) = test_pem();
        let got = resolve_yaml(&secret_yaml(TLS_SECRET_TYPE, &crt, &key), "{name: cert}").unwrap();
        assert_eq!(
            got,
            Certificate {
                chain: crt.clone(),
                key: key.clone()
            }
        );
        let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
        let plain = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: cert, namespace: certs}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(&crt),
            indent(&key)
        );
        let got = resolve_yaml(&plain, "{name: cert}").unwrap();
        assert_eq!(got.chain.trim(), crt.trim());
    }

    #[test]
    fn every_failure_names_its_reason() {
        let (crt, key) = test_pem();
        let good = secret_yaml(TLS_SECRET_TYPE, &crt, &key);
        let reason = |yaml: &str, reference: &str| resolve_yaml(yaml, reference).unwrap_err();
        let p = reason(&good, "{name: missing}");
        assert_eq!(
            (p.reason, p.message.as_str()),
            ("InvalidCertificateRef", "Secret certs/missing not found")
        );
        assert_eq!(
            reason(&good, "{name: cert, kind: ConfigMap}").reason,
            "InvalidCertificateRef"
        );
        assert_eq!(
            reason(&good, "{name: cert, group: example.com}").reason,
            "InvalidCertificateRef"
        );
        assert_eq!(
            reason(&good, "{name: cert, namespace: other}").reason,
            "RefNotPermitted"
        );
        let opaque = reason(&secret_yaml("Opaque", &crt, &key), "{name: cert}");
        assert!(
            opaque.message.contains("not \"kubernetes.io/tls\""),
            "{opaque:?}"
        );
        let malformed = reason(
            &secret_yaml(TLS_SECRET_TYPE, "garbage", &key),
            "{name: cert}",
        );
        assert!(malformed.message.contains("tls.crt"), "{malformed:?}");
        let swapped = reason(&secret_yaml(TLS_SECRET_TYPE, &key, &crt), "{name: cert}");
        assert!(
            swapped.message.contains("tls.crt holds a PEM block"),
            "{swapped:?}"
        );
        let mismatched = reason(
            &secret_yaml(TLS_SECRET_TYPE, &crt, &test_data("other.key")),
            "{name: cert}",
        );
        assert_eq!(
            (mismatched.reason, mismatched.message.as_str()),
            (
                "InvalidCertificateRef",
                "Secret certs/cert: tls.key is not the private key of the certificate in tls.crt"
            )
        );
        let not_b64 = good.replace("tls.key: ", "tls.key: x*");
        assert!(reason(&not_b64, "{name: cert}")
            .message
            .contains("not base64"));
    }
}
