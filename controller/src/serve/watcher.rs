//! Changes below the config directory, debounced: an editor's save, a `cp -r`
//! of many files or a `git checkout` is many events, and one reload after
//! they settle is what is wanted.
//!
//! notify's recursive inotify watch also watches subdirectories created
//! later. Access events (opens and reads, including the reloads' own) are
//! not changes and are dropped, or every reload would trigger the next.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Quiet time after the last event before a reload.
const SETTLE: Duration = Duration::from_millis(100);
/// A directory that never stops changing is still reloaded this often.
const MAX_WAIT: Duration = Duration::from_secs(2);

pub struct DirWatcher {
    _watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

impl DirWatcher {
    pub fn start(dir: &Path) -> anyhow::Result<DirWatcher> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            match event {
                Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
                Ok(_) => {
                    let _ = tx.send(());
                }
                // An overflowed queue or a vanished watch: reload to be sure.
                Err(e) => {
                    tracing::warn!(error = %e, "watching the config directory");
                    let _ = tx.send(());
                }
            }
        })
        .context("starting the file watcher")?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", dir.display()))?;
        Ok(DirWatcher {
            _watcher: watcher,
            events,
        })
    }

    /// Waits for a change and for the directory to settle after it.
    pub async fn changed(&mut self) {
        if self.events.recv().await.is_none() {
            // The watcher is owned by self and never drops its sender; wait
            // forever rather than spin.
            std::future::pending::<()>().await;
        }
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let settle = (Instant::now() + SETTLE).min(deadline);
            match tokio::time::timeout_at(settle, self.events.recv()).await {
                Ok(Some(())) if Instant::now() < deadline => continue,
                _ => return,
            }
        }
    }
}
