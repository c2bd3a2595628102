//! Content digests: parsing, hashing while bytes flow, and verification.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

pub use oci_spec::image::Digest;

/// Errors about digests themselves (not about content that fails to match one).
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The text is not `algorithm:hex`.
    #[error("invalid digest {0:?}")]
    Invalid(String),
    /// The algorithm is valid but strata does not compute it.
    #[error("unsupported digest algorithm in {0:?}: strata handles sha256 only")]
    Unsupported(String),
}

/// Parses a digest strata can verify (sha256 with 64 lowercase hex digits).
pub fn parse(s: &str) -> Result<Digest, DigestError> {
    let d: Digest = s.parse().map_err(|_| DigestError::Invalid(s.to_string()))?;
    if d.algorithm().as_ref() != "sha256" {
        return Err(DigestError::Unsupported(s.to_string()));
    }
    let hex = d.digest();
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(DigestError::Invalid(s.to_string()));
    }
    Ok(d)
}

/// The sha256 digest of a byte slice.
pub fn sha256_of(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new();
    h.update(bytes);
    h.finish()
}

/// Builds a sha256 digest from a lowercase hex string already known to be valid.
fn from_hex(hex: &str) -> Digest {
    // The hex comes from our own hasher, so it always parses.
    format!("sha256:{hex}")
        .parse()
        .unwrap_or_else(|_| unreachable!("sha256 output is valid hex"))
}

/// An incremental sha256 that also counts bytes.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }
    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        from_hex(&hex::encode(self.inner.finalize()))
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    /// True when nothing was read yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    /// The digest of what was read, and the inner reader.
    pub fn finish(self) -> (Digest, u64, R) {
        let len = self.hasher.len();
        (self.hasher.finish(), len, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// The digest and length of what was written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        let len = self.hasher.len();
        (self.hasher.finish(), len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that checks that the bytes have the expected digest and size.
/// The digest is checked as soon as the announced size has passed, so a
/// consumer that reads exactly `size` bytes still gets the check; more bytes
/// than announced fail at once, so a lying source cannot make a sink write
/// without bound.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    read: u64,
    expected: Digest,
    size: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting `size` bytes with digest `expected`.
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        Self {
            inner,
            hasher: Some(Hasher::new()),
            read: 0,
            expected,
            size,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(invalid_data(format!(
                "{} has more than the {} bytes its descriptor announces",
                self.expected, self.size
            )));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if self.read == self.size {
            if let Some(h) = self.hasher.take() {
                let got = h.finish();
                if got != self.expected {
                    return Err(invalid_data(format!(
                        "content does not match its digest: expected {}, got {got}",
                        self.expected
                    )));
                }
            }
        } else if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended after {} of its {} bytes",
                    self.expected, self.read, self.size
                ),
            ));
        }
        Ok(n)
    }
}

/// An `InvalidData` I/O error with a message.
pub fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_is_the_well_known_value() {
        assert_eq!(
            sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_rejects_short_upper_and_other_algorithms() {
        assert!(parse("sha256:abc").is_err());
        assert!(parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(matches!(
            parse(&format!("sha512:{}", "a".repeat(128))),
            Err(DigestError::Unsupported(_))
        ));
        assert!(parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn verifying_reader_accepts_matching_content() {
        let data = b"hello world".to_vec();
        let d = sha256_of(&data);
        let mut r = VerifyingReader::new(&data[..], d, data.len() as u64);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn verifying_reader_rejects_wrong_digest_short_and_long_content() {
        let data = b"hello world".to_vec();
        let wrong = sha256_of(b"other");
        let err = VerifyingReader::new(&data[..], wrong, 11)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");

        let d = sha256_of(&data);
        let err = VerifyingReader::new(&data[..5], d.clone(), 11)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let err = VerifyingReader::new(&data[..], d, 5)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
