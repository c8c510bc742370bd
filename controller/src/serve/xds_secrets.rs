//! `serve --xds-tls-secrets`: mutual TLS on xDS with certificates the
//! controller makes itself, kept in two Secrets of its namespace, so an
//! install needs no certificate tooling (Envoy Gateway runs a certgen job
//! for the same). `tollgate-xds-server` holds the CA and the certificate the
//! ADS server presents (for the controller's Service name); the provisioned
//! Envoys mount `tollgate-xds-client`: the CA and the certificate they
//! present. Neither holds the CA's key: nothing signs again, and to rotate,
//! delete both Secrets and restart the controller.
//!
//! Replicas starting together race to make them. The client Secret is
//! created first, so a server Secret always has its client; a replica that
//! finds a client Secret made by another waits for that one's server
//! Secret, rather than making a second CA its Envoys would not trust.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::ServerTlsConfig;

use super::xds_tls;

pub const SERVER_SECRET: &str = "tollgate-xds-server";
pub const CLIENT_SECRET: &str = "tollgate-xds-client";
/// Where a provisioned Envoy mounts the client Secret, and its files.
pub const CLIENT_MOUNT: &str = "/etc/tollgate/xds";
/// How long to wait for another replica's server Secret.
const OTHERS_WITHIN: Duration = Duration::from_secs(20);

/// The ADS server's TLS settings from the Secrets in `namespace`, made first
/// if there are none; the server certificate names `service` in `namespace`.
pub async fn server_config(
    client: kube::Client,
    namespace: &str,
    service: &str,
) -> Result<ServerTlsConfig> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let started = tokio::time::Instant::now();
    // Whether the client Secret was tried (made by us or found made): a CA
    // is made at most once.
    let mut tried = false;
    loop {
        if let Some(secret) = api
            .get_opt(SERVER_SECRET)
            .await
            .with_context(|| format!("reading Secret {namespace}/{SERVER_SECRET}"))?
        {
            tracing::info!(
                "xDS mutual TLS with the certificates of Secret {namespace}/{SERVER_SECRET}"
            );
            return from_secret(&secret, namespace);
        }
        if !tried {
            tried = true;
            let made = Made::new(namespace, service)?;
            match create(&api, CLIENT_SECRET, made.client).await? {
                Created::Ours => {
                    if let Created::Ours = create(&api, SERVER_SECRET, made.server).await? {
                        tracing::info!(
                            "made the xDS CA and certificates: Secrets {namespace}/{SERVER_SECRET} and {namespace}/{CLIENT_SECRET}"
                        );
                    }
                    continue;
                }
                Created::Theirs => {}
            }
        }
        if started.elapsed() > OTHERS_WITHIN {
            bail!(
                "Secret {namespace}/{CLIENT_SECRET} exists but {namespace}/{SERVER_SECRET} does not \
                 after {OTHERS_WITHIN:?}: a replica that was making them stopped half-way; delete \
                 {CLIENT_SECRET} and restart"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

enum Created {
    Ours,
    /// Another replica created it first.
    Theirs,
}

async fn create(
    api: &Api<Secret>,
    name: &str,
    data: BTreeMap<String, ByteString>,
) -> Result<Created> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "tollgate".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(Created::Ours),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Created::Theirs),
        Err(e) => Err(e).with_context(|| format!("creating Secret {name}")),
    }
}

fn from_secret(secret: &Secret, namespace: &str) -> Result<ServerTlsConfig> {
    let field = |key: &str| -> Result<Vec<u8>> {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| bytes.0.clone())
            .with_context(|| format!("Secret {namespace}/{SERVER_SECRET} has no {key}"))
    };
    Ok(xds_tls::server_config(
        field("tls.crt")?,
        field("tls.key")?,
        field("ca.crt")?,
    ))
}

/// A new CA's server and client certificates, as Secret data.
struct Made {
    server: BTreeMap<String, ByteString>,
    client: BTreeMap<String, ByteString>,
}

impl Made {
    fn new(namespace: &str, service: &str) -> Result<Made> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, format!("tollgate xDS CA ({namespace})"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_pem = ca.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca, ca_key);
        let names = vec![
            service.to_owned(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
        ];
        let (server_cert, server_key) = leaf(
            &issuer,
            "tollgate xDS",
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            &issuer,
            "tollgate Envoy",
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let data = |cert: String, key: String| {
            BTreeMap::from([
                ("ca.crt".to_owned(), ByteString(ca_pem.clone().into_bytes())),
                ("tls.crt".to_owned(), ByteString(cert.into_bytes())),
                ("tls.key".to_owned(), ByteString(key.into_bytes())),
            ])
        };
        Ok(Made {
            server: data(server_cert, server_key),
            client: data(client_cert, client_key),
        })
    }
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;

    /// Whether the PEM certificate under `key` carries `name` (a DNS name's
    /// bytes appear in the DER as they are).
    fn carries(data: &BTreeMap<String, ByteString>, key: &str, name: &str) -> bool {
        let der = CertificateDer::from_pem_slice(&data[key].0).unwrap();
        der.windows(name.len()).any(|w| w == name.as_bytes())
    }

    #[test]
    fn the_server_certificate_names_the_service_and_both_share_one_ca() {
        let made = Made::new("tollgate-system", "tollgate").unwrap();
        assert_eq!(made.server["ca.crt"], made.client["ca.crt"]);
        assert_ne!(made.server["tls.crt"], made.client["tls.crt"]);
        assert!(carries(
            &made.server,
            "tls.crt",
            "tollgate.tollgate-system.svc"
        ));
        assert!(!carries(
            &made.client,
            "tls.crt",
            "tollgate.tollgate-system.svc"
        ));
        assert!(carries(&made.client, "tls.crt", "tollgate Envoy"));
    }
}
