//! Client certificates for test identities, the way Kubernetes reads them:
//! CN = user, one O per group. rcgen keeps one value per attribute type, so
//! a certificate for several groups (a ServiceAccount is in three) is built
//! with x509-cert and signed with the test CA's key (P-256).

use std::str::FromStr as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::DecodePrivateKey as _;
use rcgen::PublicKeyData as _;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder};
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::Validity;
use x509_cert::{Certificate, TbsCertificate};

/// How long an issued certificate is valid (any test is shorter).
const VALID_FOR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A client certificate (PEM) for `user` in `groups`, signed by the CA whose
/// certificate is `ca_der` and PKCS#8 key `ca_key_der`; and its key (PEM).
pub fn client_certificate(
    ca_der: &[u8],
    ca_key_der: &[u8],
    user: &str,
    groups: &[&str],
) -> Result<(String, String)> {
    let ca = Certificate::from_der(ca_der).context("reading the test CA")?;
    let signer = SigningKey::from_pkcs8_der(ca_key_der).context("the test CA's key (P-256)")?;
    let key = rcgen::KeyPair::generate()?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&key.subject_public_key_info())?;
    // RFC 4514 writes the last RDN first: reversed, the certificate has
    // CN, then the groups in order.
    let mut rdns = vec![format!("CN={}", escape(user))];
    rdns.extend(groups.iter().map(|g| format!("O={}", escape(g))));
    rdns.reverse();
    let subject = rdns.join(",");
    let profile = Client {
        issuer: ca.tbs_certificate().subject().clone(),
        subject: Name::from_str(&subject).with_context(|| format!("subject {subject}"))?,
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    // A positive integer: the leading zero keeps the sign bit clear.
    let mut serial = vec![0u8];
    serial.extend_from_slice(&nanos.to_be_bytes());
    let mut builder = CertificateBuilder::new(
        profile,
        SerialNumber::new(&serial)?,
        Validity::from_now(VALID_FOR)?,
        spki,
    )?;
    builder.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))?;
    builder.add_extension(&ExtendedKeyUsage(vec![
        x509_cert::der::oid::db::rfc5280::ID_KP_CLIENT_AUTH,
    ]))?;
    let cert = builder
        .build::<_, DerSignature>(&signer)
        .context("signing the client certificate")?;
    let pem = pem_encode("CERTIFICATE", &cert.to_der()?);
    Ok((pem, key.serialize_pem()))
}

/// An RFC 4514 attribute value: every byte but `[A-Za-z0-9:._-]` as `\XX`.
fn escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'.' | b'_' | b'-' => {
                char::from(b).to_string()
            }
            _ => format!("\\{b:02X}"),
        })
        .collect()
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// A leaf profile: the given issuer and subject; the extensions are added
/// by the caller.
struct Client {
    issuer: Name,
    subject: Name,
}

impl BuilderProfile for Client {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};

    #[test]
    fn a_client_certificate_names_the_user_and_every_group() {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let groups = [
            "system:serviceaccounts",
            "system:serviceaccounts:a b",
            "x,y",
        ];
        let (pem, _) = client_certificate(
            ca.der(),
            &ca_key.serialize_der(),
            "system:serviceaccount:a:ctl",
            &groups,
        )
        .unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der.contents).unwrap();
        let subject = cert.subject();
        let cn: Vec<&str> = subject
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let o: Vec<&str> = subject
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["system:serviceaccount:a:ctl"]);
        assert_eq!(o, groups);
        let (_, ca) = x509_parser::parse_x509_certificate(ca.der()).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
    }
}
