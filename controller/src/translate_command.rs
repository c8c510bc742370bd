//! `tollgate translate DIR`: the translator offline, for looking at what a
//! directory becomes and for diffing it in review.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::resources;
use crate::translate::{self, render, yaml_text, Translation};
use crate::translator_args::TranslatorArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of Gateway API YAML (`*.yaml`, `*.yml`, recursive, multi-document).
    dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Which part to print.
    #[arg(long = "type", value_enum, default_value_t = render::Part::All)]
    part: render::Part,
    /// Print secrets (listeners' TLS private keys, JWKS key material) instead of `[redacted]`
    /// (for a static Envoy config).
    #[arg(long)]
    show_secrets: bool,
    #[command(flatten)]
    translator: TranslatorArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Yaml,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let loaded = resources::load_dir(&args.dir)
        .map_err(|e| anyhow::anyhow!("{} has errors:\n{e}", args.dir.display()))?;
    // An object refused at load is in the output, as `serve` would serve
    // it: a status condition naming the field. A document left out (YAML that
    // does not parse) is nowhere in it, so it fails the translation.
    if !loaded.load_errors.is_empty() {
        anyhow::bail!(
            "{} has errors:\n{}",
            args.dir.display(),
            loaded.load_errors.join("\n")
        );
    }
    for refused in &loaded.refused {
        tracing::warn!("refused (see its status): {}", refused.object.problem);
    }
    tracing::debug!(elapsed = ?started.elapsed(), "loaded");
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let options = args.translator.options()?;
    let secrets = if args.show_secrets {
        render::Secrets::Reveal
    } else {
        render::Secrets::Redact
    };
    let translation = translate::translate(&loaded, &options);
    tracing::debug!(elapsed = ?started.elapsed(), "translated");
    let text = match args.format {
        Format::Yaml => yaml(&translation, args.part, secrets)?,
        Format::Json => {
            let document = render::document(&translation, args.part, secrets)?;
            let text = serde_json::to_string_pretty(&document).context("writing JSON")?;
            std::mem::forget(document);
            text + "\n"
        }
    };
    tracing::debug!(elapsed = ?started.elapsed(), "rendered and formatted");
    print!("{text}");
    // The process ends here: freeing the resources and the translation would
    // take longer than formatting them.
    std::mem::forget((loaded, translation));
    Ok(())
}

/// The YAML of `part`. The document's top-level keys are sorted, so it is
/// the YAML of each key (`clusters`, `listeners`, `routes`, `status`) joined
/// in that order; each is rendered and written on a thread of its own.
fn yaml(
    translation: &Translation,
    part: render::Part,
    secrets: render::Secrets,
) -> anyhow::Result<String> {
    use render::Part;
    let parts = match part {
        Part::All => vec![Part::Cluster, Part::Listener, Part::Route, Part::Status],
        one => vec![one],
    };
    let texts = std::thread::scope(|scope| {
        let threads: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    let document = render::document(translation, part, secrets)?;
                    let text = yaml_text::to_string(&document);
                    std::mem::forget(document);
                    Ok::<_, render::RenderError>(text)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(texts.concat())
}
