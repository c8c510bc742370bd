//! Property test of the config directory walk on random trees of directories,
//! files and symbolic links (loops, links to ancestors, to files, dangling,
//! hidden names): the walk always ends, lists each file once, reads nothing
//! hidden or irregular, and misses no YAML file that is in plain sight.

#![allow(clippy::unwrap_used)] // a broken setup should fail the test loudly

use std::collections::HashSet;
use std::os::unix::fs::{symlink, MetadataExt as _};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tollgate_resources::config_files;

const NAMES: &[&str] = &[
    "a", "b.yaml", "c.yml", "d", ".h", "..data", "e.yaml", "f.txt",
];

#[derive(Debug, Clone)]
enum Op {
    /// A directory named `NAMES[name]` in the `parent`-th directory made so far.
    Dir {
        parent: usize,
        name: usize,
    },
    File {
        parent: usize,
        name: usize,
    },
    /// A link to the `target`-th path made so far (directory or file), or to
    /// a name that does not exist.
    Link {
        parent: usize,
        name: usize,
        target: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let n = NAMES.len();
    prop_oneof![
        (0..8usize, 0..n).prop_map(|(parent, name)| Op::Dir { parent, name }),
        (0..8usize, 0..n).prop_map(|(parent, name)| Op::File { parent, name }),
        (0..8usize, 0..n, 0..16usize).prop_map(|(parent, name, target)| Op::Link {
            parent,
            name,
            target
        }),
    ]
}

/// `to` relative to the directory `from` (both relative to the root).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let mut up = PathBuf::from(".");
    for _ in from.components() {
        up.push("..");
    }
    up.join(to)
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Builds the tree; returns the YAML files in plain sight (no hidden
/// component, no link on the way), by identity.
fn build(root: &Path, ops: &[Op]) -> HashSet<(u64, u64)> {
    let mut dirs = vec![PathBuf::new()];
    let mut made = vec![PathBuf::new()];
    let mut plain_yaml = HashSet::new();
    for op in ops {
        let (parent, name) = match op {
            Op::Dir { parent, name }
            | Op::File { parent, name }
            | Op::Link { parent, name, .. } => (dirs[parent % dirs.len()].clone(), NAMES[*name]),
        };
        let path = parent.join(name);
        if std::fs::symlink_metadata(root.join(&path)).is_ok() {
            continue;
        }
        let hidden = path
            .components()
            .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."));
        match op {
            Op::Dir { .. } => {
                std::fs::create_dir(root.join(&path)).unwrap();
                dirs.push(path.clone());
            }
            Op::File { .. } => {
                std::fs::write(root.join(&path), "kind: x\n").unwrap();
                if !hidden && (name.ends_with(".yaml") || name.ends_with(".yml")) {
                    plain_yaml.insert(identity(&root.join(&path)).unwrap());
                }
            }
            Op::Link { target, .. } => {
                let to = made
                    .get(*target)
                    .cloned()
                    .unwrap_or_else(|| PathBuf::from("missing"));
                symlink(relative(&parent, &to), root.join(&path)).unwrap();
            }
        }
        made.push(path);
    }
    plain_yaml
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_walk_ends_lists_each_file_once_and_misses_nothing_in_plain_sight(ops in prop::collection::vec(op(), 0..24)) {
        let dir = tempfile::tempdir().unwrap();
        let plain_yaml = build(dir.path(), &ops);
        let found = config_files::list(dir.path());

        let mut seen = HashSet::new();
        for path in &found.paths {
            let relative = path.strip_prefix(dir.path()).unwrap();
            prop_assert!(
                !relative.components().any(|c| c.as_os_str().as_encoded_bytes().starts_with(b".")),
                "hidden path listed: {}", relative.display()
            );
            prop_assert!(std::fs::metadata(path).unwrap().is_file());
            let ext = path.extension().and_then(|e| e.to_str());
            prop_assert!(matches!(ext, Some("yaml" | "yml")));
            prop_assert!(seen.insert(identity(path).unwrap()), "listed twice: {}", relative.display());
        }
        for file in &plain_yaml {
            prop_assert!(seen.contains(file), "a plain YAML file was not listed");
        }
    }
}
