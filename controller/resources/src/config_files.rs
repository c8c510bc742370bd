//! Which files below the config directory are read, and how: every `*.yaml` /
//! `*.yml`, recursively, in path order, each file once, never blocking.
//!
//! - Symbolic links are followed, but a directory or file already reached by
//!   another path (a link loop such as `ln -s . self`, a second link) is
//!   skipped with a warning, so nothing is loaded twice and no walk recurses
//!   without end.
//! - Hidden entries (names starting with `.`) are not read: editors' lock and
//!   swap files live there, and so do the `..data` and `..<timestamp>`
//!   directories behind a Kubernetes ConfigMap mount, whose visible files are
//!   links into them (read through those links, each file is loaded once).
//! - Only regular files are read. A FIFO named `x.yaml` would block a plain
//!   read forever (and with it every reload and SIGTERM), so files are opened
//!   non-blocking and anything but a regular file is skipped with a warning.
//! - A file larger than [`MAX_FILE_BYTES`] is refused unread.

use std::collections::HashSet;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::yaml_bounds::MAX_FILE_BYTES;

/// The YAML files of a directory, and what was skipped or could not be read.
#[derive(Debug, Default)]
pub struct ConfigFiles {
    /// In path order.
    pub paths: Vec<PathBuf>,
    /// `path: message` for what could not be listed.
    pub problems: Vec<String>,
    /// Whether some of them may go away by themselves (see [`is_transient`]).
    pub transient: bool,
    /// `path: skipped: why` for what was left out on purpose.
    pub warnings: Vec<String>,
}

/// Lists the YAML files below `dir` (see the module comment for the rules).
pub fn list(dir: &Path) -> ConfigFiles {
    let mut walk = Walk::default();
    match std::fs::metadata(dir) {
        Ok(meta) => {
            walk.seen_dirs.insert(identity(&meta));
            walk.dir(dir);
        }
        Err(e) => walk.problem(dir, &e),
    }
    walk.found.paths.sort();
    walk.found
}

#[derive(Default)]
struct Walk {
    found: ConfigFiles,
    seen_dirs: HashSet<(u64, u64)>,
    seen_files: HashSet<(u64, u64)>,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl Walk {
    fn dir(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(dir, &e);
                return;
            }
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) if !entry.file_name().as_encoded_bytes().starts_with(b".") => {
                    paths.push(entry.path())
                }
                Ok(_) => {}
                Err(e) => self.problem(dir, &e),
            }
        }
        // Sorted, so that of two links to one file the first in path order is read.
        paths.sort();
        for path in paths {
            self.entry(path);
        }
    }

    fn entry(&mut self, path: PathBuf) {
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        // Follows links; a dangling link to a YAML name is a problem, to anything else nothing.
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if is_yaml => {
                self.problem(&path, &e);
                return;
            }
            Err(_) => return,
        };
        if meta.is_dir() {
            if self.seen_dirs.insert(identity(&meta)) {
                self.dir(&path);
            } else {
                self.skip(
                    &path,
                    "a directory already read (a link to it, or a link loop)",
                );
            }
        } else if is_yaml {
            if !meta.is_file() {
                self.skip(&path, "not a regular file (a FIFO, socket or device)");
            } else if self.seen_files.insert(identity(&meta)) {
                self.found.paths.push(path);
            } else {
                self.skip(&path, "a file already read through another path");
            }
        }
    }

    fn problem(&mut self, path: &Path, error: &std::io::Error) {
        self.found
            .problems
            .push(format!("{}: {error}", path.display()));
        self.found.transient |= is_transient(error);
    }

    fn skip(&mut self, path: &Path, why: &str) {
        self.found
            .warnings
            .push(format!("{}: skipped: {why}", path.display()));
    }
}

/// Whether an I/O error may go away by itself, so a load that failed on it is
/// worth retrying without any change: out of file descriptors (EMFILE, which
/// idle connections once caused) or memory, interrupted, timed out. A missing
/// file, a permission or a file that is not UTF-8 stays as it is until
/// someone changes it, and the watcher sees that.
pub fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    !matches!(
        error.kind(),
        NotFound | PermissionDenied | InvalidData | InvalidInput | NotADirectory | IsADirectory
    )
}

/// Why a config file was not read.
#[derive(Debug)]
pub struct ReadError {
    /// `path: message`.
    pub message: String,
    /// See [`is_transient`].
    pub transient: bool,
}

/// Reads a config file: never blocks (a FIFO put there after listing is
/// refused, not waited on), and refuses what is over [`MAX_FILE_BYTES`] or
/// not UTF-8.
pub fn read(path: &Path) -> Result<String, ReadError> {
    let at = |e: std::io::Error| ReadError {
        message: format!("{}: {e}", path.display()),
        transient: is_transient(&e),
    };
    let refused = |message: String| ReadError {
        message,
        transient: false,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(at)?;
    let meta = file.metadata().map_err(at)?;
    if !meta.is_file() {
        return Err(refused(format!(
            "{}: not a regular file (a FIFO, socket or device); not read",
            path.display()
        )));
    }
    let too_big = |len: u64| {
        format!(
            "{}: {len} bytes, more than the {} MiB a config file may have; not loaded",
            path.display(),
            MAX_FILE_BYTES >> 20
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(refused(too_big(meta.len())));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(at)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(refused(too_big(text.len() as u64)));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn names(dir: &Path, files: &ConfigFiles) -> Vec<String> {
        let relative = |p: &PathBuf| p.strip_prefix(dir).unwrap().display().to_string();
        files.paths.iter().map(relative).collect()
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "kind: x\n").unwrap();
    }

    #[test]
    fn yaml_files_are_listed_recursively_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yaml", "a/z.yml", "a/y.yaml", "notes.txt", "c.yaml"] {
            touch(&dir.path().join(f));
        }
        let files = list(dir.path());
        assert_eq!(
            names(dir.path(), &files),
            ["a/y.yaml", "a/z.yml", "b.yaml", "c.yaml"]
        );
        assert!(files.problems.is_empty() && files.warnings.is_empty());
    }

    #[test]
    fn a_link_to_the_directory_itself_is_not_followed_again() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a.yaml"));
        symlink(".", dir.path().join("self")).unwrap();
        symlink(".", dir.path().join("again")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        symlink("..", dir.path().join("sub/up")).unwrap();
        let files = list(dir.path());
        assert_eq!(names(dir.path(), &files), ["a.yaml"]);
        assert_eq!(files.warnings.len(), 3, "{:?}", files.warnings);
        assert!(files.warnings[0]
            .ends_with("again: skipped: a directory already read (a link to it, or a link loop)"));
    }

    #[test]
    fn a_configmap_mount_loads_each_file_once_through_its_visible_link() {
        // What the kubelet's atomic writer makes: the data in a timestamped
        // directory, `..data` pointing at it, and a link per key.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("..2026_12_03_21_00_00.123/routes.yaml"));
        touch(&d.join("..2026_12_03_21_00_00.123/gateway.yaml"));
        symlink("..2026_12_03_21_00_00.123", d.join("..data")).unwrap();
        symlink("..data/routes.yaml", d.join("routes.yaml")).unwrap();
        symlink("..data/gateway.yaml", d.join("gateway.yaml")).unwrap();
        let files = list(d);
        assert_eq!(names(d, &files), ["gateway.yaml", "routes.yaml"]);
        assert!(files.warnings.is_empty(), "{:?}", files.warnings);
    }

    #[test]
    fn a_second_link_to_a_file_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a.yaml"));
        symlink("a.yaml", dir.path().join("b.yaml")).unwrap();
        let files = list(dir.path());
        assert_eq!(names(dir.path(), &files), ["a.yaml"]);
        assert_eq!(files.warnings.len(), 1);
    }

    #[test]
    fn a_fifo_is_skipped_and_never_opened_for_a_blocking_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let files = list(dir.path());
        assert!(files.paths.is_empty());
        assert_eq!(files.warnings.len(), 1, "{:?}", files.warnings);
        // Read directly (a FIFO put there after the listing): refused at once.
        let err = read(&fifo).unwrap_err().message;
        assert!(
            err.ends_with("not a regular file (a FIFO, socket or device); not read"),
            "{err}"
        );
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = read(&big).unwrap_err();
        assert!(!err.transient);
        assert!(
            err.message
                .contains("more than the 8 MiB a config file may have"),
            "{}",
            err.message
        );
    }

    #[test]
    fn running_out_of_descriptors_is_transient_and_a_missing_file_is_not() {
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert!(is_transient(&emfile));
        let missing = read(Path::new("/nonexistent/x.yaml")).unwrap_err();
        assert!(!missing.transient, "{}", missing.message);
    }

    #[test]
    fn hidden_files_and_directories_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join(".hidden.yaml"));
        touch(&dir.path().join(".git/x.yaml"));
        touch(&dir.path().join("shown.yaml"));
        symlink("nowhere", dir.path().join(".#shown.yaml")).unwrap();
        let files = list(dir.path());
        assert_eq!(names(dir.path(), &files), ["shown.yaml"]);
        assert!(files.problems.is_empty());
    }
}
