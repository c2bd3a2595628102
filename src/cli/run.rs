//! `strata run PIPELINE.yaml`: check the whole file (problems go to
//! standard error as `FILE:LINE:COL: message`, exit 125, nothing run), then
//! run it, write the report, and exit 1 if a step failed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use strata::command::Context;
use strata::pipeline::{self, RunOptions};
use strata::transport::registry::Registries;

use super::Reported;
use super::args::RunArgs;
use super::ui::Terminal;

/// Runs `strata run`.
pub fn run(
    root: PathBuf,
    mut registries: Registries,
    ui: &Terminal,
    args: RunArgs,
) -> anyhow::Result<()> {
    if args.schema {
        let text = serde_json::to_string_pretty(&pipeline::schema::schema())?;
        writeln!(std::io::stdout().lock(), "{text}")?;
        return Ok(());
    }
    let Some(path) = args.pipeline else {
        anyhow::bail!("no pipeline file given");
    };
    let checked = pipeline::load(&path, &args.vars)
        .and_then(|p| pipeline::apply_registries(&p, &mut registries).map(|()| p));
    let pipeline = match checked {
        Ok(p) => p,
        Err(e) => {
            for d in &e.0 {
                eprintln!("{d}");
            }
            return Err(Reported(125).into());
        }
    };
    let ctx = Context::new(root, registries);
    let options = RunOptions {
        dry_run: args.dry_run,
    };
    let report = pipeline::run(&pipeline, &ctx, ui, &options);
    if let Some(file) = &args.report {
        write_report(file, &report)
            .with_context(|| format!("cannot write the report {}", file.display()))?;
    }
    let code = report.exit_code();
    if code != 0 {
        return Err(Reported(code).into());
    }
    Ok(())
}

/// Writes the report whole or not at all: a temporary file renamed over.
fn write_report(file: &std::path::Path, report: &pipeline::Report) -> anyhow::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = strata::transport::store::temp_path(&dir, ".strata-report");
    let text = serde_json::to_vec_pretty(report)?;
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}
