//! A real Kubernetes API server for tests: etcd and the API server that
//! `scripts/kube-apiserver.sh` builds from Debian's sources (the stock
//! apiextensions-apiserver with CRD OpenAPI published, so kubectl validates),
//! on free loopback ports, with a test CA, a serving certificate and an admin
//! client certificate (`O=system:masters`) made at test time, and the Gateway
//! API v1.6.1 standard CRDs applied. What it cannot serve (core/v1, apps/v1,
//! Lease, authorization) is listed in `docs/kubernetes.md`; tests that need
//! those kinds say which stand-in they use. One stand-in is always there: the
//! Lease CRD ([`LEASE_STAND_IN`]) at the real coordination.k8s.io URL.
//!
//! The binaries: the directory in `TOLLGATE_KUBE_BIN`, else the one
//! `make setup` wrote to `target/kube-bin` (the script's last line).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::process::{die_with_parent, free_port};

/// How long the API server may take to answer `/healthz`.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

/// A **stand-in** for `coordination.k8s.io/v1` Lease, which this API server
/// does not serve: a CRD registered at the real URL
/// (`/apis/coordination.k8s.io/v1/namespaces/NS/leases/NAME`), so a typed
/// client (`k8s_openapi`'s `Lease`) reads and writes it unchanged. It has the
/// real Lease spec's fields and the API machinery a leader election relies on
/// (resourceVersion, 409 on a stale replace, 409 on creating an existing
/// name); unlike the built-in kind it answers 415 to strategic-merge-patch
/// and does not validate beyond the field types. A `*.k8s.io` group needs the
/// `api-approved.kubernetes.io` annotation.
pub const LEASE_STAND_IN: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: leases.coordination.k8s.io
  annotations:
    api-approved.kubernetes.io: "unapproved, test stand-in"
spec:
  group: coordination.k8s.io
  scope: Namespaced
  names: {kind: Lease, listKind: LeaseList, plural: leases, singular: lease}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              holderIdentity: {type: string}
              leaseDurationSeconds: {type: integer, format: int32}
              acquireTime: {type: string, format: date-time}
              renewTime: {type: string, format: date-time}
              leaseTransitions: {type: integer, format: int32}
              preferredHolder: {type: string}
              strategy: {type: string}
"#;

/// etcd and the API server, stopped when dropped.
pub struct KubeApiServer {
    bin: PathBuf,
    /// An admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    pub url: String,
    etcd: Child,
    apiserver: Child,
    dir: TempDir,
}

/// The directory of `etcd`, `kubectl` and `tollgate-test-apiserver`.
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("TOLLGATE_KUBE_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let recorded = crate::paths::workspace_root().join("target/kube-bin");
    let text = std::fs::read_to_string(&recorded).with_context(|| {
        format!(
            "no Kubernetes test binaries: run `make setup` (it writes {}) or set TOLLGATE_KUBE_BIN",
            recorded.display()
        )
    })?;
    Ok(PathBuf::from(text.trim()))
}

/// The Gateway API v1.6.1 standard CRDs (upstream's files, not copied into
/// this repository): `TOLLGATE_GATEWAY_API_CRDS`, else `../shared/` next to
/// the checkout, else `/work/shared/`.
pub fn gateway_api_crds() -> Result<PathBuf> {
    const STANDARD: &str = "shared/gateway-api-v1.6.1/standard";
    let candidates = [
        std::env::var("TOLLGATE_GATEWAY_API_CRDS")
            .ok()
            .map(PathBuf::from),
        crate::paths::workspace_root()
            .parent()
            .map(|p| p.join(STANDARD)),
        Some(Path::new("/work").join(STANDARD)),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_dir())
        .context(
        "no Gateway API v1.6.1 CRDs: set TOLLGATE_GATEWAY_API_CRDS to their standard/ directory",
    )
}

impl KubeApiServer {
    /// Starts etcd and the API server, waits for `/healthz`, and applies the
    /// Gateway API standard CRDs (server-side) and the [`LEASE_STAND_IN`]
    /// until they are Established.
    pub fn start() -> Result<KubeApiServer> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("tollgate-kube-")
            .tempdir()?;
        let pki = write_pki(dir.path())?;
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{url}\", certificate-authority: \"{}\"}}\nusers:\n- name: admin\n  user: {{client-certificate: \"{}\", client-key: \"{}\"}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: admin, namespace: default}}\ncurrent-context: test\n",
                pki.ca.display(),
                pki.admin_cert.display(),
                pki.admin_key.display()
            ),
        )?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = spawn(
            &bin.join("etcd"),
            &[
                "--name",
                "test",
                "--data-dir",
                &dir.path().join("etcd").display().to_string(),
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("test={peer_url}"),
            ],
            &dir.path().join("etcd.log"),
        )?;
        let kc = kubeconfig.display().to_string();
        let apiserver = spawn(
            &bin.join("tollgate-test-apiserver"),
            &[
                "--etcd-servers",
                &etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &api_port.to_string(),
                "--tls-cert-file",
                &pki.serving_cert.display().to_string(),
                "--tls-private-key-file",
                &pki.serving_key.display().to_string(),
                "--client-ca-file",
                &pki.ca.display().to_string(),
                "--kubeconfig",
                &kc,
                "--authentication-kubeconfig",
                &kc,
                "--authorization-kubeconfig",
                &kc,
                "--authentication-skip-lookup",
                "--enable-priority-and-fairness=false",
                "--disable-admission-plugins",
                "NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy",
            ],
            &dir.path().join("apiserver.log"),
        )?;
        let mut server = KubeApiServer {
            bin,
            kubeconfig,
            url,
            etcd,
            apiserver,
            dir,
        };
        server.wait_healthy()?;
        server.apply_gateway_api_crds()?;
        server.apply_lease_stand_in()?;
        Ok(server)
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.apiserver.try_wait() {
                bail!(
                    "the API server exited with {status}:\n{}",
                    self.log("apiserver.log")
                );
            }
            let out = self.kubectl(&["get", "--raw", "/healthz"])?;
            if out.status.success() && out.stdout == b"ok" {
                return Ok(());
            }
            if started.elapsed() > HEALTHY_WITHIN {
                bail!(
                    "the API server is not healthy after {HEALTHY_WITHIN:?}:\n{}",
                    self.log("apiserver.log")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn apply_gateway_api_crds(&self) -> Result<()> {
        let standard = gateway_api_crds()?;
        let mut args = vec!["apply".to_owned(), "--server-side".to_owned()];
        for entry in std::fs::read_dir(&standard)
            .with_context(|| format!("reading {}", standard.display()))?
        {
            let path = entry?.path();
            let text = std::fs::read_to_string(&path)?;
            // The ValidatingAdmissionPolicy file needs admissionregistration.
            if text.contains("\nkind: CustomResourceDefinition") {
                args.push("-f".to_owned());
                args.push(path.display().to_string());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kubectl_ok(&args)?;
        self.kubectl_ok(&[
            "wait",
            "--for",
            "condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])?;
        Ok(())
    }

    /// Registers [`LEASE_STAND_IN`] and waits until it is Established. (Measured
    /// here: the first create of a Lease in the ~2 s after that still takes
    /// about 2 s; later writes take milliseconds.)
    fn apply_lease_stand_in(&self) -> Result<()> {
        self.apply(LEASE_STAND_IN)?;
        self.kubectl_ok(&[
            "wait",
            "--for",
            "condition=Established",
            "crd/leases.coordination.k8s.io",
            "--timeout=60s",
        ])?;
        Ok(())
    }

    /// Runs kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running kubectl")
    }

    /// Runs kubectl; its stdout, or an error with its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply --server-side -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> Result<String> {
        let path = self.dir.path().join("apply.yaml");
        std::fs::write(&path, yaml)?;
        self.kubectl_ok(&[
            "apply",
            "--server-side",
            "--field-manager",
            "test",
            "-f",
            &path.display().to_string(),
        ])
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- API server log ----\n{}\n---- end of API server log ----",
                self.log("apiserver.log")
            );
        }
    }
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> Result<Child> {
    let log = File::create(log)?;
    let mut command = Command::new(bin);
    die_with_parent(&mut command);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("running {}", bin.display()))
}

/// The test PKI's files.
struct Files {
    ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
}

/// A CA, the API server's serving certificate (127.0.0.1, localhost) and an
/// admin client certificate in `system:masters` (always authorized).
fn write_pki(dir: &Path) -> Result<Files> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "tollgate kube test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_pem = params.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(params, ca_key);
    let leaf = |names: &[&str], dn: &[(DnType, &str)], usage| -> Result<(String, String)> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let serving = leaf(
        &["127.0.0.1", "localhost"],
        &[(DnType::CommonName, "localhost")],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let admin = leaf(
        &[],
        &[
            (DnType::OrganizationName, "system:masters"),
            (DnType::CommonName, "tollgate-admin"),
        ],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    Ok(Files {
        ca: write("ca.crt", &ca_pem)?,
        serving_cert: write("serving.crt", &serving.0)?,
        serving_key: write("serving.key", &serving.1)?,
        admin_cert: write("admin.crt", &admin.0)?,
        admin_key: write("admin.key", &admin.1)?,
    })
}
