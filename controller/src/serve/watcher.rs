//! Changes below the config directory, debounced: an editor's save, a `cp -r`
//! of many files or a `git checkout` is many events, and one reload after
//! they settle is what is wanted.
//!
//! - notify's recursive inotify watch also watches subdirectories created
//!   later. Access events (opens and reads, including the reloads' own) are
//!   not changes and are dropped, or every reload would trigger the next.
//! - **The configured path, not the directory it named at start**: a
//!   directory removed and re-created, or replaced by `mv` (a deploy script's
//!   swap), is a new inode the old watch never sees. The parent is watched
//!   for the directory's own name, and the path's identity (device, inode) is
//!   checked on every change and every [`POLL`]; when it differs the watch
//!   moves to what the path names now, and a reload follows.
//! - **Files being written are waited for**: a writer that truncates a file
//!   and pauses would otherwise have its half-written file served. A file
//!   modified and not yet closed is waited for (at most [`MAX_WRITE_WAIT`]).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Quiet time after the last event before a reload.
const SETTLE: Duration = Duration::from_millis(100);
/// A directory that never stops changing is still reloaded this often.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// How long a file still open for writing may hold a reload back.
const MAX_WRITE_WAIT: Duration = Duration::from_secs(5);
/// How often the path's identity is checked without any event.
const POLL: Duration = Duration::from_secs(1);
/// Files tracked as being written; past this many, no reload waits for them.
const MAX_TRACKED_WRITES: usize = 4096;

pub struct DirWatcher {
    /// The configured directory, absolute.
    dir: PathBuf,
    /// What `dir` named when the recursive watch was placed.
    identity: Option<(u64, u64)>,
    watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<Event>,
    /// Files modified and not closed since.
    writing: HashSet<PathBuf>,
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl DirWatcher {
    pub fn start(dir: &Path) -> anyhow::Result<DirWatcher> {
        let dir = std::path::absolute(dir)
            .with_context(|| format!("making {} absolute", dir.display()))?;
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let event = match event {
                Ok(event) => event,
                // An overflowed queue or a vanished watch: reload to be sure.
                Err(e) => {
                    tracing::warn!(error = %e, "watching the config directory");
                    Event::new(EventKind::Other)
                }
            };
            let _ = tx.send(event);
        })
        .context("starting the file watcher")?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", dir.display()))?;
        if let Some(parent) = dir.parent() {
            // For the directory's own removal, re-creation or replacement.
            if let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive) {
                tracing::warn!(parent = %parent.display(), error = %e, "not watching the config directory's parent; its replacement is noticed within {POLL:?}");
            }
        }
        Ok(DirWatcher {
            identity: identity(&dir),
            dir,
            watcher,
            events,
            writing: HashSet::new(),
        })
    }

    /// Waits for a change and for the directory to settle after it.
    pub async fn changed(&mut self) {
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) if self.is_change(&event) => break,
                    Some(_) => {}
                    // The watcher is owned by self and never drops its sender.
                    None => std::future::pending::<()>().await,
                },
                () = tokio::time::sleep(POLL) => {
                    if self.follow_the_path() {
                        break;
                    }
                }
            }
        }
        let started = Instant::now();
        let deadline = started + MAX_WAIT;
        let write_deadline = started + MAX_WRITE_WAIT;
        loop {
            let now = Instant::now();
            let writes_pending = !self.writing.is_empty() && now < write_deadline;
            if now >= deadline && !writes_pending {
                break;
            }
            // Quiet for SETTLE (never past MAX_WAIT); past it, only writes hold us.
            let wake = if now < deadline {
                (now + SETTLE).min(deadline)
            } else {
                write_deadline
            };
            match tokio::time::timeout_at(wake, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.is_change(&event);
                }
                Ok(None) => break,
                Err(_quiet) => {
                    if self.writing.is_empty() || Instant::now() >= write_deadline {
                        break;
                    }
                }
            }
        }
        if !self.writing.is_empty() {
            tracing::warn!(
                files = self.writing.len(),
                "reloading although files are still open for writing after {MAX_WRITE_WAIT:?}"
            );
            self.writing.clear();
        }
        self.follow_the_path();
    }

    /// Whether `event` is a change below the configured path; keeps track
    /// of files being written.
    fn is_change(&mut self, event: &Event) -> bool {
        let ours = event.paths.is_empty() || event.paths.iter().any(|p| p.starts_with(&self.dir));
        if !ours {
            return false;
        }
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for path in &event.paths {
                    self.writing.remove(path);
                }
                true
            }
            EventKind::Access(_) => false,
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) | EventKind::Create(_) => {
                if self.writing.len() < MAX_TRACKED_WRITES {
                    self.writing
                        .extend(event.paths.iter().filter(|p| p.is_file()).cloned());
                }
                true
            }
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                for path in &event.paths {
                    self.writing.remove(path);
                }
                true
            }
            _ => true,
        }
    }

    /// Moves the recursive watch when the configured path names another
    /// directory than the one watched (removed and re-created, swapped by
    /// `mv`); whether it did.
    fn follow_the_path(&mut self) -> bool {
        let now = identity(&self.dir);
        if now == self.identity {
            return false;
        }
        // The old watch may be gone with its directory; either way it goes.
        let _ = self.watcher.unwatch(&self.dir);
        self.identity = match self.watcher.watch(&self.dir, RecursiveMode::Recursive) {
            Ok(()) => {
                tracing::info!(dir = %self.dir.display(), "the config directory was replaced; watching the new one");
                now
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "the config directory is gone; waiting for it to come back");
                None
            }
        };
        self.writing.clear();
        true
    }
}
