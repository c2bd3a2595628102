//! The actions a step may take: every built-in command, by the same
//! request struct its command line builds, plus what each one outputs.

use serde_json::Value;

use crate::command::prune::ImagePruneRequest;
use crate::command::system::{CheckRequest, DfRequest, SystemPruneRequest};
use crate::command::{
    self, CommandError, Context, Ui, copy::CopyRequest, history::HistoryRequest,
    images::ImagesRequest, inspect::InspectRequest, load::LoadRequest, login::LoginRequest,
    login::LogoutRequest, mount::MountRequest, mount::UmountRequest, pull::PullRequest,
    push::PushRequest, rmi::RmiRequest, save::SaveRequest, search::SearchRequest, tag::TagRequest,
};
use crate::mirror::{MirrorRequest, Shard, run::MirrorOptions};
use crate::reference::Reference;

use super::expr::contains_expression;
use super::yaml::{Mode, Node, NodeKind, YamlError, from_node};

/// The action names, in the order the schema and messages list them, with
/// the outputs each one gives (`steps.ID.outputs.NAME`).
pub const ACTIONS: &[(&str, &[&str])] = &[
    ("search", &["results"]),
    ("pull", &["id", "digest", "reference", "pulled"]),
    ("push", &["reference", "digest", "size", "pushed"]),
    ("tag", &["reference", "id"]),
    ("save", &["output", "images"]),
    ("load", &["images", "ids"]),
    ("images", &["images"]),
    ("history", &["id", "history"]),
    ("inspect", &["image", "images"]),
    ("rmi", &["untagged", "deleted"]),
    ("mount", &["target", "id", "mounts"]),
    ("umount", &["unmounted"]),
    ("login", &["registry"]),
    ("logout", &["registry"]),
    (
        "copy",
        &[
            "digest",
            "source",
            "destination",
            "blobs_copied",
            "blobs_skipped",
            "bytes",
        ],
    ),
    (
        "mirror",
        &[
            "copied",
            "skipped",
            "failed",
            "pruned",
            "repositories",
            "bytes",
            "blobs_uploaded",
            "blobs_mounted",
            "shard",
        ],
    ),
    ("image_prune", &["untagged", "deleted", "reclaimed"]),
    ("system_df", &["images", "active", "size", "reclaimable"]),
    (
        "system_prune",
        &["untagged", "deleted", "blobs", "reclaimed"],
    ),
    ("system_check", &["problems", "repaired", "left"]),
];

/// The outputs `action` gives, or `None` for an unknown action.
pub fn outputs_of(action: &str) -> Option<&'static [&'static str]> {
    ACTIONS.iter().find(|(a, _)| *a == action).map(|(_, o)| *o)
}

/// One step's request.
#[derive(Debug, Clone)]
pub enum Request {
    /// `search`
    Search(SearchRequest),
    /// `pull`
    Pull(PullRequest),
    /// `push`
    Push(PushRequest),
    /// `tag`
    Tag(TagRequest),
    /// `save`
    Save(SaveRequest),
    /// `load`
    Load(LoadRequest),
    /// `images`
    Images(ImagesRequest),
    /// `history`
    History(HistoryRequest),
    /// `inspect`
    Inspect(InspectRequest),
    /// `rmi`
    Rmi(RmiRequest),
    /// `image prune`
    ImagePrune(ImagePruneRequest),
    /// `system df`
    SystemDf(DfRequest),
    /// `system prune`
    SystemPrune(SystemPruneRequest),
    /// `system check`
    SystemCheck(CheckRequest),
    /// `mount`
    Mount(MountRequest),
    /// `umount`
    Umount(UmountRequest),
    /// `login`
    Login(LoginRequest),
    /// `logout`
    Logout(LogoutRequest),
    /// `copy`
    Copy(CopyRequest),
    /// `mirror`
    Mirror(Box<MirrorRequest>),
}

/// What a whole run decides for every step.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepEnv {
    /// Plan, change nothing.
    pub dry_run: bool,
    /// This worker's shard of every mirror.
    pub shard: Option<Shard>,
}

/// A problem found in a request's values before anything runs: where (a
/// path of keys and list indexes inside the step's body) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Keys and indexes from the body to the bad value.
    pub path: Vec<String>,
    /// What is wrong.
    pub message: String,
}

impl Request {
    /// Builds the request for `action` from a step's body. An empty body
    /// (`images:`) is an empty mapping.
    pub fn parse(action: &str, body: &Node, mode: Mode) -> Result<Request, YamlError> {
        let empty;
        let body = if matches!(body.kind, NodeKind::Null) {
            empty = Node::new(NodeKind::Map(Vec::new()), body.pos);
            &empty
        } else {
            body
        };
        Ok(match action {
            "search" => Request::Search(from_node(body, mode)?),
            "pull" => Request::Pull(from_node(body, mode)?),
            "push" => Request::Push(from_node(body, mode)?),
            "tag" => Request::Tag(from_node(body, mode)?),
            "save" => Request::Save(from_node(body, mode)?),
            "load" => Request::Load(from_node(body, mode)?),
            "images" => Request::Images(from_node(body, mode)?),
            "history" => Request::History(from_node(body, mode)?),
            "inspect" => Request::Inspect(from_node(body, mode)?),
            "rmi" => Request::Rmi(from_node(body, mode)?),
            "mount" => Request::Mount(from_node(body, mode)?),
            "umount" => Request::Umount(from_node(body, mode)?),
            "login" => Request::Login(from_node(body, mode)?),
            "logout" => Request::Logout(from_node(body, mode)?),
            "copy" => Request::Copy(from_node(body, mode)?),
            "mirror" => Request::Mirror(Box::new(from_node(body, mode)?)),
            "image_prune" => Request::ImagePrune(from_node(body, mode)?),
            "system_df" => Request::SystemDf(from_node(body, mode)?),
            "system_prune" => Request::SystemPrune(from_node(body, mode)?),
            "system_check" => Request::SystemCheck(from_node(body, mode)?),
            other => {
                return Err(YamlError::at(body.pos, format!("unknown action `{other}`")));
            }
        })
    }

    /// Checks the values that must be valid whatever happens at run time:
    /// image references written out (not computed by an expression).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut reference = |key: &str, text: &str| {
            if contains_expression(text) {
                return;
            }
            if let Err(e) = Reference::parse(text) {
                out.push(Problem {
                    path: vec![key.to_string()],
                    message: e.to_string(),
                });
            }
        };
        match self {
            Request::Pull(r) => reference("image", &r.image),
            Request::Push(r) => reference("image", &r.image),
            Request::Tag(r) => reference("target", &r.target),
            Request::Copy(r) => {
                for (key, text) in [("source", &r.source), ("target", &r.target)] {
                    if !contains_expression(text)
                        && let Err(e) = crate::transport::address::Address::parse(text)
                    {
                        out.push(Problem {
                            path: vec![key.to_string()],
                            message: e.to_string(),
                        });
                    }
                }
            }
            Request::Mirror(r) => {
                for (path, message) in r.problems() {
                    out.push(Problem { path, message });
                }
            }
            // Nobody is asked in a pipeline: removing needs saying so.
            Request::ImagePrune(ImagePruneRequest { force: false, .. })
            | Request::SystemPrune(SystemPruneRequest { force: false, .. }) => out.push(Problem {
                path: vec!["force".to_string()],
                message: "a prune step asks nobody for confirmation: it needs `force: true`"
                    .to_string(),
            }),
            _ => {}
        }
        out
    }

    /// The plugins the request names, with where (for messages).
    pub fn plugin_names(&self) -> Vec<(Vec<String>, String)> {
        let list = |names: &[String]| -> Vec<(Vec<String>, String)> {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (vec!["transform".to_string(), i.to_string()], n.clone()))
                .collect()
        };
        match self {
            Request::Pull(r) => list(&r.transform),
            Request::Load(r) => list(&r.transform),
            Request::Save(r) => list(&r.transform),
            Request::Copy(r) => list(&r.transform),
            Request::Mirror(r) => {
                let mut out = list(&r.transform);
                if let Some(f) = &r.tag_filter {
                    out.push((vec!["tag_filter".to_string()], f.clone()));
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// Whether a dry run asks the action itself for its plan (read-only
    /// requests) rather than showing its keys.
    pub fn plans_itself(&self) -> bool {
        matches!(self, Request::Mirror(_))
    }

    /// Runs the request (for a dry run, an action that plans itself).
    pub fn run(&self, ctx: &Context, ui: &dyn Ui, env: &StepEnv) -> Result<Value, CommandError> {
        match self {
            Request::Mirror(r) => crate::mirror::run(
                ctx,
                r,
                ui,
                &MirrorOptions {
                    dry_run: env.dry_run,
                    shard: env.shard,
                },
            ),
            Request::Search(r) => command::search::run(ctx, r, ui),
            Request::Pull(r) => command::pull::run(ctx, r, ui),
            Request::Push(r) => command::push::run(ctx, r, ui),
            Request::Tag(r) => command::tag::run(ctx, r, ui),
            Request::Save(r) => command::save::run(ctx, r, ui),
            Request::Load(r) => command::load::run(ctx, r, ui),
            Request::Images(r) => command::images::run(ctx, r, ui),
            Request::History(r) => command::history::run(ctx, r, ui),
            Request::Inspect(r) => command::inspect::run(ctx, r, ui),
            Request::Rmi(r) => command::rmi::run(ctx, r, ui),
            Request::Mount(r) => command::mount::mount(ctx, r, ui),
            Request::Umount(r) => command::mount::umount(ctx, r, ui),
            Request::Login(r) => command::login::login(ctx, r, ui),
            Request::Logout(r) => command::login::logout(ctx, r, ui),
            Request::Copy(r) => command::copy::run(ctx, r, ui),
            Request::ImagePrune(r) => command::prune::run(ctx, r, ui),
            Request::SystemDf(r) => command::system::df(ctx, r, ui),
            Request::SystemPrune(r) => command::system::prune(ctx, r, ui),
            Request::SystemCheck(r) => command::system::check(ctx, r, ui),
        }
    }
}
