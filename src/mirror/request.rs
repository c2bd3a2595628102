//! The `mirror` step as a pipeline writes it, and the checks its values
//! must pass before anything runs.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::command::one_or_many;
use crate::image::Platform;
use crate::reference::Reference;

use super::select;

/// `mirror:` — repositories and tags from one registry to others.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorRequest {
    /// The source registry (`HOST[:PORT]`).
    pub from: String,
    /// The target registries, each with how repository names change there.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<Target>,
    /// The source repositories: a list (of names, or of an earlier step's
    /// results with a `name`), or `{catalog: REGEX}` for every repository
    /// of the source's catalog that matches.
    pub repositories: Repositories,
    /// Which tags to copy.
    #[serde(default)]
    pub tags: TagPolicy,
    /// Only these platforms of multi-platform images (`os/arch[/variant]`);
    /// all when empty. A subset rewrites the index (a new digest).
    #[serde(default, deserialize_with = "one_or_many")]
    pub platforms: Vec<String>,
    /// Copy signatures, SBOMs and attestations that refer to each image.
    #[serde(default = "crate::command::yes")]
    pub referrers: bool,
    /// Delete target tags that the source no longer has or the filters no
    /// longer select.
    #[serde(default)]
    pub prune: bool,
    /// Tags copied at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A tag-filter plugin deciding on each repository's tags after the
    /// filters above.
    #[serde(default)]
    pub tag_filter: Option<String>,
    /// Plugins (layer and config transforms) applied to every image copied,
    /// in order: the targets get the transformed images.
    #[serde(default, deserialize_with = "one_or_many")]
    pub transform: Vec<String>,
}

fn default_concurrency() -> usize {
    8
}

/// One target registry.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The registry (`HOST[:PORT]`).
    pub registry: String,
    /// Put before every repository name (`mirror/` makes `team/app`
    /// `mirror/team/app`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Or rewrite names with a regex and its replacement (`$1` for groups).
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
}

/// A repository name rewrite.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// The regex matched against the source repository.
    pub from: String,
    /// The replacement (`$1`, `${name}` for groups).
    pub to: String,
}

/// Which tags of each repository to copy, in the order the stages apply.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TagPolicy {
    /// Keep tags matching any of these regexes.
    #[serde(deserialize_with = "one_or_many")]
    pub include: Vec<String>,
    /// Drop tags matching any of these regexes.
    #[serde(deserialize_with = "one_or_many")]
    pub exclude: Vec<String>,
    /// Keep tags that are versions in this range (npm style: `>=1.2 <3`).
    pub semver: Option<String>,
    /// Keep the newest N (by version, or by image creation time when some
    /// tags are not versions).
    pub latest: Option<usize>,
    /// Keep tags whose image was created within this long (`90d`, `12h`).
    pub newer_than: Option<String>,
    /// Also copy these manifests by digest (no tag).
    #[serde(deserialize_with = "one_or_many")]
    pub digests: Vec<String>,
}

/// Where source repositories come from.
#[derive(Debug, Clone, schemars::JsonSchema)]
#[schemars(untagged)]
pub enum Repositories {
    /// Every repository of the source's catalog matching a regex.
    Catalog {
        /// The regex.
        catalog: String,
    },
    /// These repositories.
    List(Vec<RepoItem>),
}

/// A repository named in a list: its name, or an object with a `name`
/// (a `search` step's results).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(untagged)]
pub enum RepoItem {
    /// A name.
    Name(String),
    /// An object with a name.
    Found {
        /// The name.
        name: String,
    },
}

impl RepoItem {
    /// The name as given.
    pub fn name(&self) -> &str {
        match self {
            RepoItem::Name(n) | RepoItem::Found { name: n } => n,
        }
    }
}

// By hand rather than `untagged`: an expression that a check cannot
// evaluate yet (`repositories: ${{ steps.find.outputs.results }}`) is
// accepted as a list to come, and the errors say what is expected.
impl<'de> Deserialize<'de> for Repositories {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Repositories;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of repositories or {catalog: REGEX}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Repositories, E> {
                if v.contains("${{") {
                    return Ok(Repositories::List(Vec::new()));
                }
                Err(E::custom(format!(
                    "expected a list of repositories or {{catalog: REGEX}}, found {v:?}"
                )))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Repositories, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<RepoItem>()? {
                    out.push(item);
                }
                Ok(Repositories::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Repositories, A::Error> {
                let mut catalog = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "catalog" => catalog = Some(map.next_value::<String>()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["catalog"]));
                        }
                    }
                }
                catalog
                    .map(|catalog| Repositories::Catalog { catalog })
                    .ok_or_else(|| de::Error::missing_field("catalog"))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RepoItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RepoItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a repository name, or an object with a `name`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RepoItem, E> {
                Ok(RepoItem::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RepoItem, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "name" {
                        name = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                name.map(|name| RepoItem::Found { name })
                    .ok_or_else(|| de::Error::missing_field("name"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A problem in a mirror request: the path to the value and what is wrong.
pub type Problem = (Vec<String>, String);

fn literal(text: &str) -> bool {
    !text.contains("${{")
}

/// Checks a registry name: what a reference's domain may be.
pub fn registry_problem(registry: &str) -> Option<String> {
    match Reference::parse(&format!("{registry}/x")) {
        Ok(r) if r.domain() == registry => None,
        _ => Some(format!(
            "{registry:?} is not a registry name (HOST or HOST:PORT)"
        )),
    }
}

impl MirrorRequest {
    /// Every value that cannot be right whatever expressions give:
    /// registries, repository names, regexes, the semver range, durations,
    /// platforms and digests written out.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out: Vec<Problem> = Vec::new();
        let at = |path: &[&str]| path.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        if literal(&self.from)
            && let Some(m) = registry_problem(&self.from)
        {
            out.push((at(&["from"]), m));
        }
        if self.to.is_empty() {
            out.push((at(&["to"]), "no target registry".into()));
        }
        for (i, t) in self.to.iter().enumerate() {
            let i = i.to_string();
            if literal(&t.registry)
                && let Some(m) = registry_problem(&t.registry)
            {
                out.push((at(&["to", &i, "registry"]), m));
            }
            if t.prefix.is_some() && t.rewrite.is_some() {
                out.push((
                    at(&["to", &i]),
                    "a target has a prefix or a rewrite, not both".into(),
                ));
            }
            if let Some(r) = &t.rewrite
                && literal(&r.from)
                && let Err(e) = select::regex(&r.from)
            {
                out.push((at(&["to", &i, "rewrite", "from"]), e.to_string()));
            }
        }
        match &self.repositories {
            Repositories::Catalog { catalog } => {
                if literal(catalog)
                    && let Err(e) = select::regex(catalog)
                {
                    out.push((at(&["repositories", "catalog"]), e.to_string()));
                }
            }
            Repositories::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let name = item.name();
                    if literal(name) && Reference::parse(&format!("localhost/{name}")).is_err() {
                        out.push((
                            at(&["repositories", &i.to_string()]),
                            format!("{name:?} is not a repository name"),
                        ));
                    }
                }
            }
        }
        for (key, list) in [
            ("include", &self.tags.include),
            ("exclude", &self.tags.exclude),
        ] {
            for (i, pattern) in list.iter().enumerate() {
                if literal(pattern)
                    && let Err(e) = select::regex(pattern)
                {
                    out.push((at(&["tags", key, &i.to_string()]), e.to_string()));
                }
            }
        }
        if let Some(range) = &self.tags.semver
            && literal(range)
            && let Err(e) = select::semver_range(range)
        {
            out.push((at(&["tags", "semver"]), e.to_string()));
        }
        if let Some(age) = &self.tags.newer_than
            && literal(age)
            && let Err(e) = select::duration(age)
        {
            out.push((at(&["tags", "newer_than"]), e.to_string()));
        }
        for (i, d) in self.tags.digests.iter().enumerate() {
            if literal(d) && crate::digest::parse(d).is_err() {
                out.push((
                    at(&["tags", "digests", &i.to_string()]),
                    format!("{d:?} is not a sha256 digest"),
                ));
            }
        }
        for (i, p) in self.platforms.iter().enumerate() {
            if literal(p) && Platform::parse(p).is_none() {
                out.push((
                    at(&["platforms", &i.to_string()]),
                    format!("{p:?} is not a platform: use os/arch[/variant]"),
                ));
            }
        }
        if self.concurrency == 0 {
            out.push((at(&["concurrency"]), "concurrency must be 1 or more".into()));
        }
        out
    }

    /// The selector the tag policy compiles to.
    pub fn selector(&self) -> Result<select::Selector, select::SelectError> {
        Ok(select::Selector {
            include: self
                .tags
                .include
                .iter()
                .map(|p| select::regex(p))
                .collect::<Result<_, _>>()?,
            exclude: self
                .tags
                .exclude
                .iter()
                .map(|p| select::regex(p))
                .collect::<Result<_, _>>()?,
            semver: self
                .tags
                .semver
                .as_deref()
                .map(select::semver_range)
                .transpose()?,
            latest: self.tags.latest,
            newer_than: self
                .tags
                .newer_than
                .as_deref()
                .map(select::duration)
                .transpose()?,
        })
    }
}

impl Target {
    /// The name `source` gets in this target.
    pub fn rename(&self, source: &str) -> Result<String, select::SelectError> {
        if let Some(r) = &self.rewrite {
            let re = select::regex(&r.from)?;
            return Ok(re.replace(source, r.to.as_str()).into_owned());
        }
        Ok(format!(
            "{}{source}",
            self.prefix.as_deref().unwrap_or_default()
        ))
    }
}
