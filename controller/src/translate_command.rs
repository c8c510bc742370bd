//! `tollgate translate DIR`: the translator offline, for looking at what a
//! directory becomes and for diffing it in review.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::resources;
use crate::translate::{self, render, yaml_text, Translation};

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
    /// Serve listener ports as written, even below 1024 (by default they move to port + 10000).
    #[arg(long)]
    no_port_remap: bool,
    /// Serve Gateway listener port PORT on Envoy port ENVOY_PORT instead (repeatable; wins over the
    /// remap). The Gateway keeps its port, e.g. in redirects.
    #[arg(long, value_name = "PORT=ENVOY_PORT", value_parser = parse_port_mapping)]
    port_map: Vec<(u16, u16)>,
    /// Print listeners' TLS private keys instead of `[redacted]` (for a static Envoy config).
    #[arg(long)]
    show_secrets: bool,
    /// Directory of Tollgate's `.wasm` filters, as Envoy will read it [default: the directory of
    /// this binary when it holds them (`dist/`), else `./dist`; made absolute].
    #[arg(long)]
    wasm_dir: Option<PathBuf>,
    /// `HOST:PORT` of the global rate limit service (`tollgate ratelimit-server`) that global rate
    /// limit rules call; without it a policy with global rules is Invalid.
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::translate::parse_service_address)]
    ratelimit_service: Option<String>,
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
    tracing::debug!(elapsed = ?started.elapsed(), "loaded");
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let wasm_dir = match &args.wasm_dir {
        Some(dir) => dir.clone(),
        None => default_wasm_dir(),
    };
    let options = translate::Options {
        port_remap: !args.no_port_remap,
        port_map: args.port_map.iter().copied().collect(),
        wasm_dir: std::path::absolute(&wasm_dir)
            .with_context(|| format!("making {} absolute", wasm_dir.display()))?,
        ratelimit_service: args.ratelimit_service.clone(),
    };
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

/// `--port-map 80=18080`: a Gateway listener port and the Envoy port serving it.
pub fn parse_port_mapping(text: &str) -> Result<(u16, u16), String> {
    let (port, envoy) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PORT=ENVOY_PORT"))?;
    let parse = |p: &str| match p.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?} is not a port (1-65535)")),
        Ok(port) => Ok(port),
    };
    Ok((parse(port)?, parse(envoy)?))
}

/// `make build` puts `tollgate` next to the filters in `dist/`; a cargo build
/// (`target/debug/tollgate`) is run from the repository root.
pub fn default_wasm_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("header_mod.wasm").is_file())
        .unwrap_or_else(|| PathBuf::from("dist"))
}

#[cfg(test)]
mod tests {
    use super::parse_port_mapping;

    #[test]
    fn port_mappings_parse_and_bad_ones_are_named() {
        assert_eq!(parse_port_mapping("80=18080"), Ok((80, 18080)));
        assert_eq!(
            parse_port_mapping("80:18080"),
            Err("\"80:18080\" is not PORT=ENVOY_PORT".to_owned())
        );
        assert_eq!(
            parse_port_mapping("80=0"),
            Err("\"0\" is not a port (1-65535)".to_owned())
        );
        assert_eq!(
            parse_port_mapping("x=1"),
            Err("\"x\" is not a port (1-65535)".to_owned())
        );
    }
}
