//! The local time zone's offset and abbreviation ("UTC", "CET", "PDT") at an
//! instant, for Go's `Time.String()` and `Format(time.RFC3339)`.
//!
//! jiff finds the zone as Go's `time.Local` does (`$TZ`, a name under the
//! zoneinfo directories or a path, else `/etc/localtime`) and gives both the
//! offset and the name in force from the same TZif data.

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The zone Go's `time.Local` loads; UTC when `$TZ` names nothing readable,
/// as Go falls back.
pub(crate) fn local_zone() -> &'static TimeZone {
    static LOCAL: OnceLock<TimeZone> = OnceLock::new();
    LOCAL.get_or_init(|| TimeZone::try_system().unwrap_or(TimeZone::UTC))
}

/// The offset (seconds east of UTC) and the abbreviation in force in `zone`
/// at `utc` (Unix seconds). An instant beyond jiff's range (years past
/// ±9999) is shown in UTC.
pub(crate) fn offset_and_name(zone: &TimeZone, utc: i64) -> (i32, String) {
    match Timestamp::from_second(utc) {
        Ok(at) => {
            let info = zone.to_offset_info(at);
            (info.offset().seconds(), info.abbreviation().to_string())
        }
        Err(_) => (0, "UTC".to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a version 2 TZif file with the given transitions, types and
    /// footer; the version 1 block is the minimal one RFC 8536 allows.
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
        // The version 1 block as RFC 8536 allows for version 2+ files: one
        // unnamed UTC type, nothing else.
        let mut out = header(0, 1, 1);
        out.extend_from_slice(&[0; 7]);
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

    /// A cut-down Europe/Berlin: LMT until 1893, CET/CEST by table in 1980
    /// and 2021, then by the footer's rule.
    pub(crate) fn berlin() -> TimeZone {
        let data = tzif(
            &[
                (-2_422_054_408, 1),
                (323_830_800, 2),
                (338_950_800, 1),
                (1_616_893_200, 2),
                (1_635_642_000, 1),
            ],
            &[
                (3208, false, "LMT"),
                (3600, false, "CET"),
                (7200, true, "CEST"),
            ],
            "CET-1CEST,M3.5.0,M10.5.0/3",
        );
        TimeZone::tzif("Europe/Berlin", &data).expect("valid TZif")
    }

    #[test]
    fn names_from_transitions_and_footer() {
        let zone = berlin();
        let at = |utc| offset_and_name(&zone, utc);
        // Before the first transition: the first type, LMT.
        assert_eq!(at(-3_000_000_000), (3208, "LMT".into()));
        // Between transitions (1980-06-01): the table says CEST.
        assert_eq!(at(328_665_600), (7200, "CEST".into()));
        // After the last transition the footer's rule names the zone.
        assert_eq!(at(1_656_633_600), (7200, "CEST".into()));
        assert_eq!(at(1_672_531_200), (3600, "CET".into()));
    }

    #[test]
    fn a_quoted_footer_name_and_utc() {
        let india = TimeZone::tzif("x", &tzif(&[], &[(19800, false, "+0530")], "<+0530>-5:30"))
            .expect("valid TZif");
        assert_eq!(offset_and_name(&india, 0), (19800, "+0530".into()));
        assert_eq!(
            offset_and_name(&TimeZone::UTC, 1_640_995_200),
            (0, "UTC".into())
        );
        // Past jiff's range: UTC rather than a wrong name.
        assert_eq!(offset_and_name(&india, i64::MAX), (0, "UTC".into()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(TimeZone::tzif("x", b"not a tzif file").is_err());
        assert!(TimeZone::tzif("x", b"TZif2").is_err());
    }
}
