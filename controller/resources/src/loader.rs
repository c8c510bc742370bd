//! Directory → [`Resources`]: every `*.yaml` / `*.yml` below the directory,
//! recursively, in path order (which files, and how they are read safely:
//! [`super::config_files`]), each file split into its YAML documents, each
//! document parsed within the bounds of [`super::yaml_bounds`].
//!
//! Documents are split at `---` lines here rather than by serde_yaml_ng's
//! multi-document deserializer, because the kind has to be read before the
//! typed parse, and re-parsing a `Value` would lose line numbers. A `---` line
//! inside a block scalar would be taken as a separator; Kubernetes manifests do
//! not put one there.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::config_files;
use super::policies::{PolicyKind, PolicyObject};
use super::refused::{RefusedKind, RefusedObject};
use super::yaml_bounds::{self, MAX_DOCUMENTS};
use super::{
    EndpointSlice, Gateway, GatewayClass, GrpcRoute, HttpRoute, Loaded, Namespace, Origin,
    ReferenceGrant, Resources, Secret, Service,
};

/// Every problem found, each `path:line: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub problems: Vec<String>,
    /// Some problem may go away by itself (out of file descriptors, say): a
    /// load worth retrying without waiting for a change.
    pub transient: bool,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for LoadError {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Loads every YAML file below `dir`; all problems are reported together.
pub fn load_dir(dir: &Path) -> Result<Resources, LoadError> {
    DirCache::default().load(dir)
}

/// The parsed documents of each file last loaded, by path: a reload parses
/// only the files whose content changed since (an edit to one route file of
/// many is most reloads), and the objects of the others are shared, not
/// copied. Content, not mtime, decides: a same-size edit within the
/// filesystem's timestamp granularity must not be missed, and reading and
/// hashing a file costs little next to parsing it.
///
/// A file that stops parsing on a reload keeps its last good version (every
/// document parsed) loaded, its problems reported in `Resources::load_errors`,
/// while the other files' edits load: one broken file costs only itself, and
/// a policy in force is never dropped by a bad edit. A file with no good
/// version yet (at start-up, or new) loads the documents that parse; the
/// others are refused one by one where they can be (`refused`: a status
/// condition on the object, and a refused policy's routes answer 500) and
/// left out where they cannot (YAML that does not parse at all, reported in
/// `load_errors`).
#[derive(Default)]
pub struct DirCache {
    files: HashMap<PathBuf, Arc<ParsedFile>>,
    /// The last version of each file in which every document parsed.
    good: HashMap<PathBuf, Arc<ParsedFile>>,
}

/// One file's documents, in file order, and the digest of the text they came from.
struct ParsedFile {
    digest: [u8; 32],
    documents: Vec<Parsed>,
}

/// What one document holds, or its problem (`path:line[:column]: message`).
type Parsed = Result<Document, String>;

pub(crate) enum Document {
    GatewayClass(Loaded<GatewayClass>),
    Gateway(Loaded<Gateway>),
    HttpRoute(Loaded<HttpRoute>),
    ReferenceGrant(Loaded<ReferenceGrant>),
    GrpcRoute(Loaded<GrpcRoute>),
    Service(Loaded<Service>),
    Secret(Loaded<Secret>),
    Namespace(Loaded<Namespace>),
    EndpointSlice(Loaded<EndpointSlice>),
    Policy(Loaded<PolicyObject>),
    /// A kind with status that did not parse as that kind.
    Refused(Loaded<RefusedObject>),
    /// A kind Tollgate does not read: the warning.
    Skipped(String),
    /// Comments only, or a trailing `---`.
    Empty,
}

/// A document to parse: the file's name in messages, its first line, its text.
type Job<'a> = (&'a str, usize, String);

impl DirCache {
    /// Loads every YAML file below `dir`, parsing only files that changed
    /// since the last call; all problems are reported together.
    pub fn load(&mut self, dir: &Path) -> Result<Resources, LoadError> {
        let config_files::ConfigFiles {
            paths,
            mut problems,
            mut transient,
            warnings,
        } = config_files::list(dir);
        let mut texts = Vec::new();
        for path in paths {
            match config_files::read(&path) {
                Ok(text) => texts.push((path.display().to_string(), path, text)),
                Err(e) => {
                    problems.push(e.message);
                    transient |= e.transient;
                }
            }
        }
        let mut files = Vec::with_capacity(texts.len());
        let mut changed = Vec::new();
        let mut jobs: Vec<Job<'_>> = Vec::new();
        for (name, path, text) in &texts {
            let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
            if let Some(cached) = self.files.get(path).filter(|c| c.digest == digest) {
                files.push(Some(cached.clone()));
                continue;
            }
            let documents = split_documents(text);
            if documents.len() > MAX_DOCUMENTS {
                let problem = format!(
                    "{name}: {} documents, more than the {MAX_DOCUMENTS} a file may have; not loaded",
                    documents.len()
                );
                let documents = vec![Err(problem)];
                files.push(Some(Arc::new(ParsedFile { digest, documents })));
                continue;
            }
            changed.push((files.len(), digest, documents.len()));
            files.push(None);
            jobs.extend(
                documents
                    .into_iter()
                    .map(|(line, doc)| (name.as_str(), line, doc)),
            );
        }
        tracing::debug!(
            files = texts.len(),
            parsed = changed.len(),
            documents = jobs.len(),
            "loading {}",
            dir.display()
        );
        let mut parsed = parse_in_parallel(jobs).into_iter();
        for (index, digest, count) in changed {
            let documents = parsed.by_ref().take(count).collect();
            files[index] = Some(Arc::new(ParsedFile { digest, documents }));
        }
        let mut resources = Resources {
            warnings,
            ..Resources::default()
        };
        self.files.clear();
        let mut good = HashMap::new();
        for ((name, path, _), file) in texts.into_iter().zip(files) {
            let Some(file) = file else { continue };
            let broken: Vec<&str> = file.documents.iter().filter_map(problem).collect();
            let serving = match (broken.is_empty(), self.good.get(&path)) {
                (true, _) => {
                    good.insert(path.clone(), file.clone());
                    file.clone()
                }
                (false, Some(last)) => {
                    resources
                        .load_errors
                        .extend(broken.into_iter().map(str::to_owned));
                    resources.load_errors.push(format!(
                        "{name}: its last good version keeps serving until it parses again"
                    ));
                    good.insert(path.clone(), last.clone());
                    last.clone()
                }
                // Its refused objects load as such (`Resources::refused`).
                (false, None) => {
                    let left_out = file.documents.iter().filter_map(|d| d.as_ref().err());
                    resources.load_errors.extend(left_out.cloned());
                    file.clone()
                }
            };
            for document in serving.documents.iter().flatten() {
                resources.add(document);
            }
            self.files.insert(path, file);
        }
        // Deleted files are forgotten; a failed load keeps the good versions.
        if problems.is_empty() {
            self.good = good;
        } else {
            self.good.extend(good);
        }
        problems.extend(super::duplicates::find(&resources));
        if problems.is_empty() {
            Ok(resources)
        } else {
            Err(LoadError {
                problems,
                transient,
            })
        }
    }
}

/// The problem of a document not loaded as written: one that did not parse,
/// or one refused.
fn problem(document: &Parsed) -> Option<&str> {
    match document {
        Err(problem) => Some(problem),
        Ok(Document::Refused(refused)) => Some(&refused.object.problem),
        Ok(_) => None,
    }
}

/// Parses documents on every core (parsing is most of loading), results in
/// job order. Documents, not files, are shared out, so one big file is
/// spread as well as many small ones.
fn parse_in_parallel(jobs: Vec<Job<'_>>) -> Vec<Parsed> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len().div_ceil(64))
        .max(1);
    if workers == 1 {
        return jobs.iter().map(parse_document).collect();
    }
    let jobs = &jobs;
    let mut results = Vec::with_capacity(jobs.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    let mine = jobs.iter().enumerate().skip(worker).step_by(workers);
                    mine.map(|(i, job)| (i, parse_document(job)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(parsed) => results.extend(parsed),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, parsed)| parsed).collect()
}

/// Adds the documents of one file (named `name` in messages) to `resources`
/// (tests and the fuzz target build their inputs with it), as a file with no
/// good version loads: an object refused is added as such (`refused`); a
/// document left out is an error.
pub fn load_str(name: &str, text: &str, resources: &mut Resources) -> Result<(), LoadError> {
    let mut problems = Vec::new();
    for (first_line, doc) in split_documents(text) {
        match parse_document(&(name, first_line, doc)) {
            Ok(document) => resources.add(&document),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LoadError {
            problems,
            transient: false,
        })
    }
}

impl Resources {
    /// Adds a parsed document's object (or warning), next in load order.
    pub(crate) fn add(&mut self, document: &Document) {
        let order = self.gateway_classes.len()
            + self.gateways.len()
            + self.http_routes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.reference_grants.len()
            + self.grpc_routes.len()
            + self.secrets.len()
            + self.namespaces.len()
            + self.policies.len()
            + self.refused.len();
        fn next<T>(loaded: &Loaded<T>, order: usize) -> Loaded<T> {
            Loaded {
                object: loaded.object.clone(),
                order,
                source: loaded.source.clone(),
                generation: loaded.generation,
            }
        }
        match document {
            Document::GatewayClass(l) => self.gateway_classes.push(next(l, order)),
            Document::Gateway(l) => self.gateways.push(next(l, order)),
            Document::HttpRoute(l) => self.http_routes.push(next(l, order)),
            Document::ReferenceGrant(l) => self.reference_grants.push(next(l, order)),
            Document::GrpcRoute(l) => self.grpc_routes.push(next(l, order)),
            Document::Service(l) => self.services.push(next(l, order)),
            Document::Secret(l) => self.secrets.push(next(l, order)),
            Document::Namespace(l) => self.namespaces.push(next(l, order)),
            Document::EndpointSlice(l) => self.endpoint_slices.push(next(l, order)),
            Document::Policy(l) => self.policies.push(next(l, order)),
            Document::Refused(l) => self.refused.push(next(l, order)),
            Document::Skipped(warning) => self.warnings.push(warning.clone()),
            Document::Empty => {}
        }
    }
}

/// The documents of a file, each with the 1-based line it starts on.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        if is_separator(line) {
            docs.push((start, std::mem::take(&mut current)));
            start = index + 2;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((start, current));
    docs
}

fn is_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '#']))
}

fn parse_document((name, first_line, doc): &Job<'_>) -> Parsed {
    let (name, first_line, doc) = (*name, *first_line, doc.as_str());
    yaml_bounds::check_depth(doc).map_err(|refused| {
        let line = first_line + refused.line.unwrap_or(1) - 1;
        format!("{name}:{line}: {}", refused.message)
    })?;
    // One YAML parse gives the kind and, for a kind we read, the generation
    // (parsing is most of loading); the text is parsed again for the kind only
    // when that fails, so errors are located as before. A document refused
    // for its size is never parsed again.
    let untyped = yaml_bounds::parse_value(doc);
    if let Err(e) = &untyped {
        if e.to_string().contains(yaml_bounds::EXPANSION_REFUSED) {
            return Err(located(name, first_line, e));
        }
    }
    let type_meta: Option<TypeMeta> = match untyped.as_ref().map(Option::<TypeMeta>::deserialize) {
        Ok(Ok(type_meta)) => type_meta,
        _ => serde_yaml_ng::from_str(doc).map_err(|e| located(name, first_line, &e))?,
    };
    let Some(TypeMeta { api_version, kind }) = type_meta else {
        return Ok(Document::Empty);
    };
    let origin = format!("{name}:{first_line}");
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let typed = Typed {
        name,
        first_line,
        doc,
        untyped,
    };
    let job = (name, first_line, doc);
    if let Some(policy_kind) = PolicyKind::from_group_kind(group, &kind) {
        let loaded = typed.load_by(
            |untyped| PolicyObject::deserialize(policy_kind, untyped).ok(),
            |doc| PolicyObject::from_yaml(policy_kind, doc),
        );
        return or_refused(
            loaded,
            RefusedKind::Policy(policy_kind),
            job,
            Document::Policy,
        );
    }
    Ok(match (group, kind.as_str()) {
        ("gateway.networking.k8s.io", "GatewayClass") => or_refused(
            typed.load(),
            RefusedKind::GatewayClass,
            job,
            Document::GatewayClass,
        )?,
        ("gateway.networking.k8s.io", "Gateway") => {
            or_refused(typed.load(), RefusedKind::Gateway, job, Document::Gateway)?
        }
        ("gateway.networking.k8s.io", "HTTPRoute") => or_refused(
            typed.load(),
            RefusedKind::HttpRoute,
            job,
            Document::HttpRoute,
        )?,
        ("gateway.networking.k8s.io", "ReferenceGrant") => Document::ReferenceGrant(typed.load()?),
        ("gateway.networking.k8s.io", "GRPCRoute") => or_refused(
            typed.load(),
            RefusedKind::GrpcRoute,
            job,
            Document::GrpcRoute,
        )?,
        ("", "Service") => Document::Service(typed.load()?),
        ("", "Secret") => Document::Secret(typed.load()?),
        ("", "Namespace") => Document::Namespace(typed.load()?),
        ("discovery.k8s.io", "EndpointSlice") => Document::EndpointSlice(typed.load()?),
        _ if kind.is_empty() => Document::Skipped(format!(
            "{origin}: skipped: no `kind`, not a Kubernetes object"
        )),
        _ => Document::Skipped(format!(
            "{origin}: skipped {api_version:?} {kind:?}: not a kind Tollgate reads"
        )),
    })
}

/// A document of a kind with status: its object, or, when it does not parse as
/// that kind but reads as YAML with a name, the object refused (`refused`).
fn or_refused<T>(
    loaded: Result<Loaded<T>, String>,
    kind: RefusedKind,
    (name, first_line, doc): (&str, usize, &str),
    document: impl FnOnce(Loaded<T>) -> Document,
) -> Parsed {
    let problem = match loaded {
        Ok(loaded) => return Ok(document(loaded)),
        Err(problem) => problem,
    };
    // Parsed again only on this rare path (the first parse was moved into
    // the typed one); the bounds were checked already.
    let Ok(mut value) = yaml_bounds::parse_value(doc) else {
        return Err(problem);
    };
    drop_nulls(&mut value);
    match RefusedObject::read(kind, &value, problem.clone()) {
        Some(refused) => Ok(Document::Refused(Loaded {
            object: Arc::new(refused),
            order: 0,
            source: Origin::File {
                path: name.to_owned(),
                line: first_line,
            },
            generation: super::generation::of(&value),
        })),
        None => Err(problem),
    }
}

/// One document whose kind is known, ready for its typed parse.
struct Typed<'a> {
    name: &'a str,
    first_line: usize,
    doc: &'a str,
    /// The document parsed as plain data (for its generation).
    untyped: Result<serde_json::Value, serde_yaml_ng::Error>,
}

impl Typed<'_> {
    fn load<T: DeserializeOwned>(self) -> Result<Loaded<T>, String> {
        self.load_by(
            |untyped| T::deserialize(untyped).ok(),
            |doc| serde_yaml_ng::from_str(doc),
        )
    }

    /// Types the value parsed already (cheap next to a second YAML parse)
    /// with `from_value`, which takes the value so its strings are moved,
    /// not copied; only when that fails is the text parsed again, by
    /// `from_text`, so an error keeps its line, column and field path.
    fn load_by<T>(
        self,
        from_value: impl FnOnce(serde_json::Value) -> Option<T>,
        from_text: impl FnOnce(&str) -> Result<T, serde_yaml_ng::Error>,
    ) -> Result<Loaded<T>, String> {
        let at = |e: serde_yaml_ng::Error| located(self.name, self.first_line, &e);
        let (object, generation) = match self.untyped {
            Ok(mut untyped) => {
                drop_nulls(&mut untyped);
                let generation = super::generation::of(&untyped);
                match from_value(untyped) {
                    Some(object) => (object, generation),
                    None => (from_text(self.doc).map_err(at)?, generation),
                }
            }
            // The typed parse's error, with its field path, comes first.
            Err(e) => {
                from_text(self.doc).map_err(at)?;
                return Err(at(e));
            }
        };
        Ok(Loaded {
            object: Arc::new(object),
            order: 0,
            source: Origin::File {
                path: self.name.to_owned(),
                line: self.first_line,
            },
            generation,
        })
    }
}

/// Removes every mapping entry whose value is `null` (`add:` with nothing
/// after it), as the Kubernetes API server does: a null field is an absent
/// field, so `add:` means no `add`, not an error. List items are kept.
pub(crate) fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// `path:line:column: field.path: message`, the line counted in the whole file.
fn located(name: &str, first_line: usize, error: &serde_yaml_ng::Error) -> String {
    let message = error.to_string();
    // serde_yaml_ng appends "at line L column C" relative to the document;
    // the file-relative position goes in front instead.
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(text, _)| text);
    match error.location() {
        Some(at) => format!(
            "{name}:{}:{}: {message}",
            first_line + at.line() - 1,
            at.column()
        ),
        None => format!("{name}:{first_line}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n---\n")
    }

    fn names_and_orders(resources: &Resources) -> Vec<(String, usize)> {
        let services = resources.services.iter();
        services
            .map(|s| (s.object.metadata.name.clone(), s.order))
            .collect()
    }

    /// Issue 19: `add:` with no value (null) is an absent field, as the API
    /// server reads it, not a type error refusing the file.
    #[test]
    fn a_null_field_is_an_absent_field() {
        let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  labels:\nspec:\n  parentRefs: [{name: eg}]\n  rules:\n  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        add:\n        set: [{name: x, value: y}]\n    backendRefs:\n";
        let mut resources = Resources::default();
        load_str("r.yaml", route, &mut resources).unwrap();
        let loaded = &resources.http_routes[0];
        let with_nulls = format!("{:?}", loaded.object);
        let mut same = Resources::default();
        load_str(
            "r.yaml",
            &route
                .replace("        add:\n", "")
                .replace("  labels:\n", "")
                .replace("    backendRefs:\n", ""),
            &mut same,
        )
        .unwrap();
        assert_eq!(with_nulls, format!("{:?}", same.http_routes[0].object));
        assert_eq!(loaded.generation, same.http_routes[0].generation);
    }

    #[test]
    fn a_reload_parses_only_changed_files_and_matches_a_fresh_load() {
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
        write("a.yaml", &(service("a1") + &service("a2")));
        write("b.yaml", &service("b1"));
        write("c.yaml", &service("c1"));
        let mut cache = DirCache::default();
        let first = cache.load(dir.path()).unwrap();

        // Same size, so only the content tells the edit apart.
        write("b.yaml", &service("b2"));
        std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
        write("d.yaml", &service("d1"));
        let second = cache.load(dir.path()).unwrap();
        assert_eq!(
            names_and_orders(&second),
            names_and_orders(&load_dir(dir.path()).unwrap())
        );
        assert_eq!(
            names_and_orders(&second),
            [("a1", 0), ("a2", 1), ("b2", 2), ("d1", 3)].map(|(n, o)| (n.to_owned(), o))
        );
        // The unchanged file's objects are the ones parsed before.
        assert!(Arc::ptr_eq(
            &first.services[0].object,
            &second.services[0].object
        ));
        assert!(!Arc::ptr_eq(
            &first.services[2].object,
            &second.services[2].object
        ));
        assert_eq!(cache.files.len(), 3, "the deleted file is forgotten");
    }

    /// The load's problems, whether they failed it or were left out of it.
    fn problems_of(loaded: Result<Resources, LoadError>) -> LoadError {
        match loaded {
            Err(e) => e,
            Ok(resources) => LoadError {
                problems: resources.load_errors,
                transient: false,
            },
        }
    }

    #[test]
    fn a_broken_file_is_reported_on_every_load_until_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join("a.yaml"), text).unwrap();
        let mut cache = DirCache::default();
        write("apiVersion: v1\nkind: Service\nmetadata: [name: a\n");
        let err = problems_of(cache.load(dir.path()));
        assert!(err.problems[0].starts_with(&format!("{}:", dir.path().join("a.yaml").display())));
        assert_eq!(
            problems_of(cache.load(dir.path())),
            err,
            "cached, still reported"
        );
        write(&service("a"));
        assert_eq!(cache.load(dir.path()).unwrap().services.len(), 1);
    }

    #[test]
    fn a_file_that_stops_parsing_keeps_its_last_good_version_while_the_others_reload() {
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
        let mut cache = DirCache::default();
        write("a.yaml", &service("a"));
        write("b.yaml", &service("b"));
        let loaded = cache.load(dir.path()).unwrap();
        assert_eq!((loaded.services.len(), loaded.load_errors.len()), (2, 0));

        // a.yaml breaks while b.yaml gains a Service: b's edit is served, a's
        // last good Service with it, and a's problem is reported.
        write(
            "a.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: [name: a\n",
        );
        write("b.yaml", &format!("{}---\n{}", service("b"), service("b2")));
        let loaded = cache.load(dir.path()).unwrap();
        let names: Vec<&str> = loaded
            .services
            .iter()
            .map(|s| s.object.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "b2"]);
        let a = dir.path().join("a.yaml").display().to_string();
        assert!(
            loaded.load_errors[0].starts_with(&format!("{a}:")),
            "{:?}",
            loaded.load_errors
        );
        assert!(loaded
            .load_errors
            .last()
            .unwrap()
            .contains("last good version keeps serving"));

        // Fixed: no longer stale, the new version served.
        write("a.yaml", &service("a2"));
        let loaded = cache.load(dir.path()).unwrap();
        assert_eq!(loaded.services[0].object.metadata.name, "a2");
        assert!(loaded.load_errors.is_empty());

        // A new file that does not parse has no good version: it is left
        // out and reported, and the rest loads.
        write("c.yaml", &format!("{}---\nkind: [\n", service("c")));
        let loaded = cache.load(dir.path()).unwrap();
        assert_eq!(loaded.services.len(), 4, "c.yaml's good document loads");
        let c = dir.path().join("c.yaml").display().to_string();
        assert_eq!(loaded.load_errors.len(), 1, "{:?}", loaded.load_errors);
        assert!(
            loaded.load_errors[0].starts_with(&format!("{c}:")),
            "{:?}",
            loaded.load_errors
        );
        std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
        assert_eq!(cache.load(dir.path()).unwrap().services.len(), 3);
    }

    /// Issue 19: a document of a kind with status that does not parse as that
    /// kind is refused on its own (named, with its parentRefs, for a status
    /// condition), at start-up too, while the others load.
    #[test]
    fn an_object_that_does_not_parse_as_its_kind_is_refused_and_the_rest_loads() {
        let dir = tempfile::tempdir().unwrap();
        let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: app}\nspec:\n  parentRefs: [{name: eg}]\n  rules:\n  - timeout: 5s\n";
        let text = format!("{}{route}", service("s"));
        std::fs::write(dir.path().join("a.yaml"), text).unwrap();
        let loaded = DirCache::default().load(dir.path()).unwrap();
        assert_eq!(loaded.services.len(), 1);
        assert!(loaded.http_routes.is_empty());
        let refused = &loaded.refused[0].object;
        assert_eq!(refused.kind, RefusedKind::HttpRoute);
        assert_eq!(
            (refused.metadata.namespace(), refused.metadata.name.as_str()),
            ("app", "r")
        );
        assert_eq!(refused.parent_refs[0].name, "eg");
        let a = dir.path().join("a.yaml").display().to_string();
        assert!(
            refused.problem.starts_with(&format!("{a}:1"))
                && refused
                    .problem
                    .contains("spec.rules[0]: unknown field `timeout`"),
            "{}",
            refused.problem
        );
        let problems: Vec<&str> = loaded.problems().collect();
        assert_eq!(problems, [refused.problem.as_str()]);
        assert!(loaded.load_errors.is_empty(), "refused, not left out");
        assert_eq!(loaded.refused[0].source.to_string(), format!("{a}:5"));
    }

    #[test]
    fn documents_parsed_in_parallel_keep_their_order() {
        let text: String = (0..500).map(|i| service(&format!("s{i}"))).collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("many.yaml"), &text).unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        let expected: Vec<_> = (0..500).map(|i| (format!("s{i}"), i)).collect();
        assert_eq!(names_and_orders(&loaded), expected);
    }

    #[test]
    fn schema_error_names_file_line_and_field() {
        let text = "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n  listeners:\n  - name: http\n    protocol: HTTP\n    prot: 80\n";
        let mut resources = Resources::default();
        load_str("gw.yaml", text, &mut resources).unwrap();
        assert_eq!(resources.refused.len(), 1);
        let problems: Vec<&str> = resources.problems().collect();
        assert_eq!(problems.len(), 1);
        let problem = problems[0];
        assert!(problem.starts_with("gw.yaml:13:"), "{problem}");
        assert!(problem.contains("spec.listeners[0]"), "{problem}");
        assert!(problem.contains("prot"), "{problem}");
        assert_eq!(
            resources.warnings,
            vec!["gw.yaml:1: skipped \"v1\" \"ConfigMap\": not a kind Tollgate reads"]
        );
    }

    #[test]
    fn documents_keep_file_order_and_skip_empty_ones() {
        let text = "---\n# nothing\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: web}\n---\n";
        let mut resources = Resources::default();
        load_str("svc.yml", text, &mut resources).unwrap();
        let names: Vec<_> = resources
            .services
            .iter()
            .map(|s| (s.object.metadata.name.as_str(), s.order))
            .collect();
        assert_eq!(names, vec![("b", 0), ("a", 1)]);
        assert_eq!(resources.services[0].object.metadata.namespace(), "default");
    }

    #[test]
    fn an_object_defined_twice_is_a_problem_naming_both_places() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), service("web") + &service("api")).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "# copy\n".to_owned() + &service("web"),
        )
        .unwrap();
        let err = problems_of(load_dir(dir.path()));
        let a = dir.path().join("a.yaml").display().to_string();
        let b = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            err.problems,
            [format!("{b}:1: Service default/web is already defined at {a}:1; each object must be defined once")]
        );
    }

    #[test]
    fn objects_of_one_name_in_other_namespaces_or_kinds_are_not_duplicates() {
        let text = service("web")
            + "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\n---\n"
            + "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n";
        let mut resources = Resources::default();
        load_str("a.yaml", &text, &mut resources).unwrap();
        assert!(super::super::duplicates::find(&resources).is_empty());
    }

    #[test]
    fn a_file_whose_aliases_expand_past_its_budget_is_refused_naming_it() {
        // The shape that took 1.59 GB from 25 KB: K items referenced J times.
        let items = vec!["x"; 2000].join(", ");
        let refs = vec!["*a"; 2000].join(", ");
        let text = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: &a [{items}]\n  annotations: [{refs}]\n");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bomb.yaml"), text).unwrap();
        let err = problems_of(load_dir(dir.path()));
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.problems[0].starts_with(&dir.path().join("bomb.yaml").display().to_string()),
            "{err}"
        );
        assert!(
            err.problems[0].contains(yaml_bounds::EXPANSION_REFUSED),
            "{err}"
        );
    }

    #[test]
    fn deeply_nested_flow_collections_are_refused_with_their_line() {
        let text = format!(
            "{}apiVersion: v1\nkind: Service\nmetadata: {}",
            service("ok"),
            "{a: ".repeat(100_000)
        );
        let mut resources = Resources::default();
        let err = load_str("deep.yaml", &text, &mut resources).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].starts_with("deep.yaml:7: "), "{err}");
    }

    #[test]
    fn a_file_with_too_many_documents_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("many.yaml"),
            "---\n".repeat(MAX_DOCUMENTS + 1),
        )
        .unwrap();
        let err = problems_of(load_dir(dir.path()));
        assert!(
            err.problems[0].contains("documents, more than the 20000 a file may have"),
            "{err}"
        );
    }

    #[test]
    fn yaml_syntax_error_is_located_in_the_file() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: [name: a\n";
        let mut resources = Resources::default();
        let err = load_str("bad.yaml", text, &mut resources).unwrap_err();
        assert!(err.problems[0].starts_with("bad.yaml:"), "{err}");
        let line: usize = err.problems[0].split(':').nth(1).unwrap().parse().unwrap();
        assert!(line >= 7, "{err}");
    }
}
