//! The files a citation may point at: what git tracks plus new files not ignored,
//! so a page written but not yet committed is checked, and build outputs
//! (`dist/`, `target/`) never count as existing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The repository as a set of paths relative to its root (`/`-separated).
pub struct Repo {
    /// Every file, with its text when it is UTF-8 (binary files are not scanned).
    pub files: BTreeMap<String, Option<String>>,
    dirs: BTreeSet<String>,
}

impl Repo {
    /// Lists the repository at `root` with `git ls-files` and reads every file.
    pub fn from_git(root: &Path) -> Result<Repo, String> {
        let out = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root)
            .output()
            .map_err(|e| format!("running git ls-files: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git ls-files failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut files = BTreeMap::new();
        for path in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let path = String::from_utf8_lossy(path).into_owned();
            // A file deleted in the work tree but still in the index is gone.
            let Ok(bytes) = std::fs::read(root.join(&path)) else {
                continue;
            };
            files.insert(path, String::from_utf8(bytes).ok());
        }
        Ok(Repo::new(files))
    }

    pub fn new(files: BTreeMap<String, Option<String>>) -> Repo {
        let mut dirs = BTreeSet::new();
        for path in files.keys() {
            let mut dir = path.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                dirs.insert(parent.to_string());
                dir = parent;
            }
        }
        Repo { files, dirs }
    }

    /// Whether `path` (normalised, relative to the root) is a file or a directory.
    pub fn exists(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        path.is_empty() || self.files.contains_key(path) || self.dirs.contains(path)
    }

    /// The first path component of every file in a directory: where a cited
    /// repository path must start for it to be checked.
    pub fn top_dirs(&self) -> BTreeSet<&str> {
        self.dirs
            .iter()
            .filter(|d| !d.contains('/'))
            .map(String::as_str)
            .collect()
    }
}

/// `base`'s directory joined with `relative`, `.` and `..` resolved; `None` when
/// the path climbs out of the repository.
pub fn resolve(base_file: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = base_file.split('/').collect();
    parts.pop();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_resolved_against_the_citing_files_directory() {
        assert_eq!(
            resolve("docs/filters/canary.md", "../benchmarks.md"),
            Some("docs/benchmarks.md".into())
        );
        assert_eq!(
            resolve("README.md", "./docs/design.md"),
            Some("docs/design.md".into())
        );
        assert_eq!(resolve("docs/a.md", "../../outside.md"), None);
    }

    #[test]
    fn a_directory_exists_when_some_file_is_below_it() {
        let repo = Repo::new([("docs/filters/canary.md".to_string(), None)].into());
        assert!(repo.exists("docs/filters/"));
        assert!(repo.exists("docs"));
        assert!(!repo.exists("docs/filter"));
        assert_eq!(repo.top_dirs().into_iter().collect::<Vec<_>>(), ["docs"]);
    }
}
