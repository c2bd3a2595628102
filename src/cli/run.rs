//! `strata run PIPELINE.yaml`: check the whole file (problems go to
//! standard error as `FILE:LINE:COL: message`, exit 125, nothing run), then
//! run it, write the report, and exit 1 if a step failed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use strata::command::Context;
use strata::mirror::Shard;
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
    let shard = match shard(args.shard.as_deref(), args.shards) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("strata: {e}");
            return Err(Reported(125).into());
        }
    };
    let checked = pipeline::load(&path, &args.vars).and_then(|p| {
        pipeline::apply_registries(&p, &mut registries)?;
        let plugins = pipeline::declared_plugins(&p)?;
        Ok((p, plugins))
    });
    let (pipeline, plugins) = match checked {
        Ok(p) => p,
        Err(e) => {
            for d in &e.0 {
                eprintln!("{d}");
            }
            return Err(Reported(125).into());
        }
    };
    let ctx = Context::new(root, registries).with_plugins(plugins);
    let options = RunOptions {
        dry_run: args.dry_run,
        shard,
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

/// The shard to run: `--shard I/N`, or `--shards N` with the index from
/// `JOB_COMPLETION_INDEX`, as Kubernetes sets it in an Indexed Job's pods.
fn shard(flag: Option<&str>, count: Option<u32>) -> anyhow::Result<Option<Shard>> {
    if let Some(text) = flag {
        return Ok(Some(Shard::parse(text)?));
    }
    let Some(count) = count else {
        return Ok(None);
    };
    let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
        anyhow::anyhow!("--shards {count} needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), or use --shard I/{count}")
    })?;
    let index: u32 = index
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("JOB_COMPLETION_INDEX={index:?} is not a number"))?;
    Shard::new(index, count).map(Some).ok_or_else(|| {
        anyhow::anyhow!("JOB_COMPLETION_INDEX={index} is not below --shards {count}")
    })
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
