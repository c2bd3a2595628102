//! Compression formats, recognised by their magic bytes rather than by names.

use std::io::{self, BufRead, Read};

/// A stream compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (RFC 1952), possibly several members as pigz writes.
    Gzip,
    /// Zstandard.
    Zstd,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
}

impl Compression {
    /// Recognises a format from the first bytes of a stream (at least 6 give a sure answer).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// The name users write on the command line and see in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }

    /// Wraps `r` in a decoder for this format.
    pub fn decoder<'a, R: BufRead + Send + 'a>(
        self,
        r: R,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
        })
    }
}

/// Peeks at a buffered reader's first bytes and returns a reader that yields
/// the decompressed stream, with the format that was found.
pub fn auto_decoder<'a, R: BufRead + Send + 'a>(
    mut r: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let head = r.fill_buf()?;
    let c = Compression::detect(head);
    Ok((c, c.decoder(r)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Write};

    fn roundtrip(c: Compression, packed: Vec<u8>) {
        assert_eq!(Compression::detect(&packed), c);
        let (found, mut r) = auto_decoder(BufReader::new(&packed[..])).unwrap();
        assert_eq!(found, c);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"strata layer bytes".repeat(100));
    }

    #[test]
    fn detects_and_decodes_every_format() {
        let data = b"strata layer bytes".repeat(100);
        roundtrip(Compression::None, data.clone());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        roundtrip(Compression::Gzip, gz.finish().unwrap());

        roundtrip(Compression::Zstd, zstd::encode_all(&data[..], 3).unwrap());

        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data).unwrap();
        roundtrip(Compression::Bzip2, bz.finish().unwrap());

        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        roundtrip(Compression::Xz, xz.finish().unwrap());
    }

    #[test]
    fn gzip_with_several_members_decodes_whole() {
        let mut packed = Vec::new();
        for part in [
            &b"strata layer bytes".repeat(60)[..],
            &b"strata layer bytes".repeat(40)[..],
        ] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).unwrap();
            packed.extend(gz.finish().unwrap());
        }
        roundtrip(Compression::Gzip, packed);
    }
}
