//! The command line as clap parses it: types alone, with no use of the
//! library, so the build script can include this file to write the shell
//! completions and manual pages. `requests.rs` turns each into its
//! library request.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// strata: docker's image commands without a daemon, on a local OCI store.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// The local image store (an OCI image layout).
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// A registry (HOST[:PORT]) to reach without TLS verification or over
    /// plain HTTP; registries on 127.0.0.0/8 and localhost always are.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List images.
    #[command(visible_alias = "ls")]
    Images(ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Return low-level information on images.
    Inspect(InspectArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(LoadArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Copy an image from one place to another (registry, OCI layout or
    /// archive, docker archive, the local store), as skopeo names them.
    Copy(CopyArgs),
    /// Search Docker Hub (or a registry's catalog) for images.
    Search(SearchArgs),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// Mount an image's root filesystem (or list what is mounted).
    Mount(MountArgs),
    /// Unmount an image mounted by `strata mount`.
    Umount(UmountArgs),
    /// Run a pipeline: a YAML file of steps.
    Run(RunArgs),
    /// WebAssembly plugins: inspect one, try one on an image, publish one.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage images (docker's `image` command group).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage the store: disk usage, pruning, checking.
    #[command(subcommand)]
    System(SystemCommand),
    /// Print a shell completion script (`source <(strata completion bash)`).
    Completion(CompletionArgs),
    /// Print strata's manual page, or write one page per command to a directory.
    Man(ManArgs),
}

/// `strata system …`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show the store's disk usage.
    Df(DfArgs),
    /// Remove unused data: dangling images (all unused with -a), blobs
    /// nothing needs, files left by interrupted commands.
    Prune(PruneArgs),
    /// Check the store's consistency (exit 1 when something is wrong).
    Check(CheckArgs),
}

/// `system df [OPTIONS]`
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    pub verbose: bool,
    /// Pretty-print using a Go template.
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

/// `image prune` and `system prune` `[OPTIONS]`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>').
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
}

/// `system check [OPTIONS]`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Drop what is broken, and the names pointing at it.
    #[arg(long)]
    pub repair: bool,
}

/// `completion SHELL`
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `man [--dir DIR]`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write strata.1 and a page per command (strata-pull.1, …) here instead
    /// of printing strata.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `strata image …`, docker's long forms of the image commands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Save one or more images to a tar archive.
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(LoadArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Mount an image's root filesystem (or list what is mounted).
    Mount(MountArgs),
    /// Unmount an image mounted by `strata image mount`.
    #[command(visible_alias = "unmount")]
    Umount(UmountArgs),
    /// Remove unused images.
    Prune(PruneArgs),
}

/// `strata plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// What a plugin is: its world, imports, exports, size, digest.
    Inspect(PluginInspectArgs),
    /// Apply a transform plugin to an image in the store, under a new tag.
    Run(PluginRunArgs),
    /// Publish a plugin as an OCI artifact (the CNCF Wasm artifact layout).
    Push(PluginPushArgs),
}

/// `plugin inspect FILE|REF@DIGEST`
#[derive(Debug, Args)]
pub struct PluginInspectArgs {
    /// The component (.wasm), or an OCI artifact pinned by digest.
    #[arg(value_name = "FILE|REF@DIGEST")]
    pub plugin: String,
}

/// `plugin push [--author TEXT] FILE NAME[:TAG]`
#[derive(Debug, Args)]
pub struct PluginPushArgs {
    /// The config's author.
    #[arg(long, value_name = "TEXT")]
    pub author: Option<String>,
    /// The component (.wasm).
    #[arg(value_name = "FILE")]
    pub plugin: PathBuf,
    /// Where it goes.
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

/// `plugin run [OPTIONS] FILE|REF@DIGEST IMAGE`
#[derive(Debug, Args)]
pub struct PluginRunArgs {
    /// A setting passed to the plugin.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub settings: Vec<(String, String)>,
    /// The result's name (default: IMAGE's tag followed by -PLUGIN).
    #[arg(long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// Seconds a plugin call may take.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Memory the plugin may use, in MiB.
    #[arg(long, value_name = "MiB")]
    pub memory: Option<usize>,
    /// The component (.wasm), or an OCI artifact pinned by digest.
    #[arg(value_name = "FILE|REF@DIGEST")]
    pub plugin: String,
    /// The image in the store.
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// `run [OPTIONS] PIPELINE.yaml`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Set a variable (`${{ vars.NAME }}`), overriding the file's.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write a JSON report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Run only shard I of N of every mirror step (repositories split by a
    /// stable hash of their name).
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Split mirror steps into N shards and run the one numbered by
    /// $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod index).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Print the pipeline file's JSON Schema and exit.
    #[arg(long, conflicts_with_all = ["pipeline", "dry_run", "report", "vars", "shard", "shards"])]
    pub schema: bool,
    /// The pipeline file.
    #[arg(value_name = "PIPELINE.yaml", required_unless_present = "schema")]
    pub pipeline: Option<PathBuf>,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid --var {text:?}: use NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("invalid --var {text:?}: the name is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `mount [OPTIONS] [IMAGE]`
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Mount here instead of in the store (an empty or new directory).
    #[arg(long, value_name = "DIR")]
    pub target: Option<std::path::PathBuf>,
    /// Writable: changes go to an upper directory kept for this mount.
    #[arg(long)]
    pub rw: bool,
    /// Write a flattened copy of the tree instead of an overlay mount.
    #[arg(long)]
    pub flatten: bool,
    /// Layers unpacked at once (default: one per CPU).
    #[arg(long, default_value_t = 0, value_name = "int")]
    pub jobs: usize,
    /// The image; with none, list what is mounted.
    #[arg(value_name = "IMAGE")]
    pub image: Option<String>,
}

/// `umount IMAGE|DIR`
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// Images (an ID, or any name the image has) or mount points.
    #[arg(value_name = "IMAGE|DIR", required = true)]
    pub what: Vec<String>,
}

/// `pull [OPTIONS] NAME[:TAG|@DIGEST]`
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository.
    #[arg(short, long)]
    pub all_tags: bool,
    /// Download all platforms of a multi-platform image, keeping its index.
    #[arg(long)]
    pub all_platforms: bool,
    /// Pull this platform (os/arch[/variant]) instead of the host's.
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = 3, value_name = "int")]
    pub max_concurrent_downloads: usize,
    /// Apply a WebAssembly plugin (a layer or config transform) on the way
    /// in; repeat for several, applied in order A file, or an
    /// OCI artifact pinned by digest (REGISTRY/REPO@sha256:…).
    #[arg(long = "transform", value_name = "PLUGIN.wasm|REF@DIGEST")]
    pub transform: Vec<String>,
    /// The image.
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// `push [OPTIONS] NAME[:TAG]`
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of the repository.
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers uploaded at once.
    #[arg(long, default_value_t = 5, value_name = "int")]
    pub max_concurrent_uploads: usize,
    /// Upload blobs larger than SIZE in chunks of SIZE (e.g. 50MiB), for
    /// registries or proxies that cap a request's size. By default blobs
    /// over 256MiB go in 64MiB chunks.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// The image.
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

/// `copy [OPTIONS] SOURCE DESTINATION`
#[derive(Debug, Args)]
#[command(after_help = "Addresses: docker://NAME[:TAG|@DIGEST], oci:DIR[:REF], \
oci-archive:FILE[:REF], docker-archive:FILE[:NAME[:TAG]], or a local image name or ID.")]
pub struct CopyArgs {
    /// Copy every platform of a multi-platform image, keeping its index
    /// (the default).
    #[arg(short, long, conflicts_with = "platform")]
    pub all: bool,
    /// Copy this platform (os/arch[/variant]) alone.
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Print only the digest.
    #[arg(short, long)]
    pub quiet: bool,
    /// Blobs copied at once.
    #[arg(long, default_value_t = 6, value_name = "int")]
    pub max_concurrent: usize,
    /// Apply a WebAssembly plugin (a layer or config transform) on the
    /// way; repeat for several, applied in order A file, or an
    /// OCI artifact pinned by digest (REGISTRY/REPO@sha256:…).
    #[arg(long = "transform", value_name = "PLUGIN.wasm|REF@DIGEST")]
    pub transform: Vec<String>,
    /// Where the image is.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Where it goes.
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
}

/// Parses a byte size: a number with an optional unit (B, k/kB/KiB, M/MB/MiB, G/GB/GiB).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {text:?}: use B, kB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    let size = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))?;
    if size == 0 {
        return Err("the size must be more than 0".into());
    }
    Ok(size)
}

/// `search [OPTIONS] TERM`
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided (stars=N, is-official=BOOL, is-automated=BOOL).
    #[arg(short, long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template.
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Max number of search results.
    #[arg(long, default_value_t = 25, value_name = "int")]
    pub limit: usize,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// What to look for; `HOST[:PORT]/TERM` searches that registry's catalog.
    #[arg(value_name = "TERM")]
    pub term: String,
}

/// `login [OPTIONS] [SERVER]`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Password.
    #[arg(short, long, value_name = "string")]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// Username.
    #[arg(short, long, value_name = "string")]
    pub username: Option<String>,
    /// The registry (Docker Hub when omitted).
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// `logout [SERVER]`
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (Docker Hub when omitted).
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// `images [OPTIONS] [REPOSITORY[:TAG]]`
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images).
    #[arg(short, long)]
    pub all: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (reference=PATTERN, dangling=BOOL, label=KEY[=VALUE], before=IMAGE, since=IMAGE).
    #[arg(short, long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template.
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Only images of this repository (and tag).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]`
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image to name.
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name.
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// `history [OPTIONS] IMAGE`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template.
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format (-H=false for raw values).
    #[arg(short = 'H', long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub human: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// The image.
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// `inspect [OPTIONS] NAME|ID [NAME|ID...]`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template: 'json', or a Go template.
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    /// Return JSON for the specified type (only "image" exists here).
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    /// The images.
    #[arg(value_name = "NAME|ID", required = true)]
    pub names: Vec<String>,
}

/// `rmi [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents (accepted for docker compatibility; strata images have no parents).
    #[arg(long)]
    pub no_prune: bool,
    /// The images.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `save [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long, value_name = "string")]
    pub output: Option<PathBuf>,
    /// Compress the archive: none, gzip or zstd (default: from the output's extension).
    #[arg(long, value_name = "none|gzip|zstd")]
    pub compress: Option<String>,
    /// Apply a WebAssembly plugin (a layer or config transform) to what is
    /// saved; repeat for several, applied in order A file, or an
    /// OCI artifact pinned by digest (REGISTRY/REPO@sha256:…).
    #[arg(long = "transform", value_name = "PLUGIN.wasm|REF@DIGEST")]
    pub transform: Vec<String>,
    /// The images.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `load [OPTIONS]`
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short, long, value_name = "string")]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Apply a WebAssembly plugin (a layer or config transform) to what is
    /// loaded; repeat for several, applied in order A file, or an
    /// OCI artifact pinned by digest (REGISTRY/REPO@sha256:…).
    #[arg(long = "transform", value_name = "PLUGIN.wasm|REF@DIGEST")]
    pub transform: Vec<String>,
}
