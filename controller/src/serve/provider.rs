//! Where `serve` gets its objects and where their status goes: the seam
//! between a source of Gateway API objects and everything the sources share
//! (the translator, the snapshot, the per-Gateway views, the xDS server and
//! the admin endpoint, driven by `Reloader`). A directory of YAML is the
//! provider today ([`Directory`], with [`StatusFile`] as its sink); a
//! Kubernetes API server plugs into the same two traits.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::watcher::DirWatcher;
use super::Current;
use crate::resources::loader::LoadError;
use crate::resources::{DirCache, Resources};

/// A source of objects.
pub trait Provider {
    /// What it reads, for the log: `directory /etc/tollgate`.
    fn describe(&self) -> String;
    /// Resolves when the objects may have changed (debounced: a burst of
    /// changes is one reload).
    fn changed(&mut self) -> impl Future<Output = ()> + Send;
    /// The objects now, or every problem of a load that failed as a whole
    /// (and whether trying again without a change may help).
    fn load(&mut self) -> Result<Resources, LoadError>;
}

/// Where what is served and every object's status go after each reload.
pub trait StatusSink {
    /// Records `current`; a sink writes only what changed since its last.
    fn publish(&mut self, current: &Current);
}

/// The objects of a directory of YAML, reloaded when it changes.
pub struct Directory {
    dir: PathBuf,
    cache: DirCache,
    watcher: DirWatcher,
}

impl Directory {
    /// Starts watching `dir`: before the first load, so no change is missed
    /// between them.
    pub fn start(dir: &Path) -> Result<Directory> {
        if !dir.is_dir() {
            anyhow::bail!("--config-dir {}: not a directory", dir.display());
        }
        Ok(Directory {
            dir: dir.to_owned(),
            cache: DirCache::default(),
            watcher: DirWatcher::start(dir)?,
        })
    }
}

impl Provider for Directory {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        self.watcher.changed()
    }

    fn load(&mut self) -> Result<Resources, LoadError> {
        self.cache.load(&self.dir)
    }
}

/// `status.yaml` in `--status-dir`: every object's status and the load
/// errors, replaced atomically whenever it changes.
pub struct StatusFile {
    path: PathBuf,
    written: Option<String>,
}

impl StatusFile {
    pub fn create_in(dir: &Path) -> Result<StatusFile> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --status-dir {}", dir.display()))?;
        Ok(StatusFile {
            path: dir.join("status.yaml"),
            written: None,
        })
    }
}

impl StatusSink for StatusFile {
    fn publish(&mut self, current: &Current) {
        match current.status_yaml() {
            Ok(text) if self.written.as_deref() != Some(text.as_str()) => {
                match write_atomically(&self.path, &text) {
                    Ok(()) => self.written = Some(text),
                    Err(e) => tracing::warn!(path = %self.path.display(), "writing status: {e:#}"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
}

/// Readers of the status file see the old or the new text, never half of one.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
