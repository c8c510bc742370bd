//! `doc-check` (run by `make lint`): every relative link in our Markdown, with its
//! `#anchor`, and every document or repository path cited in code, comments or
//! docs exists. Docs get reorganised and files move; a dangling citation sends
//! a reader nowhere, so the lint refuses it and names `file:line`.

mod citations;
mod markdown;
mod repo;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use repo::{resolve, Repo};

fn main() -> ExitCode {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let repo = match Repo::from_git(&root) {
        Ok(repo) => repo,
        Err(e) => {
            eprintln!("doc-check: {e}");
            return ExitCode::from(2);
        }
    };
    let problems = check(&repo);
    for problem in &problems {
        eprintln!("{problem}");
    }
    if problems.is_empty() {
        println!(
            "doc-check: every link and cited path in {} files exists",
            repo.files.len()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("doc-check: {} dangling reference(s)", problems.len());
        ExitCode::FAILURE
    }
}

/// Files whose text is generated, or names missing paths on purpose (this
/// tool's own test fixtures).
fn is_scanned(path: &str) -> bool {
    path != "Cargo.lock"
        && !path.starts_with("fuzz/corpus/")
        && !path.starts_with("tools/doc-check/")
}

/// Every dangling reference, as `file:line: message`, sorted and without repeats.
fn check(repo: &Repo) -> BTreeSet<String> {
    let top_dirs = repo.top_dirs();
    let mut problems = BTreeSet::new();
    for (file, text) in &repo.files {
        let Some(text) = text.as_deref().filter(|_| is_scanned(file)) else {
            continue;
        };
        if file.ends_with(".md") {
            for link in markdown::links(text) {
                if let Some(message) = check_link(repo, file, text, &link.target) {
                    problems.insert(format!("{file}:{}: {message}", link.line));
                }
            }
        }
        for cited in citations::citations(text, &top_dirs) {
            let from_dir = cited
                .is_document
                .then(|| resolve(file, &cited.path))
                .flatten();
            let found = from_dir.is_some_and(|p| repo.exists(&p))
                || (!cited.path.starts_with("..") && repo.exists(&cited.path));
            if !found {
                problems.insert(format!(
                    "{file}:{}: cites `{}`, which does not exist",
                    cited.line, cited.path
                ));
            }
        }
    }
    problems
}

/// Why a Markdown link from `file` is dangling, or `None` when it is fine.
fn check_link(repo: &Repo, file: &str, text: &str, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let (resolved, page) = if path.is_empty() {
        (file.to_string(), Some(text))
    } else {
        let Some(resolved) = resolve(file, path).filter(|p| repo.exists(p)) else {
            return Some(format!("links to `{target}`, which does not exist"));
        };
        let page = repo.files.get(&resolved).and_then(|t| t.as_deref());
        (resolved, page)
    };
    let anchor = anchor.filter(|_| resolved.ends_with(".md"))?;
    let anchors = markdown::anchors(page?);
    (!anchors.contains(anchor))
        .then(|| format!("links to `{target}`, but {resolved} has no heading `#{anchor}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> Repo {
        Repo::new(
            files
                .iter()
                .map(|(p, t)| (p.to_string(), Some(t.to_string())))
                .collect(),
        )
    }

    #[test]
    fn a_page_whose_links_and_citations_all_exist_has_no_problem() {
        let repo = repo(&[
            ("README.md", "# Tollgate\n[design](docs/design.md#the-envelope), [top](#tollgate), `controller/src/main.rs`\n"),
            ("docs/design.md", "# Design\n## The envelope\n[back](../README.md) and [self](#design)\n"),
            ("controller/src/main.rs", "//! See docs/design.md and ../../README.md.\n"),
        ]);
        assert_eq!(check(&repo), BTreeSet::new());
    }

    #[test]
    fn a_dangling_link_a_missing_anchor_and_a_missing_cited_path_are_each_reported_with_their_line()
    {
        let repo = repo(&[
            (
                "README.md",
                "# T\n\n[a](docs/gone.md)\n[b](docs/design.md#nowhere)\n",
            ),
            ("docs/design.md", "# Design\n"),
            (
                "controller/src/main.rs",
                "//! line one\n//! See DESIGN.md and controller/src/gone.rs.\n",
            ),
        ]);
        let problems: Vec<_> = check(&repo).into_iter().collect();
        assert_eq!(
            problems,
            [
                "README.md:3: cites `docs/gone.md`, which does not exist",
                "README.md:3: links to `docs/gone.md`, which does not exist",
                "README.md:4: links to `docs/design.md#nowhere`, but docs/design.md has no heading `#nowhere`",
                "controller/src/main.rs:2: cites `DESIGN.md`, which does not exist",
                "controller/src/main.rs:2: cites `controller/src/gone.rs`, which does not exist",
            ]
        );
    }

    #[test]
    fn a_document_outside_the_repository_is_dangling_even_if_it_exists_on_this_machine() {
        let repo = repo(&[(
            "e2e/src/bench.rs",
            "//! method: ../shared/BENCHMARKING.md\n",
        )]);
        assert_eq!(check(&repo).len(), 1);
    }
}
