//! Time zone abbreviations ("UTC", "CET", "PDT") for Go's `Time.String()`.
//!
//! chrono computes local offsets but does not expose zone abbreviations, so
//! this reads the same TZif file Go's `time.Local` would load and picks the
//! abbreviation in force at an instant. chrono's offset stays authoritative:
//! a name is only used when its offset agrees with chrono's.

use std::sync::OnceLock;

/// One local time type of a TZif file.
#[derive(Debug, Clone, PartialEq)]
struct ZoneType {
    /// Seconds east of UTC.
    offset: i32,
    is_dst: bool,
    abbreviation: String,
}

/// The parts of a TZif file needed to name the zone at an instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Zone {
    /// Transition instants (Unix seconds) and the type index they switch to.
    transitions: Vec<(i64, usize)>,
    types: Vec<ZoneType>,
    /// The POSIX TZ string from a version 2+ footer, for instants after the
    /// last transition.
    footer: Option<String>,
}

impl Zone {
    /// Parses TZif data (RFC 8536), preferring the 64-bit block of version 2+
    /// files as Go does.
    pub(crate) fn parse(data: &[u8]) -> Option<Zone> {
        let (header, mut rest) = Header::read(data)?;
        if header.version >= 2 {
            rest = rest.get(header.body_len(4)..)?;
            let (header, rest) = Header::read(rest)?;
            let (zone, rest) = Zone::read_body(&header, rest, 8)?;
            let footer = footer(rest);
            return Some(Zone { footer, ..zone });
        }
        Zone::read_body(&header, rest, 4).map(|(zone, _)| zone)
    }

    fn read_body<'a>(
        header: &Header,
        data: &'a [u8],
        time_size: usize,
    ) -> Option<(Zone, &'a [u8])> {
        let mut reader = Reader { data };
        let mut times = Vec::with_capacity(header.time_count);
        for _ in 0..header.time_count {
            let bytes = reader.take(time_size)?;
            let time = if time_size == 8 {
                i64::from_be_bytes(bytes.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(bytes.try_into().ok()?))
            };
            times.push(time);
        }
        let indices = reader.take(header.time_count)?;
        let mut raw_types = Vec::with_capacity(header.type_count);
        for _ in 0..header.type_count {
            let bytes = reader.take(6)?;
            let offset = i32::from_be_bytes(bytes[0..4].try_into().ok()?);
            raw_types.push((offset, bytes[4] != 0, usize::from(bytes[5])));
        }
        let chars = reader.take(header.char_count)?;
        reader.take(header.leap_count * (time_size + 4))?;
        reader.take(header.std_count + header.ut_count)?;

        let types = raw_types
            .into_iter()
            .map(|(offset, is_dst, start)| {
                let tail = chars.get(start..).unwrap_or_default();
                let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
                ZoneType {
                    offset,
                    is_dst,
                    abbreviation: String::from_utf8_lossy(&tail[..end]).into_owned(),
                }
            })
            .collect::<Vec<_>>();
        let mut transitions = Vec::with_capacity(times.len());
        for (time, &index) in times.into_iter().zip(indices) {
            if usize::from(index) >= types.len() {
                return None;
            }
            transitions.push((time, usize::from(index)));
        }
        Some((
            Zone {
                transitions,
                types,
                footer: None,
            },
            reader.data,
        ))
    }

    /// The abbreviation Go prints for the instant `utc` (Unix seconds) whose
    /// offset chrono computed as `offset` seconds east of UTC.
    pub(crate) fn abbreviation(&self, utc: i64, offset: i32) -> Option<String> {
        if let Some(name) = self.go_lookup(utc, offset) {
            return Some(name);
        }
        // chrono and the table disagree (for example a rule change the file
        // predates): fall back to any type of this zone with that offset.
        self.types
            .iter()
            .rev()
            .find(|t| t.offset == offset)
            .map(|t| t.abbreviation.clone())
    }

    /// Go's `Location.lookup`, accepted only when its offset matches.
    fn go_lookup(&self, utc: i64, offset: i32) -> Option<String> {
        let after_last = self.transitions.last().is_none_or(|&(when, _)| utc >= when);
        let before_first = self.transitions.first().is_none_or(|&(when, _)| utc < when);
        if after_last && let Some(footer) = &self.footer {
            let rule = PosixRule::parse(footer)?;
            if rule.std_offset == offset {
                return Some(rule.std_name);
            }
            return rule
                .dst
                .filter(|(_, dst_offset)| *dst_offset == offset)
                .map(|(name, _)| name);
        }
        let index = if before_first {
            self.first_zone()
        } else {
            let next = self.transitions.partition_point(|&(when, _)| when <= utc);
            self.transitions.get(next.checked_sub(1)?)?.1
        };
        let zone = self.types.get(index)?;
        (zone.offset == offset).then(|| zone.abbreviation.clone())
    }

    /// Go's `lookupFirstZone`: the type in force before the first transition.
    fn first_zone(&self) -> usize {
        if !self.transitions.iter().any(|&(_, index)| index == 0) {
            return 0;
        }
        if let Some(&(_, first)) = self.transitions.first()
            && self.types.get(first).is_some_and(|t| t.is_dst)
            && let Some(index) = (0..first).rev().find(|&i| !self.types[i].is_dst)
        {
            return index;
        }
        self.types.iter().position(|t| !t.is_dst).unwrap_or(0)
    }
}

/// The counts from a TZif header.
struct Header {
    version: u8,
    ut_count: usize,
    std_count: usize,
    leap_count: usize,
    time_count: usize,
    type_count: usize,
    char_count: usize,
}

impl Header {
    fn read(data: &[u8]) -> Option<(Header, &[u8])> {
        if data.get(0..4)? != b"TZif" {
            return None;
        }
        let version = match data.get(4)? {
            0 => 1,
            v => v.checked_sub(b'0')?,
        };
        let count = |i: usize| -> Option<usize> {
            let at = 20 + 4 * i;
            let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(bytes)).ok()
        };
        let header = Header {
            version,
            ut_count: count(0)?,
            std_count: count(1)?,
            leap_count: count(2)?,
            time_count: count(3)?,
            type_count: count(4)?,
            char_count: count(5)?,
        };
        Some((header, data.get(44..)?))
    }

    fn body_len(&self, time_size: usize) -> usize {
        self.time_count * (time_size + 1)
            + self.type_count * 6
            + self.char_count
            + self.leap_count * (time_size + 4)
            + self.std_count
            + self.ut_count
    }
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }
}

/// The footer's POSIX TZ string, between two newlines.
fn footer(data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    let inner = text.strip_prefix('\n')?;
    let end = inner.find('\n')?;
    let tz = &inner[..end];
    (!tz.is_empty()).then(|| tz.to_string())
}

/// Names and offsets of a POSIX TZ string such as `CET-1CEST,M3.5.0,M10.5.0/3`.
/// The transition rules are not needed: chrono's offset picks the name.
#[derive(Debug, PartialEq)]
struct PosixRule {
    std_name: String,
    std_offset: i32,
    dst: Option<(String, i32)>,
}

impl PosixRule {
    fn parse(s: &str) -> Option<PosixRule> {
        let (std_name, rest) = posix_name(s)?;
        let (west, rest) = posix_offset(rest)?;
        let std_offset = -west;
        if rest.is_empty() || rest.starts_with(',') {
            return Some(PosixRule {
                std_name,
                std_offset,
                dst: None,
            });
        }
        let (dst_name, rest) = posix_name(rest)?;
        let dst_offset = match posix_offset(rest) {
            Some((west, _)) => -west,
            None => std_offset + 3600,
        };
        Some(PosixRule {
            std_name,
            std_offset,
            dst: Some((dst_name, dst_offset)),
        })
    }
}

fn posix_name(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((rest[..end].to_string(), &rest[end + 1..]));
    }
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    (end >= 3).then(|| (s[..end].to_string(), &s[end..]))
}

/// Parses `[+-]hh[:mm[:ss]]`, returning seconds *west* of UTC as POSIX does.
fn posix_offset(s: &str) -> Option<(i32, &str)> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let mut seconds = 0;
    for (i, part) in rest[..end].split(':').take(3).enumerate() {
        let n: i32 = part.parse().ok()?;
        seconds += n * [3600, 60, 1][i];
    }
    Some((sign * seconds, &rest[end..]))
}

/// The zone Go's `time.Local` loads: `$TZ` (a leading `:` dropped; an absolute
/// path, or a name under the zoneinfo directories) or `/etc/localtime` when
/// `TZ` is unset. `None` means Go would use UTC.
pub(crate) fn local_zone() -> Option<&'static Zone> {
    static LOCAL: OnceLock<Option<Zone>> = OnceLock::new();
    LOCAL.get_or_init(load_local_zone).as_ref()
}

fn load_local_zone() -> Option<Zone> {
    let read = |path: &str| std::fs::read(path).ok().and_then(|data| Zone::parse(&data));
    let tz = match std::env::var("TZ") {
        Err(std::env::VarError::NotPresent) => return read("/etc/localtime"),
        Err(std::env::VarError::NotUnicode(_)) => return None,
        Ok(tz) => tz,
    };
    let tz = tz.strip_prefix(':').unwrap_or(&tz);
    if tz.is_empty() || tz == "UTC" {
        return None;
    }
    if tz.starts_with('/') {
        return read(tz);
    }
    [
        "/usr/share/zoneinfo/",
        "/usr/share/lib/zoneinfo/",
        "/usr/lib/locale/TZ/",
        "/etc/zoneinfo/",
    ]
    .iter()
    .find_map(|dir| read(&format!("{dir}{tz}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a version 2 TZif file with the given transitions, types and
    /// footer; the version 1 block is left empty, as RFC 8536 allows.
    pub(crate) fn tzif(
        transitions: &[(i64, u8)],
        types: &[(i32, bool, &str)],
        footer: &str,
    ) -> Vec<u8> {
        let mut chars = Vec::new();
        let mut type_bytes = Vec::new();
        for &(offset, is_dst, name) in types {
            type_bytes.extend_from_slice(&offset.to_be_bytes());
            type_bytes.push(u8::from(is_dst));
            type_bytes.push(u8::try_from(chars.len()).expect("short test data"));
            chars.extend_from_slice(name.as_bytes());
            chars.push(0);
        }
        let header = |times: usize, types: usize, chars: usize| {
            let mut h = b"TZif2".to_vec();
            h.extend_from_slice(&[0; 15]);
            for count in [0, 0, 0, times, types, chars] {
                h.extend_from_slice(&u32::try_from(count).expect("small").to_be_bytes());
            }
            h
        };
        let mut out = header(0, 0, 0);
        out.extend(header(transitions.len(), types.len(), chars.len()));
        for &(when, _) in transitions {
            out.extend_from_slice(&when.to_be_bytes());
        }
        out.extend(transitions.iter().map(|&(_, index)| index));
        out.extend(type_bytes);
        out.extend(chars);
        out.push(b'\n');
        out.extend_from_slice(footer.as_bytes());
        out.push(b'\n');
        out
    }

    /// A cut-down Europe/Berlin: LMT until 1893, then CET/CEST by rule.
    pub(crate) fn berlin() -> Zone {
        let data = tzif(
            &[(-2_422_054_408, 1), (323_830_800, 2), (338_950_800, 1)],
            &[
                (3208, false, "LMT"),
                (3600, false, "CET"),
                (7200, true, "CEST"),
            ],
            "CET-1CEST,M3.5.0,M10.5.0/3",
        );
        Zone::parse(&data).expect("valid TZif")
    }

    #[test]
    fn names_from_transitions_and_footer() {
        let zone = berlin();
        // Before the first transition: the first zone, LMT.
        assert_eq!(
            zone.abbreviation(-3_000_000_000, 3208).as_deref(),
            Some("LMT")
        );
        // Between transitions (1980-06-01): the table says CEST.
        assert_eq!(
            zone.abbreviation(328_665_600, 7200).as_deref(),
            Some("CEST")
        );
        // After the last transition the footer names the zone.
        assert_eq!(
            zone.abbreviation(1_634_004_220, 7200).as_deref(),
            Some("CEST")
        );
        assert_eq!(
            zone.abbreviation(1_640_995_200, 3600).as_deref(),
            Some("CET")
        );
        // An offset the zone never uses has no name.
        assert_eq!(zone.abbreviation(1_640_995_200, 19800), None);
    }

    #[test]
    fn posix_rules() {
        assert_eq!(
            PosixRule::parse("CET-1CEST,M3.5.0,M10.5.0/3"),
            Some(PosixRule {
                std_name: "CET".into(),
                std_offset: 3600,
                dst: Some(("CEST".into(), 7200)),
            })
        );
        assert_eq!(
            PosixRule::parse("<+0530>-5:30"),
            Some(PosixRule {
                std_name: "+0530".into(),
                std_offset: 19800,
                dst: None,
            })
        );
        assert_eq!(
            PosixRule::parse("PST8PDT7,M3.2.0,M11.1.0"),
            Some(PosixRule {
                std_name: "PST".into(),
                std_offset: -28800,
                dst: Some(("PDT".into(), -25200)),
            })
        );
        assert_eq!(
            PosixRule::parse("UTC0").map(|r| r.std_name),
            Some("UTC".to_string())
        );
        assert_eq!(PosixRule::parse("X0"), None);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Zone::parse(b"not a tzif file"), None);
        assert_eq!(Zone::parse(b"TZif2"), None);
    }
}
