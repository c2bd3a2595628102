//! Which paths slim drops: a pure function of the path and the kept locales,
//! so it is tested natively and the plugin never needs an entry's content;
//! and what slim remembers over a layer ([`Slimmer`]). Plain Rust, no
//! bindings: strata's plugin benchmark compiles this file natively to run
//! the same rules without WebAssembly.

use std::collections::HashSet;

/// Directories whose contents slim drops; the directories themselves stay so
/// that packages installed later still find them.
const DROPPED_TREES: [&str; 2] = ["usr/share/doc", "usr/share/man"];
/// The gettext catalogs: dropped but for the kept locales.
const LOCALE_TREE: &str = "usr/share/locale";
/// glibc's alias table, read by every program that calls setlocale().
const LOCALE_ALIAS: &str = "locale.alias";

/// The locales whose message catalogs stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLocales {
    /// Every directory name under `usr/share/locale` that gettext would
    /// search for one of the kept locales.
    dirs: Vec<String>,
}

impl KeptLocales {
    /// Parses the `keep-locales` setting: locale names separated by commas,
    /// blanks around them ignored.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let mut dirs = Vec::new();
        for name in setting.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.contains('/') || name == "." || name == ".." {
                return Err(format!("keep-locales: `{name}` is not a locale name"));
            }
            for dir in gettext_dirs(name) {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        Ok(Self { dirs })
    }

    fn keeps(&self, dir: &str) -> bool {
        self.dirs.iter().any(|d| d == dir)
    }
}

impl Default for KeptLocales {
    fn default() -> Self {
        Self::parse("C.UTF-8").expect("the default is a locale name")
    }
}

/// The directories gettext looks in for a locale
/// `language[_territory][.codeset][@modifier]`: every combination that keeps
/// the language, with the codeset also in gettext's normalised spelling
/// (`UTF-8` → `utf8`). Keeping `de_DE.UTF-8` thus keeps `de_DE` and `de`,
/// where Debian's packages put their German catalogs.
fn gettext_dirs(name: &str) -> Vec<String> {
    let (rest, modifier) = match name.split_once('@') {
        Some((r, m)) => (r, Some(m)),
        None => (name, None),
    };
    let (rest, codeset) = match rest.split_once('.') {
        Some((r, c)) => (r, Some(c)),
        None => (rest, None),
    };
    let (language, territory) = match rest.split_once('_') {
        Some((l, t)) => (l, Some(t)),
        None => (rest, None),
    };
    let mut codesets: Vec<Option<String>> = vec![None];
    if let Some(c) = codeset {
        codesets.push(Some(c.to_string()));
        let normalised = normalise_codeset(c);
        if normalised != c {
            codesets.push(Some(normalised));
        }
    }
    let mut dirs = Vec::new();
    for m in [modifier, None] {
        for t in [territory, None] {
            for c in &codesets {
                let mut dir = language.to_string();
                if let Some(t) = t {
                    dir.push('_');
                    dir.push_str(t);
                }
                if let Some(c) = c {
                    dir.push('.');
                    dir.push_str(c);
                }
                if let Some(m) = m {
                    dir.push('@');
                    dir.push_str(m);
                }
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    dirs
}

/// gettext's codeset normalisation: letters lowercased, digits kept, the
/// rest dropped; `iso` prefixed when only digits remain.
fn normalise_codeset(codeset: &str) -> String {
    let kept: String = codeset
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if kept.chars().all(|c| c.is_ascii_digit()) {
        format!("iso{kept}")
    } else {
        kept
    }
}

/// Whether slim drops the entry at `path` (relative to the layer's root, a
/// directory's name with or without its trailing `/`).
pub fn drops(path: &str, kept: &KeptLocales) -> bool {
    let path = path.trim_end_matches('/');
    // A whiteout deletes a path of a lower layer. strata applies slim to
    // every layer of an image, so when slim drops that path the lower
    // layer no longer has it and the whiteout can go (left alone, it makes
    // an image runtime create its directory again); otherwise dropping it
    // would bring the path back. An opaque marker goes with its directory.
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, path),
    };
    if name == ".wh..wh..opq" {
        return dir.is_some_and(|d| drops(d, kept));
    }
    if let Some(deleted) = name.strip_prefix(".wh.") {
        let target = match dir {
            Some(d) => format!("{d}/{deleted}"),
            None => deleted.to_string(),
        };
        return !deleted.is_empty() && drops(&target, kept);
    }
    for tree in DROPPED_TREES {
        if below(path, tree).is_some() {
            return true;
        }
    }
    match below(path, LOCALE_TREE) {
        None => false,
        Some(rest) => {
            let first = rest.split('/').next().unwrap_or(rest);
            !(rest == LOCALE_ALIAS || kept.keeps(first))
        }
    }
}

/// What slim does over one layer: its decisions, and what it dropped.
#[derive(Debug, Default)]
pub struct Slimmer {
    /// The locales whose catalogs stay.
    pub kept: KeptLocales,
    /// Entries dropped so far.
    pub dropped: u64,
    /// Their content bytes.
    pub dropped_bytes: u64,
    /// Files dropped so far: a later hard link to one of them cannot be
    /// written.
    dropped_files: HashSet<String>,
}

impl Slimmer {
    /// A layer's slimmer, keeping `kept`.
    pub fn new(kept: KeptLocales) -> Self {
        Self {
            kept,
            ..Self::default()
        }
    }

    /// Whether to drop the entry at `path` (`size` content bytes; `file`
    /// for a regular file; `hardlink_to` the path a hard link names). A kept
    /// hard link to a dropped file is an error naming both.
    pub fn drops(
        &mut self,
        path: &str,
        size: u64,
        file: bool,
        hardlink_to: Option<&str>,
    ) -> Result<bool, String> {
        if drops(path, &self.kept) {
            self.dropped += 1;
            self.dropped_bytes += size;
            if file {
                self.dropped_files.insert(path.to_string());
            }
            return Ok(true);
        }
        if let Some(target) = hardlink_to
            && self.dropped_files.contains(target)
        {
            return Err(format!(
                "hard link {path} names {target}, which slim dropped: the link cannot be written"
            ));
        }
        Ok(false)
    }
}

/// The part of `path` below the directory `tree`, if `path` is strictly
/// inside it.
fn below<'p>(path: &'p str, tree: &str) -> Option<&'p str> {
    path.strip_prefix(tree)?
        .strip_prefix('/')
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_and_manuals_go_but_their_directories_stay() {
        let kept = KeptLocales::default();
        assert!(drops("usr/share/doc/libc6/copyright", &kept));
        assert!(drops("usr/share/doc/libc6/", &kept));
        assert!(drops("usr/share/man/man1/ls.1.gz", &kept));
        assert!(!drops("usr/share/doc", &kept));
        assert!(!drops("usr/share/doc/", &kept));
        assert!(!drops("usr/share/man/", &kept));
        assert!(!drops("usr/share/documentation/x", &kept));
        assert!(!drops("usr/bin/man", &kept));
        assert!(!drops("usr/share/doc-base/x", &kept));
    }

    #[test]
    fn a_whiteout_goes_only_with_the_path_it_deletes() {
        let kept = KeptLocales::parse("de").unwrap();
        assert!(drops("usr/share/doc/bash/.wh.NEWS.gz", &kept));
        assert!(drops("usr/share/doc/bash/.wh..wh..opq", &kept));
        assert!(drops("usr/share/locale/fr/.wh.LC_MESSAGES", &kept));
        assert!(drops("usr/share/doc/.wh.bash", &kept));
        // What slim keeps stays deleted.
        assert!(!drops("usr/share/doc/.wh..wh..opq", &kept));
        assert!(!drops("usr/share/.wh.doc", &kept));
        assert!(!drops("usr/share/locale/de/.wh.LC_MESSAGES", &kept));
        assert!(!drops("usr/share/locale/.wh.locale.alias", &kept));
        assert!(!drops("etc/.wh.motd", &kept));
        assert!(!drops(".wh.etc", &kept));
        assert!(!drops("usr/share/locale/.wh..wh..opq", &kept));
    }

    #[test]
    fn by_default_every_catalog_goes_but_the_alias_table() {
        let kept = KeptLocales::default();
        assert!(drops("usr/share/locale/de/LC_MESSAGES/coreutils.mo", &kept));
        assert!(drops("usr/share/locale/pt_BR/", &kept));
        assert!(drops("usr/share/locale/sr@latin/LC_MESSAGES/x.mo", &kept));
        assert!(!drops("usr/share/locale", &kept));
        assert!(!drops("usr/share/locale/", &kept));
        assert!(!drops("usr/share/locale/locale.alias", &kept));
        assert!(!drops("usr/share/locale/C.UTF-8/LC_MESSAGES/x.mo", &kept));
        assert!(!drops("usr/lib/locale/C.utf8/LC_CTYPE", &kept));
    }

    #[test]
    fn a_kept_locale_keeps_every_directory_gettext_searches_for_it() {
        let kept = KeptLocales::parse(" de_DE.UTF-8 , sr@latin").unwrap();
        for dir in [
            "de_DE.UTF-8",
            "de_DE.utf8",
            "de_DE",
            "de.UTF-8",
            "de",
            "sr@latin",
            "sr",
        ] {
            assert!(
                !drops(&format!("usr/share/locale/{dir}/LC_MESSAGES/x.mo"), &kept),
                "{dir}"
            );
        }
        for dir in ["de_AT", "fr", "sr_RS", "C.UTF-8"] {
            assert!(
                drops(&format!("usr/share/locale/{dir}/LC_MESSAGES/x.mo"), &kept),
                "{dir}"
            );
        }
    }

    #[test]
    fn codesets_normalise_as_gettext_does() {
        assert_eq!(normalise_codeset("UTF-8"), "utf8");
        assert_eq!(normalise_codeset("8859-1"), "iso88591");
        assert_eq!(normalise_codeset("ISO-8859-15"), "iso885915");
    }

    #[test]
    fn locale_names_with_a_slash_are_refused() {
        assert!(KeptLocales::parse("de,../etc").is_err());
        assert!(KeptLocales::parse("..").is_err());
        assert_eq!(KeptLocales::parse("").unwrap().dirs, Vec::<String>::new());
    }
}
