//! A real Kubernetes API server for tests: etcd and the API server that
//! `scripts/kube-apiserver.sh` builds from Debian's sources (the stock
//! apiextensions-apiserver with CRD OpenAPI published, so kubectl validates),
//! on free loopback ports, with a test CA, a serving certificate and an admin
//! client certificate (`O=system:masters`) made at test time, and the Gateway
//! API v1.6.1 standard CRDs applied.
//!
//! What the API server cannot serve (core/v1, apps/v1, Lease, authorization;
//! `docs/kubernetes.md`) is **stood in** for, and every stand-in says so:
//! - the Lease CRD ([`LEASE_STAND_IN`]) at the real coordination.k8s.io URL;
//! - core/v1 (Namespace, Service, Secret, ConfigMap, ServiceAccount, Event),
//!   apps/v1 (Deployment), EndpointSlice and the RBAC kinds as CRDs behind
//!   the stand-in proxy ([`crate::kube_stand_in`]), which every client of a
//!   test talks to ([`KubeApiServer::url`], [`KubeApiServer::kubeconfig`]);
//! - authorization: the API server asks the proxy, which judges by the stored
//!   RBAC objects, so an identity from [`KubeApiServer::kubeconfig_for`] gets
//!   exactly what its Roles grant (a real 403 otherwise).
//!
//! Their limits are listed in [`crate::kube_stand_in`]: no core validation or
//! defaulting, no ClusterIP allocation, no garbage collection, no kubelet
//! (a test plays kubelet and load balancer through `/status`), no
//! strategic merge (client-side `kubectl apply` updates of stood-in kinds are
//! wrong: use `--server-side`).
//!
//! The binaries: the directory in `TOLLGATE_KUBE_BIN`, else the one
//! `make setup` wrote to `target/kube-bin` (the script's last line).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::kube_stand_in::{self, Proxy, ProxyConfig};
use crate::process::{die_with_parent, free_port};

/// How long the API server may take to answer `/healthz`.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

/// How long the CRDs may take to be Established.
const ESTABLISHED_WITHIN: Duration = Duration::from_secs(60);

/// How long the API server keeps a SubjectAccessReview answer: an RBAC
/// change takes effect within this (the default is 10 s).
const AUTHORIZATION_CACHE_TTL: &str = "500ms";

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

/// etcd, the API server and the stand-in proxy in front of it, stopped when
/// dropped.
pub struct KubeApiServer {
    bin: PathBuf,
    /// An admin kubeconfig (client certificate in `system:masters`) for the
    /// proxy ([`KubeApiServer::url`]).
    pub kubeconfig: PathBuf,
    /// The stand-in proxy: the URL every client of a test uses (core/v1,
    /// apps/v1 and discovery of them are served only here).
    pub url: String,
    /// The real API server, bypassing the stand-in proxy (its discovery
    /// knows no core/v1 or apps/v1).
    pub server_url: String,
    /// An admin kubeconfig for [`KubeApiServer::server_url`].
    pub server_kubeconfig: PathBuf,
    proxy: Option<Proxy>,
    ca: Ca,
    /// Identities issued so far (file names stay unique).
    issued: AtomicUsize,
    etcd: Child,
    apiserver: Child,
    /// How it was started, to start it again ([`KubeApiServer::restart`]).
    apiserver_args: Vec<String>,
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
    /// Starts the stand-in proxy, etcd and the API server (authorizing
    /// through the proxy), waits for `/healthz`, and applies the Gateway API
    /// standard CRDs, the [`LEASE_STAND_IN`] and the stand-in CRDs
    /// ([`kube_stand_in::crds`]) server-side until they are Established.
    pub fn start() -> Result<KubeApiServer> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("tollgate-kube-")
            .tempdir()?;
        let (pki, ca) = write_pki(dir.path())?;
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let server_url = format!("https://127.0.0.1:{api_port}");
        let proxy = Proxy::start(&ProxyConfig {
            upstream: server_url.clone(),
            ca: pki.ca.clone(),
            admin_cert: pki.admin_cert.clone(),
            admin_key: pki.admin_key.clone(),
            serving_cert: pki.serving_cert.clone(),
            serving_key: pki.serving_key.clone(),
            log: Some(dir.path().join("proxy.log")),
        })?;
        let url = proxy.url.clone();
        let admin = (pki.admin_cert.as_path(), pki.admin_key.as_path());
        let server_kubeconfig = dir.path().join("server.kubeconfig");
        write_kubeconfig(&server_kubeconfig, &server_url, &pki.ca, admin)?;
        let kubeconfig = dir.path().join("admin.kubeconfig");
        write_kubeconfig(&kubeconfig, &url, &pki.ca, admin)?;
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
        let server_kc = server_kubeconfig.display().to_string();
        // SubjectAccessReviews go to the proxy (as admin), which answers
        // them from the stored RBAC objects.
        let proxy_kc = kubeconfig.display().to_string();
        let apiserver_args: Vec<String> = [
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
                &server_kc,
                "--authentication-kubeconfig",
                &server_kc,
                "--authorization-kubeconfig",
                &proxy_kc,
                "--authorization-webhook-cache-authorized-ttl",
                AUTHORIZATION_CACHE_TTL,
                "--authorization-webhook-cache-unauthorized-ttl",
                AUTHORIZATION_CACHE_TTL,
                "--authentication-skip-lookup",
                "--enable-priority-and-fairness=false",
                "--disable-admission-plugins",
                "NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy",
        ]
        .map(String::from)
        .into();
        let apiserver = spawn_apiserver(&bin, &apiserver_args, dir.path())?;
        let mut server = KubeApiServer {
            bin,
            kubeconfig,
            url,
            server_url,
            server_kubeconfig,
            proxy: Some(proxy),
            ca,
            issued: AtomicUsize::new(0),
            etcd,
            apiserver,
            apiserver_args,
            dir,
        };
        server.wait_healthy()?;
        server.apply_crds()?;
        Ok(server)
    }

    /// Stops the API server (etcd keeps every object) and starts it again on
    /// the same port, as an upgrade or a crash of the control plane would;
    /// returns once it is healthy. Watches of its clients break meanwhile.
    pub fn restart(&mut self) -> Result<()> {
        self.apiserver.kill()?;
        self.apiserver.wait()?;
        self.apiserver = spawn_apiserver(&self.bin, &self.apiserver_args, self.dir.path())?;
        self.wait_healthy()
    }

    /// A kubeconfig for the proxy with a client certificate from the test CA
    /// for `user` in `groups` (CN and O, as Kubernetes reads them). What it
    /// may do is what the RBAC objects grant. A ServiceAccount is user
    /// `system:serviceaccount:NS:NAME` in groups `system:serviceaccounts`,
    /// `system:serviceaccounts:NS` and `system:authenticated`.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let (cert, key) = kube_stand_in::identity::client_certificate(
            &self.ca.der,
            &self.ca.key_der,
            user,
            groups,
        )?;
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let name: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let base = self.dir.path().join(format!("user-{n}-{name}"));
        let (cert_path, key_path) = (base.with_extension("crt"), base.with_extension("key"));
        std::fs::write(&cert_path, cert)?;
        std::fs::write(&key_path, key)?;
        let kubeconfig = base.with_extension("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &self.url,
            &self.ca.path,
            (&cert_path, &key_path),
        )?;
        Ok(kubeconfig)
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
            let out = self.kubectl_with(&self.server_kubeconfig, &["get", "--raw", "/healthz"])?;
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

    /// One server-side apply of every CRD (Gateway API, Lease and the
    /// stand-ins), straight to the API server, then one wait until all are
    /// Established. (Measured here: the first create of an object in the
    /// ~2 s after that can still take about 2 s; later writes take
    /// milliseconds.)
    fn apply_crds(&self) -> Result<()> {
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
        let stand_ins = self.dir.path().join("stand-in-crds.yaml");
        std::fs::write(
            &stand_ins,
            format!("{LEASE_STAND_IN}---\n{}\n", kube_stand_in::crds::yaml()),
        )?;
        args.push("-f".to_owned());
        args.push(stand_ins.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kubectl_direct_ok(&args)?;
        self.wait_established()
    }

    /// Polls until every CRD is Established (within a few hundred
    /// milliseconds of the apply here). `kubectl wait --for
    /// condition=Established crd --all` takes 3 to 5 s for these 25 CRDs even
    /// when all are Established already.
    fn wait_established(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let list: serde_json::Value =
                serde_json::from_str(&self.kubectl_direct_ok(&["get", "crd", "-o", "json"])?)?;
            let items = list["items"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let waiting: Vec<&str> = items
                .iter()
                .filter(|crd| {
                    !crd["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
                .filter_map(|crd| crd["metadata"]["name"].as_str())
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if started.elapsed() > ESTABLISHED_WITHIN {
                bail!("CRDs not Established after {ESTABLISHED_WITHIN:?}: {waiting:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kubectl_direct_ok(&self, args: &[&str]) -> Result<String> {
        stdout_of(args, self.kubectl_with(&self.server_kubeconfig, args)?)
    }

    /// Runs kubectl with the admin kubeconfig (through the proxy).
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        self.kubectl_with(&self.kubeconfig, args)
    }

    /// Runs kubectl with `kubeconfig` (from [`KubeApiServer::kubeconfig_for`],
    /// say), caching discovery in this server's directory.
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Result<Output> {
        Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running kubectl")
    }

    /// Runs kubectl; its stdout, or an error with its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        stdout_of(args, self.kubectl(args)?)
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
        // The proxy first: its watches end before the server goes.
        drop(self.proxy.take());
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let proxy_log = self.log("proxy.log");
            let lines: Vec<&str> = proxy_log.lines().collect();
            let tail = lines[lines.len().saturating_sub(200)..].join("\n");
            eprintln!(
                "---- API server log ----\n{}\n---- end of API server log ----\n---- stand-in proxy log (last 200 lines) ----\n{tail}\n---- end of stand-in proxy log ----",
                self.log("apiserver.log")
            );
        }
    }
}

fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    (cert, key): (&Path, &Path),
) -> Result<()> {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{server}\", certificate-authority: \"{}\"}}\nusers:\n- name: user\n  user: {{client-certificate: \"{}\", client-key: \"{}\"}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: user, namespace: default}}\ncurrent-context: test\n",
            ca.display(),
            cert.display(),
            key.display()
        ),
    )
    .with_context(|| format!("writing {}", path.display()))
}

/// A kubectl run's stdout, or an error with its stderr.
fn stdout_of(args: &[&str], out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The API server, logging to `apiserver.log` in `dir` (appended: a restart
/// keeps the earlier log).
fn spawn_apiserver(bin: &Path, args: &[String], dir: &Path) -> Result<Child> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(
        &bin.join("tollgate-test-apiserver"),
        &args,
        &dir.join("apiserver.log"),
    )
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> Result<Child> {
    let log = File::options().create(true).append(true).open(log)?;
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

/// The test CA, kept to issue client certificates for test identities.
struct Ca {
    path: PathBuf,
    der: Vec<u8>,
    /// PKCS#8.
    key_der: Vec<u8>,
}

/// A CA, the API server's serving certificate (127.0.0.1, localhost; the
/// proxy presents it too) and an admin client certificate in
/// `system:masters` (always authorized).
fn write_pki(dir: &Path) -> Result<(Files, Ca)> {
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
    let ca_cert = params.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let ca_der = ca_cert.der().to_vec();
    let ca_key_der = ca_key.serialize_der();
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
    let files = Files {
        ca: write("ca.crt", &ca_pem)?,
        serving_cert: write("serving.crt", &serving.0)?,
        serving_key: write("serving.key", &serving.1)?,
        admin_cert: write("admin.crt", &admin.0)?,
        admin_key: write("admin.key", &admin.1)?,
    };
    let ca = Ca {
        path: files.ca.clone(),
        der: ca_der,
        key_der: ca_key_der,
    };
    Ok((files, ca))
}
