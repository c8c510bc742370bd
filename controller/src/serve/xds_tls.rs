//! Mutual TLS on `tollgate serve`'s ADS server (`--xds-tls-cert`,
//! `--xds-tls-key`, `--xds-tls-client-ca`). xDS carries every listener's
//! private keys and every filter's secrets, so with these flags a client gets a
//! stream only after its TLS handshake presented a certificate signed by the
//! client CA; any other client fails the handshake and never reaches gRPC.
//!
//! The files are read and checked once, at start, with the rustls tonic uses:
//! a missing flag, an unreadable file, PEM without a certificate or key, or a
//! key that does not belong to the certificate stops the controller with the
//! flag and file named, instead of failing every handshake later.
//!
//! Without the flags xDS stays plain gRPC; [`plain_warning`] says when that
//! is dangerous.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

const CERT_FLAG: &str = "--xds-tls-cert";
const KEY_FLAG: &str = "--xds-tls-key";
const CLIENT_CA_FLAG: &str = "--xds-tls-client-ca";

/// How long a client may take over its TLS handshake: one that never finishes
/// it must not hold a connection (and a task) forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, clap::Args)]
pub struct XdsTlsArgs {
    /// Certificate chain (PEM) the ADS server presents. With --xds-tls-key and --xds-tls-client-ca
    /// (all three or none), xDS is served over mutual TLS.
    #[arg(long = "xds-tls-cert", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --xds-tls-cert.
    #[arg(long = "xds-tls-key", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// CA certificates (PEM): only a client presenting a certificate signed by one of them gets a stream.
    #[arg(long = "xds-tls-client-ca", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
}

impl XdsTlsArgs {
    /// The ADS server's TLS settings, every file checked; `None` when no flag
    /// is given (plain gRPC).
    pub fn load(&self) -> Result<Option<ServerTlsConfig>> {
        let Some([cert, key, client_ca]) = all_or_none(
            "mutual TLS on xDS",
            [
                (CERT_FLAG, self.cert.as_deref()),
                (KEY_FLAG, self.key.as_deref()),
                (CLIENT_CA_FLAG, self.client_ca.as_deref()),
            ],
        )?
        else {
            return Ok(None);
        };
        let provider = provider();
        let cert_pem = read(CERT_FLAG, cert)?;
        let key_pem = read(KEY_FLAG, key)?;
        let ca_pem = read(CLIENT_CA_FLAG, client_ca)?;
        check_identity(cert, &cert_pem, key, &key_pem, &provider)?;
        check_client_ca(client_ca, &ca_pem, provider)?;
        Ok(Some(server_config(cert_pem, key_pem, ca_pem)))
    }
}

/// The ADS server's TLS settings from PEM: present `cert_pem` (with its
/// `key_pem`), and give a stream only to clients whose certificate a CA of
/// `ca_pem` signed.
pub fn server_config(cert_pem: Vec<u8>, key_pem: Vec<u8>, ca_pem: Vec<u8>) -> ServerTlsConfig {
    provider();
    ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .client_ca_root(Certificate::from_pem(ca_pem))
        .timeout(HANDSHAKE_TIMEOUT)
}

/// ring, which tonic is built with here; also made the process default, so
/// tonic's own rustls configuration never has to guess between providers.
fn provider() -> Arc<CryptoProvider> {
    // Err only when a default is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The values of a set of flags that go together: `Some` when all are given,
/// `None` when none is, and otherwise an error naming the missing ones.
pub fn all_or_none<T, const N: usize>(
    what: &str,
    flags: [(&str, Option<T>); N],
) -> Result<Option<[T; N]>> {
    let names: Vec<&str> = flags.iter().map(|(name, _)| *name).collect();
    let missing: Vec<&str> = flags
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    if missing.len() == N {
        return Ok(None);
    }
    if !missing.is_empty() {
        let given: Vec<&str> = flags
            .iter()
            .filter(|(_, value)| value.is_some())
            .map(|(name, _)| *name)
            .collect();
        bail!(
            "{} given without {}: {what} needs {} together (or none of them)",
            given.join(", "),
            missing.join(", "),
            names.join(", "),
        );
    }
    let values: Vec<T> = flags.into_iter().filter_map(|(_, value)| value).collect();
    <[T; N]>::try_from(values)
        .map(Some)
        .map_err(|_| anyhow!("{what}: expected {N} flags"))
}

/// When plain xDS is served where other machines may reach it: the warning to
/// log, `None` on a loopback address.
pub fn plain_warning(listen: SocketAddr) -> Option<String> {
    if listen.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "xDS on {listen} is plain gRPC with no client authentication, on an address that is not \
         loopback: any client that reaches it receives every listener, TLS private keys and filter \
         secrets included. Give {CERT_FLAG}, {KEY_FLAG} and {CLIENT_CA_FLAG} for mutual TLS \
         (docs/controller.md, \"Securing xDS\"), or listen on 127.0.0.1"
    ))
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read it", path.display()))
}

/// Every certificate of a PEM file; at least one.
fn certificates(flag: &str, path: &Path, text: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{flag} {}: not PEM ({e})", path.display()))?;
    if certificates.is_empty() {
        bail!(
            "{flag} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certificates)
}

/// The server's certificate chain and its key: each parses, and the key is the
/// certificate's.
fn check_identity(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<()> {
    let chain = certificates(CERT_FLAG, cert, cert_pem)?;
    let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow!(
            "{KEY_FLAG} {}: holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
            key.display()
        ),
        e => anyhow!("{KEY_FLAG} {}: not PEM ({e})", key.display()),
    })?;
    provider
        .key_provider
        .load_private_key(der.clone_key())
        .map_err(|e| {
            anyhow!(
                "{KEY_FLAG} {}: not a usable private key: {e}",
                key.display()
            )
        })?;
    rustls::sign::CertifiedKey::from_der(chain, der, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => anyhow!(
            "{KEY_FLAG} {}: not the private key of the certificate in {CERT_FLAG} {}",
            key.display(),
            cert.display()
        ),
        e => anyhow!(
            "{CERT_FLAG} {}: not a usable certificate: {e}",
            cert.display()
        ),
    })?;
    Ok(())
}

/// The client CA file: every certificate in it is a usable trust anchor.
fn check_client_ca(path: &Path, text: &[u8], provider: Arc<CryptoProvider>) -> Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for (i, der) in certificates(CLIENT_CA_FLAG, path, text)?
        .into_iter()
        .enumerate()
    {
        roots.add(der).map_err(|e| {
            anyhow!(
                "{CLIENT_CA_FLAG} {}: certificate {} is not a usable CA certificate: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| anyhow!("{CLIENT_CA_FLAG} {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use e2e::pki::Pki;

    fn args(cert: &Path, key: &Path, client_ca: &Path) -> XdsTlsArgs {
        XdsTlsArgs {
            cert: Some(cert.to_owned()),
            key: Some(key.to_owned()),
            client_ca: Some(client_ca.to_owned()),
        }
    }

    fn error(args: &XdsTlsArgs) -> String {
        format!("{:#}", args.load().unwrap_err())
    }

    #[test]
    fn no_flag_is_plain_grpc() {
        assert!(XdsTlsArgs::default().load().unwrap().is_none());
    }

    #[test]
    fn a_server_certificate_its_key_and_a_client_ca_load() {
        let pki = Pki::generate().unwrap();
        let tls = args(&pki.server.cert, &pki.server.key, &pki.ca);
        assert!(tls.load().unwrap().is_some());
        // A CA file may hold several CAs.
        let both = pki.dir().join("both.crt");
        let text = std::fs::read_to_string(&pki.ca).unwrap()
            + &std::fs::read_to_string(&pki.rogue_ca).unwrap();
        std::fs::write(&both, text).unwrap();
        assert!(args(&pki.server.cert, &pki.server.key, &both)
            .load()
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_partial_set_of_flags_names_the_missing_ones() {
        let pki = Pki::generate().unwrap();
        let mut tls = args(&pki.server.cert, &pki.server.key, &pki.ca);
        tls.client_ca = None;
        let e = error(&tls);
        assert!(
            e.starts_with("--xds-tls-cert, --xds-tls-key given without --xds-tls-client-ca:"),
            "{e}"
        );
        tls.key = None;
        let e = error(&tls);
        assert!(
            e.starts_with("--xds-tls-cert given without --xds-tls-key, --xds-tls-client-ca:"),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_or_invalid_file_is_named_with_its_flag() {
        let pki = Pki::generate().unwrap();
        let missing = pki.dir().join("missing.crt");
        let garbage = pki.dir().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let broken = pki.dir().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let (cert, key, ca) = (&pki.server.cert, &pki.server.key, &pki.ca);
        let cases = [
            (
                args(&missing, key, ca),
                format!("--xds-tls-cert {}: cannot read it", missing.display()),
            ),
            (
                args(cert, key, &missing),
                format!("--xds-tls-client-ca {}: cannot read it", missing.display()),
            ),
            (
                args(&garbage, key, ca),
                format!(
                    "--xds-tls-cert {}: holds no PEM certificate",
                    garbage.display()
                ),
            ),
            (
                args(&broken, key, ca),
                format!("--xds-tls-cert {}: not PEM", broken.display()),
            ),
            // A key given as the certificate, and the other way round.
            (
                args(key, key, ca),
                format!("--xds-tls-cert {}: holds no PEM certificate", key.display()),
            ),
            (
                args(cert, cert, ca),
                format!("--xds-tls-key {}: holds no PEM private key", cert.display()),
            ),
            (
                args(cert, key, &garbage),
                format!(
                    "--xds-tls-client-ca {}: holds no PEM certificate",
                    garbage.display()
                ),
            ),
            // The client's key is not the server certificate's.
            (
                args(cert, &pki.client.key, ca),
                format!(
                    "--xds-tls-key {}: not the private key of the certificate in --xds-tls-cert {}",
                    pki.client.key.display(),
                    cert.display()
                ),
            ),
        ];
        for (tls, expected) in cases {
            let e = error(&tls);
            assert!(
                e.starts_with(&expected),
                "{tls:?}:\n{e}\nexpected: {expected}"
            );
        }
    }

    #[test]
    fn plain_xds_is_a_warning_off_loopback_only() {
        for quiet in ["127.0.0.1:18000", "127.0.0.5:18000", "[::1]:18000"] {
            assert_eq!(plain_warning(quiet.parse().unwrap()), None, "{quiet}");
        }
        for loud in ["0.0.0.0:18000", "[::]:18000", "10.1.2.3:18000"] {
            let warning = plain_warning(loud.parse().unwrap()).unwrap();
            assert!(warning.contains("--xds-tls-client-ca"), "{loud}: {warning}");
        }
    }
}
