//! Every `--config`: files, and directories whose `*.yaml` / `*.yml` files
//! are all read (as envoyproxy/ratelimit reads its runtime directory), one
//! domain per file, several domains per service. Reloaded when a file changes,
//! appears or goes: the set is checked every [`POLL`] by each file's size and
//! modification time (a plain poll, so a directory replaced by a deploy's
//! `mv` is followed too). A set that fails to load is logged with the file and
//! line of the problem, and the last good set keeps serving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::config_file::{ConfigFile, ConfigFileError, Rule};

/// How often the files are checked for changes.
pub const POLL: Duration = Duration::from_secs(2);

/// The loaded files, by domain.
#[derive(Debug, Default)]
pub struct ConfigSet {
    domains: HashMap<String, ConfigFile>,
}

/// The set being served, replaced whole on a good reload.
pub type SharedConfigSet = Arc<RwLock<Arc<ConfigSet>>>;

#[derive(Debug, thiserror::Error)]
pub enum ConfigSetError {
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error("reading {path}: {error}")]
    Dir { path: String, error: std::io::Error },
    #[error("{second}: domain `{domain}` is already configured by {first}; one file per domain")]
    DuplicateDomain {
        domain: String,
        first: String,
        second: String,
    },
    #[error("no *.yaml or *.yml file in {paths}")]
    Empty { paths: String },
}

impl ConfigSet {
    /// Reads every file `paths` name (a directory: its `*.yaml` and `*.yml`
    /// files, in name order).
    pub fn load(paths: &[PathBuf]) -> Result<ConfigSet, ConfigSetError> {
        let files = files(paths)?;
        if files.is_empty() {
            let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(ConfigSetError::Empty {
                paths: paths.join(", "),
            });
        }
        let mut set = ConfigSet::default();
        let mut origin: HashMap<String, String> = HashMap::new();
        for file in files {
            let config = ConfigFile::load(&file)?;
            let domain = config.domain().to_owned();
            let here = file.display().to_string();
            if let Some(first) = origin.insert(domain.clone(), here.clone()) {
                return Err(ConfigSetError::DuplicateDomain {
                    domain,
                    first,
                    second: here,
                });
            }
            set.domains.insert(domain, config);
        }
        Ok(set)
    }

    /// A set of parsed files, for tests.
    #[cfg(test)]
    pub fn of(files: impl IntoIterator<Item = ConfigFile>) -> ConfigSet {
        let domains = files
            .into_iter()
            .map(|f| (f.domain().to_owned(), f))
            .collect();
        ConfigSet { domains }
    }

    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
    }

    /// The domains, sorted (for logs).
    pub fn domains(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.domains.keys().map(String::as_str).collect();
        d.sort_unstable();
        d
    }

    /// The rule for a request descriptor of `domain`; `None` when no file limits it.
    pub fn lookup<'a, 'e>(
        &'a self,
        domain: &str,
        entries: impl IntoIterator<Item = (&'e str, &'e str)>,
    ) -> Option<Rule<'a>> {
        self.domains.get(domain)?.lookup(domain, entries)
    }
}

/// The files `paths` name: files as given, directories expanded to their
/// `*.yaml` and `*.yml` files (not recursive), each directory in name order.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigSetError> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let read = |error| ConfigSetError::Dir {
            path: path.display().to_string(),
            error,
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read)? {
            let file = entry.map_err(read)?.path();
            let yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if yaml && file.is_file() {
                found.push(file);
            }
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// What a reload compares: every file with its size and modification time.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
    let files = files(paths).unwrap_or_default();
    files
        .into_iter()
        .map(|f| {
            let seen = std::fs::metadata(&f)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            (f, seen)
        })
        .collect()
}

/// Reloads `current` whenever the files change, until `stopped` resolves.
pub async fn watch(
    paths: Vec<PathBuf>,
    current: SharedConfigSet,
    stopped: impl std::future::Future<Output = ()>,
) {
    let mut last = fingerprint(&paths);
    let poll = async {
        loop {
            tokio::time::sleep(POLL).await;
            let now = fingerprint(&paths);
            if now == last {
                continue;
            }
            last = now;
            reload(&paths, &current);
        }
    };
    tokio::select! {
        () = poll => {}
        () = stopped => {}
    }
}

fn reload(paths: &[PathBuf], current: &SharedConfigSet) {
    match ConfigSet::load(paths) {
        Ok(set) => {
            tracing::info!(domains = ?set.domains(), "reloaded rate limit config");
            let mut held = current.write().unwrap_or_else(|e| e.into_inner());
            *held = Arc::new(set);
        }
        Err(e) => {
            tracing::warn!(error = %e, "rate limit config not reloaded; the last good one keeps serving");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn write(dir: &Path, name: &str, domain: &str) {
        let text = format!(
            "domain: {domain}\ndescriptors:\n  - key: user\n    rate_limit: {{unit: hour, requests_per_unit: 3}}\n"
        );
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_directory_gives_every_yaml_file_one_domain_each() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "edge");
        write(dir.path(), "b.yml", "api");
        std::fs::write(dir.path().join("notes.txt"), "not yaml").unwrap();
        let set = ConfigSet::load(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(set.domains(), ["api", "edge"]);
        assert!(set.lookup("api", [("user", "x")]).is_some());
        assert!(set.lookup("other", [("user", "x")]).is_none());
    }

    #[test]
    fn two_files_for_one_domain_name_both() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "edge");
        write(dir.path(), "b.yaml", "edge");
        let e = ConfigSet::load(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b.yaml: domain `edge` is already configured by"),
            "{e}"
        );
        assert!(e.contains("a.yaml"), "{e}");
    }

    #[test]
    fn a_bad_file_names_itself_and_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "edge");
        std::fs::write(dir.path().join("b.yaml"), "domain: api\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n").unwrap();
        let e = ConfigSet::load(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.yaml") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn an_empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = ConfigSet::load(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().starts_with("no *.yaml"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_reloaded_and_a_broken_one_keeps_the_last_good_set() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "edge");
        let paths = vec![dir.path().to_path_buf()];
        let current: SharedConfigSet =
            Arc::new(RwLock::new(Arc::new(ConfigSet::load(&paths).unwrap())));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watch(paths, current.clone(), async {
            let _ = stopped.await;
        }));
        let domains = |c: &SharedConfigSet| {
            let set = c.read().unwrap().clone();
            set.domains()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
        };
        tokio::time::sleep(POLL / 2).await;
        write(dir.path(), "b.yaml", "api");
        tokio::time::sleep(POLL * 2).await;
        assert_eq!(domains(&current), ["api", "edge"], "a new file is loaded");
        std::fs::write(dir.path().join("b.yaml"), "domain: api\n  broken: [").unwrap();
        tokio::time::sleep(POLL * 2).await;
        assert_eq!(
            domains(&current),
            ["api", "edge"],
            "the last good set serves"
        );
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        tokio::time::sleep(POLL * 2).await;
        assert_eq!(domains(&current), ["edge"], "a removed file's domain goes");
        let _ = stop.send(());
        task.await.unwrap();
    }
}
