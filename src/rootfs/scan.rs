//! Scanning a layer as it streams into the store: its diff ID (the digest
//! of the uncompressed tar) and its unpacked size, counted the way docker
//! counts it, so `images` and `history` never reread layers.

use std::io::{self, BufRead, Read};

use tar::EntryType;

use super::RootfsError;
use crate::compression::{self, Compression};
use crate::digest::{Digest, HashingReader};

/// What scanning a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    /// How the layer blob was compressed.
    pub compression: Compression,
    /// Digest of the uncompressed tar, or `None` when the blob was not
    /// compressed (its diff ID is then the blob's own digest, which the caller
    /// already hashes).
    pub diff_id: Option<Digest>,
    /// The layer's size as docker reports it: the sum of the sizes of its
    /// non-directory entries, a symlink counting the length of its target and
    /// a hardlink counting nothing (its target is counted once).
    pub unpacked_size: u64,
    /// Number of tar entries.
    pub entries: u64,
}

/// Reads a whole layer blob (compressed or not), returning its stats.
pub fn scan_layer<R: BufRead + Send>(blob: R) -> Result<LayerStats, RootfsError> {
    let (compression, decoded) = compression::auto_decoder(blob).map_err(RootfsError::Read)?;
    if compression == Compression::None {
        let (size, entries, _) = walk(decoded)?;
        return Ok(LayerStats {
            compression,
            diff_id: None,
            unpacked_size: size,
            entries,
        });
    }
    let (size, entries, hashing) = walk(HashingReader::new(decoded))?;
    let (diff_id, _, _) = hashing.finish();
    Ok(LayerStats {
        compression,
        diff_id: Some(diff_id),
        unpacked_size: size,
        entries,
    })
}

/// Walks every entry, then drains what follows the end-of-archive marker so
/// that a hashing reader below sees the whole stream.
fn walk<R: Read>(r: R) -> Result<(u64, u64, R), RootfsError> {
    let mut archive = tar::Archive::new(r);
    let mut size = 0u64;
    let mut count = 0u64;
    let tar_err = |entries, source| RootfsError::Tar { entries, source };
    for entry in archive.entries().map_err(|e| tar_err(count, e))? {
        let entry = entry.map_err(|e| tar_err(count, e))?;
        count += 1;
        size += match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => entry.size(),
            EntryType::Symlink => entry
                .link_name_bytes()
                .map(|target| target.len() as u64)
                .unwrap_or(0),
            _ => 0,
        };
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(RootfsError::Read)?;
    Ok((size, count, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample_layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        b.append_data(&mut dir, "etc/", io::empty()).unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_size(1000);
        file.set_mode(0o644);
        b.append_data(&mut file, "etc/data", &[7u8; 1000][..])
            .unwrap();
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(EntryType::Link);
        link.set_size(0);
        b.append_link(&mut link, "etc/data2", "etc/data").unwrap();
        let mut sym = tar::Header::new_ustar();
        sym.set_entry_type(EntryType::Symlink);
        sym.set_size(0);
        b.append_link(&mut sym, "etc/ptr", "data").unwrap();
        let mut wh = tar::Header::new_ustar();
        wh.set_size(0);
        b.append_data(&mut wh, "etc/.wh.gone", io::empty()).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn counts_files_once_and_symlinks_by_target_length() {
        let layer = sample_layer();
        let stats = scan_layer(&layer[..]).unwrap();
        assert_eq!(stats.compression, Compression::None);
        assert_eq!(stats.diff_id, None);
        assert_eq!(stats.unpacked_size, 1000 + 4);
        assert_eq!(stats.entries, 5);
    }

    #[test]
    fn gzip_layer_yields_the_uncompressed_digest() {
        let layer = sample_layer();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).unwrap();
        let stats = scan_layer(&gz.finish().unwrap()[..]).unwrap();
        assert_eq!(stats.compression, Compression::Gzip);
        assert_eq!(stats.diff_id, Some(crate::digest::sha256_of(&layer)));
        assert_eq!(stats.unpacked_size, 1004);
    }

    #[test]
    fn garbage_is_not_a_layer() {
        let err = scan_layer(&b"{\"this\": \"is json, not a tar\"}"[..]).unwrap_err();
        assert!(matches!(err, RootfsError::Tar { .. }), "{err}");
    }
}
