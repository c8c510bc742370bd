//! Test certificates for mutual TLS on xDS, made at test time (rcgen) and
//! written to a temporary directory, so no private key is ever committed:
//!
//! - a CA that signs a server certificate for `localhost`, `127.0.0.1` and
//!   `::1` (what `tollgate serve --xds-tls-cert` presents) and a client
//!   certificate (what Envoy presents, `tollgate bootstrap --xds-tls-cert`);
//! - a rogue CA, unknown to the server, with a client certificate of its own,
//!   for the tests that prove a stranger gets nothing.
//!
//! Keys are ECDSA P-256; certificates are valid from 1975 to 4096 (rcgen's
//! default), so no test depends on the clock.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file of the test PKI; they are deleted when it is dropped.
#[derive(Debug)]
pub struct Pki {
    /// The CA that signed `server` and `client`.
    pub ca: PathBuf,
    pub server: Pair,
    pub client: Pair,
    /// A CA the server does not trust, and a client certificate it signed.
    pub rogue_ca: PathBuf,
    pub rogue_client: Pair,
    dir: TempDir,
}

impl Pki {
    pub fn generate() -> Result<Pki> {
        let dir = tempfile::Builder::new().prefix("tollgate-pki-").tempdir()?;
        let (ca, ca_pem) = authority("tollgate test CA")?;
        let (rogue, rogue_pem) = authority("rogue test CA")?;
        let server = leaf(
            &ca,
            "tollgate serve",
            &["localhost", "127.0.0.1", "::1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let client = leaf(&ca, "envoy", &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let rogue_client = leaf(&rogue, "envoy", &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let write = |name: &str, text: &str| -> Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let pair = |name: &str, (cert, key): &(String, String)| -> Result<Pair> {
            Ok(Pair {
                cert: write(&format!("{name}.crt"), cert)?,
                key: write(&format!("{name}.key"), key)?,
            })
        };
        Ok(Pki {
            ca: write("ca.crt", &ca_pem)?,
            server: pair("server", &server)?,
            client: pair("client", &client)?,
            rogue_ca: write("rogue-ca.crt", &rogue_pem)?,
            rogue_client: pair("rogue-client", &rogue_client)?,
            dir,
        })
    }

    /// The directory holding the files (to write more, e.g. a broken one).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A self-signed CA: its issuer (to sign with) and its certificate, PEM.
fn authority(name: &str) -> Result<(Issuer<'static, KeyPair>, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((Issuer::new(params, key), cert.pem()))
}

/// A certificate signed by `issuer` for `names` (DNS names or IP addresses):
/// its certificate and private key, PEM.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}
