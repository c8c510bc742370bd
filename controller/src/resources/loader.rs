//! Directory → [`Resources`]: every `*.yaml` / `*.yml` below the directory,
//! recursively, in path order, each file split into its YAML documents.
//!
//! Documents are split at `---` lines here rather than by serde_yaml_ng's
//! multi-document deserializer, because the kind has to be read before the
//! typed parse, and re-parsing a `Value` would lose line numbers. A `---` line
//! inside a block scalar would be taken as a separator; Kubernetes manifests do
//! not put one there.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::policies::{Policy, PolicyKind};
use super::{Loaded, Resources};

/// Every problem found, each `path:line: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub problems: Vec<String>,
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
    let mut files = Vec::new();
    let mut problems = Vec::new();
    collect_yaml_files(dir, &mut files, &mut problems);
    files.sort();
    let mut resources = Resources::default();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                if let Err(e) = load_str(&file.display().to_string(), &text, &mut resources) {
                    problems.extend(e.problems);
                }
            }
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    if problems.is_empty() {
        Ok(resources)
    } else {
        Err(LoadError { problems })
    }
}

fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                problems.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        if path.is_dir() {
            collect_yaml_files(&path, files, problems);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
}

/// Adds the documents of one file (named `name` in messages) to `resources`.
pub fn load_str(name: &str, text: &str, resources: &mut Resources) -> Result<(), LoadError> {
    let mut problems = Vec::new();
    for (first_line, doc) in split_documents(text) {
        if let Err(problem) = load_document(name, first_line, &doc, resources) {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LoadError { problems })
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

fn load_document(
    name: &str,
    first_line: usize,
    doc: &str,
    resources: &mut Resources,
) -> Result<(), String> {
    // One YAML parse gives the kind and, for a kind we read, the generation
    // (parsing is most of loading); the text is parsed again for the kind only
    // when that fails, so errors are located as before.
    let untyped: Result<serde_json::Value, _> = serde_yaml_ng::from_str(doc);
    let type_meta: Option<TypeMeta> = match untyped.as_ref().map(Option::<TypeMeta>::deserialize) {
        Ok(Ok(type_meta)) => type_meta,
        _ => serde_yaml_ng::from_str(doc).map_err(|e| located(name, first_line, &e))?,
    };
    let Some(TypeMeta { api_version, kind }) = type_meta else {
        return Ok(()); // an empty document (comments only, or a trailing `---`)
    };
    let origin = format!("{name}:{first_line}");
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let order = resources.gateway_classes.len()
        + resources.gateways.len()
        + resources.http_routes.len()
        + resources.services.len()
        + resources.endpoint_slices.len()
        + resources.reference_grants.len()
        + resources.grpc_routes.len()
        + resources.secrets.len()
        + resources.namespaces.len()
        + resources.policies.len();
    let typed = Typed {
        name,
        first_line,
        doc,
        untyped,
        order,
    };
    if let Some(policy_kind) = PolicyKind::from_group_kind(group, &kind) {
        resources
            .policies
            .push(typed.load_with(|doc| Policy::from_yaml(policy_kind, doc))?);
        return Ok(());
    }
    match (group, kind.as_str()) {
        ("gateway.networking.k8s.io", "GatewayClass") => {
            resources.gateway_classes.push(typed.load()?)
        }
        ("gateway.networking.k8s.io", "Gateway") => resources.gateways.push(typed.load()?),
        ("gateway.networking.k8s.io", "HTTPRoute") => resources.http_routes.push(typed.load()?),
        ("gateway.networking.k8s.io", "ReferenceGrant") => {
            resources.reference_grants.push(typed.load()?)
        }
        ("gateway.networking.k8s.io", "GRPCRoute") => resources.grpc_routes.push(typed.load()?),
        ("", "Service") => resources.services.push(typed.load()?),
        ("", "Secret") => resources.secrets.push(typed.load()?),
        ("", "Namespace") => resources.namespaces.push(typed.load()?),
        ("discovery.k8s.io", "EndpointSlice") => resources.endpoint_slices.push(typed.load()?),
        _ if kind.is_empty() => resources.warnings.push(format!(
            "{origin}: skipped: no `kind`, not a Kubernetes object"
        )),
        _ => resources.warnings.push(format!(
            "{origin}: skipped {api_version:?} {kind:?}: not a kind Tollgate reads"
        )),
    }
    Ok(())
}

/// One document whose kind is known, ready for its typed parse.
struct Typed<'a> {
    name: &'a str,
    first_line: usize,
    doc: &'a str,
    /// The document parsed as plain data (for its generation).
    untyped: Result<serde_json::Value, serde_yaml_ng::Error>,
    order: usize,
}

impl Typed<'_> {
    fn load<T: DeserializeOwned>(self) -> Result<Loaded<T>, String> {
        // Typing the value parsed already is cheap next to a second YAML
        // parse; the text is parsed again only when that fails, so an error
        // keeps its line, column and field path.
        if let Ok(untyped) = &self.untyped {
            if let Ok(object) = T::deserialize(untyped) {
                return Ok(Loaded {
                    object,
                    order: self.order,
                    source: format!("{}:{}", self.name, self.first_line),
                    generation: super::generation::of(untyped),
                });
            }
        }
        self.load_with(|doc| serde_yaml_ng::from_str(doc))
    }

    /// As `load`, with the document parsed by `parse` (policy kinds pick
    /// their spec type by kind).
    fn load_with<T>(
        self,
        parse: impl FnOnce(&str) -> Result<T, serde_yaml_ng::Error>,
    ) -> Result<Loaded<T>, String> {
        let object = parse(self.doc).map_err(|e| located(self.name, self.first_line, &e))?;
        let untyped = self
            .untyped
            .map_err(|e| located(self.name, self.first_line, &e))?;
        Ok(Loaded {
            object,
            order: self.order,
            source: format!("{}:{}", self.name, self.first_line),
            generation: super::generation::of(&untyped),
        })
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

    #[test]
    fn schema_error_names_file_line_and_field() {
        let text = "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n  listeners:\n  - name: http\n    protocol: HTTP\n    prot: 80\n";
        let mut resources = Resources::default();
        let err = load_str("gw.yaml", text, &mut resources).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        let problem = &err.problems[0];
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
    fn yaml_syntax_error_is_located_in_the_file() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: [name: a\n";
        let mut resources = Resources::default();
        let err = load_str("bad.yaml", text, &mut resources).unwrap_err();
        assert!(err.problems[0].starts_with("bad.yaml:"), "{err}");
        let line: usize = err.problems[0].split(':').nth(1).unwrap().parse().unwrap();
        assert!(line >= 7, "{err}");
    }
}
