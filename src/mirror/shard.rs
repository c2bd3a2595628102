//! Scale-out without a coordinator: a mirror's repositories are cut into N
//! disjoint shards by a stable hash of the source repository name, so N
//! workers of an existing engine (a Kubernetes Indexed Job, a CI matrix)
//! each take one and together cover all. Whole repositories go to one
//! shard, so the blobs their tags share are deduplicated and mounted
//! inside it.

use sha2::{Digest as _, Sha256};

/// Shard `index` of `count` (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker's shard, from 0.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

/// Why a shard setting is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid shard {0:?}: use I/N with 0 <= I < N (e.g. 0/4)")]
pub struct ShardError(pub String);

impl Shard {
    /// Parses `I/N`.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError(text.to_string());
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count).ok_or_else(bad)
    }

    /// Shard `index` of `count`, when `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (count > 0 && index < count).then_some(Shard { index, count })
    }

    /// Whether `repository` (its name on the source) is this shard's.
    pub fn owns(&self, repository: &str) -> bool {
        shard_of(repository, self.count) == self.index
    }
}

/// The shard of `repository` among `count`: the first eight bytes of its
/// name's SHA-256, modulo `count` — the same on every machine and release.
pub fn shard_of(repository: &str, count: u32) -> u32 {
    let hash = Sha256::digest(repository.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_together_complete() {
        let repos: Vec<String> = (0..200).map(|i| format!("team/app{i}")).collect();
        let count = 4;
        let mut seen = vec![0; repos.len()];
        for index in 0..count {
            let s = Shard::new(index, count).unwrap();
            for (i, r) in repos.iter().enumerate() {
                if s.owns(r) {
                    seen[i] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        // Every shard gets a fair share of 200 names.
        for index in 0..count {
            let n = repos.iter().filter(|r| shard_of(r, count) == index).count();
            assert!((25..=75).contains(&n), "shard {index}: {n}");
        }
    }

    #[test]
    fn the_hash_is_stable() {
        // Pinned: changing it would move repositories between shards of
        // workers running different releases.
        assert_eq!(
            shard_of("library/nginx", 1000),
            shard_of("library/nginx", 1000)
        );
        let expected = {
            let h = Sha256::digest(b"library/nginx");
            (u64::from_be_bytes(h[..8].try_into().unwrap()) % 7) as u32
        };
        assert_eq!(shard_of("library/nginx", 7), expected);
    }

    #[test]
    fn parsing() {
        assert_eq!(Shard::parse("1/3").unwrap(), Shard { index: 1, count: 3 });
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("x").is_err());
        assert!(Shard::parse("-1/2").is_err());
    }
}
