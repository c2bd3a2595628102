//! Each command's arguments become its library request: the same struct a
//! pipeline step deserializes into.

use strata::command::{
    copy::CopyRequest, history::HistoryRequest, images::ImagesRequest, inspect::InspectRequest,
    load::LoadRequest, login::LogoutRequest, mount::MountRequest, mount::UmountRequest,
    plugin::PluginInspectRequest, plugin::PluginPushRequest, plugin::PluginRunRequest,
    prune::ImagePruneRequest, pull::PullRequest, push::PushRequest, rmi::RmiRequest,
    save::SaveRequest, search::SearchRequest, system::CheckRequest, system::DfRequest,
    system::SystemPruneRequest, tag::TagRequest,
};

use super::args::*;

impl From<PluginInspectArgs> for PluginInspectRequest {
    fn from(a: PluginInspectArgs) -> Self {
        PluginInspectRequest { plugin: a.plugin }
    }
}

impl From<PluginPushArgs> for PluginPushRequest {
    fn from(a: PluginPushArgs) -> Self {
        PluginPushRequest {
            plugin: a.plugin,
            image: a.image,
            author: a.author,
        }
    }
}

impl From<PluginRunArgs> for PluginRunRequest {
    fn from(a: PluginRunArgs) -> Self {
        PluginRunRequest {
            plugin: a.plugin,
            image: a.image,
            tag: a.tag,
            settings: a.settings,
            timeout: a.timeout,
            memory: a.memory,
        }
    }
}

impl From<MountArgs> for MountRequest {
    fn from(a: MountArgs) -> Self {
        MountRequest {
            image: a.image,
            target: a.target,
            rw: a.rw,
            flatten: a.flatten,
            jobs: a.jobs,
        }
    }
}

impl From<UmountArgs> for UmountRequest {
    fn from(a: UmountArgs) -> Self {
        UmountRequest { images: a.what }
    }
}

impl From<PullArgs> for PullRequest {
    fn from(a: PullArgs) -> Self {
        PullRequest {
            image: a.name,
            all_platforms: a.all_platforms,
            all_tags: a.all_tags,
            platform: a.platform,
            quiet: a.quiet,
            max_concurrent_downloads: a.max_concurrent_downloads,
            transform: a.transform,
        }
    }
}

impl From<PushArgs> for PushRequest {
    fn from(a: PushArgs) -> Self {
        PushRequest {
            image: a.name,
            all_tags: a.all_tags,
            quiet: a.quiet,
            max_concurrent_uploads: a.max_concurrent_uploads,
            chunk_size: a.chunk_size,
        }
    }
}

impl From<CopyArgs> for CopyRequest {
    fn from(a: CopyArgs) -> Self {
        CopyRequest {
            source: a.source,
            target: a.destination,
            // Every platform unless one is named (--all says so explicitly).
            all: a.platform.is_none(),
            platform: a.platform,
            quiet: a.quiet,
            max_concurrent: a.max_concurrent,
            transform: a.transform,
        }
    }
}

impl From<SearchArgs> for SearchRequest {
    fn from(a: SearchArgs) -> Self {
        SearchRequest {
            term: a.term,
            filter: a.filter,
            format: a.format,
            limit: a.limit,
            no_trunc: a.no_trunc,
        }
    }
}

impl From<LogoutArgs> for LogoutRequest {
    fn from(a: LogoutArgs) -> Self {
        LogoutRequest { server: a.server }
    }
}

impl From<ImagesArgs> for ImagesRequest {
    fn from(a: ImagesArgs) -> Self {
        ImagesRequest {
            reference: a.reference,
            all: a.all,
            digests: a.digests,
            filter: a.filter,
            format: a.format,
            no_trunc: a.no_trunc,
            quiet: a.quiet,
        }
    }
}

impl From<TagArgs> for TagRequest {
    fn from(a: TagArgs) -> Self {
        TagRequest {
            source: a.source,
            target: a.target,
        }
    }
}

impl From<HistoryArgs> for HistoryRequest {
    fn from(a: HistoryArgs) -> Self {
        HistoryRequest {
            image: a.image,
            format: a.format,
            human: a.human,
            no_trunc: a.no_trunc,
            quiet: a.quiet,
        }
    }
}

impl InspectArgs {
    /// The request; `image_noun` when run as `image inspect`.
    pub fn into_request(self, image_noun: bool) -> InspectRequest {
        InspectRequest {
            images: self.names,
            format: self.format,
            kind: self.kind,
            image_noun,
        }
    }
}

impl From<RmiArgs> for RmiRequest {
    fn from(a: RmiArgs) -> Self {
        RmiRequest {
            images: a.images,
            force: a.force,
            no_prune: a.no_prune,
        }
    }
}

impl From<SaveArgs> for SaveRequest {
    fn from(a: SaveArgs) -> Self {
        SaveRequest {
            images: a.images,
            output: a.output,
            compress: a.compress,
            transform: a.transform,
        }
    }
}

impl From<LoadArgs> for LoadRequest {
    fn from(a: LoadArgs) -> Self {
        LoadRequest {
            input: a.input,
            quiet: a.quiet,
            transform: a.transform,
        }
    }
}

impl From<DfArgs> for DfRequest {
    fn from(a: DfArgs) -> Self {
        DfRequest {
            verbose: a.verbose,
            format: a.format,
        }
    }
}

impl From<PruneArgs> for ImagePruneRequest {
    fn from(a: PruneArgs) -> Self {
        ImagePruneRequest {
            all: a.all,
            force: a.force,
            filter: a.filter,
        }
    }
}

impl From<PruneArgs> for SystemPruneRequest {
    fn from(a: PruneArgs) -> Self {
        SystemPruneRequest {
            all: a.all,
            force: a.force,
            filter: a.filter,
        }
    }
}

impl From<CheckArgs> for CheckRequest {
    fn from(a: CheckArgs) -> Self {
        CheckRequest { repair: a.repair }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::args::{Cli, Command};

    /// The default `--max-concurrent` is written as a literal in `args.rs`
    /// (which cannot reach the library): it must be the library's.
    #[test]
    fn copy_concurrency_default_is_the_library_default() {
        let cli = Cli::parse_from(["strata", "copy", "a", "b"]);
        let Command::Copy(args) = cli.command else {
            panic!("not a copy");
        };
        assert_eq!(
            args.max_concurrent,
            strata::command::copy::default_concurrent()
        );
    }
}
