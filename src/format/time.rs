//! Timestamps in Go's layouts, as docker prints them.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike};
use jiff::tz::TimeZone;

use super::tz;

/// Go's `time.RFC3339Nano`, as docker inspect shows `Created`:
/// `2021-10-12T02:03:40.360294686Z`. The fraction drops trailing zeros (and
/// the dot when it is zero); a zero offset prints `Z`, others `+08:00`.
pub fn rfc3339_nano(t: &DateTime<FixedOffset>) -> String {
    let offset = t.offset().local_minus_utc();
    format!(
        "{}{}{}",
        date_time(&t.naive_local(), 'T'),
        fraction(t.nanosecond()),
        offset_z(offset)
    )
}

/// Go's `Format(time.RFC3339)` in the local time zone, seconds precision:
/// the CREATED column of `docker history --human=false`.
pub fn rfc3339_local(t: &DateTime<FixedOffset>) -> String {
    let (offset, _) = tz::offset_and_name(tz::local_zone(), t.timestamp());
    format!(
        "{}{}",
        date_time(&wall_at(t, offset), 'T'),
        offset_z(offset)
    )
}

/// The wall-clock time of `t` at `offset` seconds east of UTC.
fn wall_at(t: &DateTime<FixedOffset>, offset: i32) -> NaiveDateTime {
    match FixedOffset::east_opt(offset) {
        Some(zone) => t.with_timezone(&zone).naive_local(),
        None => t.naive_utc(),
    }
}

/// Go's `time.Time.String()` in the local time zone, as docker images prints
/// `CreatedAt`: `2021-10-12 02:03:40 +0000 UTC`.
///
/// The offset and the zone's abbreviation both come from the zone Go's
/// `time.Local` would load (`$TZ` or `/etc/localtime`, read by jiff), "UTC"
/// when there is none. A `TZ` that is a bare POSIX rule (`EST5EDT,M3.2.0,…`)
/// rather than a zone name is applied here, where Go would fall back to UTC.
/// docker's value has no fraction because the API reports whole seconds; a
/// `t` with nanoseconds prints them as Go would.
pub fn go_time_string(t: &DateTime<FixedOffset>) -> String {
    time_string(t, tz::local_zone())
}

/// `Time.String()` of a time Go decoded from RFC 3339 `text`: in UTC when
/// the text says `Z`, else in a zone with no name (Go prints the offset
/// twice). `None` when the text is not RFC 3339.
pub(crate) fn go_decoded_time_string(text: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(text).ok()?;
    let offset = t.offset().local_minus_utc();
    let name = if text.ends_with('Z') || text.ends_with('z') {
        "UTC".to_string()
    } else {
        offset_numeric(offset)
    };
    Some(format!(
        "{}{} {} {name}",
        date_time(&t.naive_local(), ' '),
        fraction(t.nanosecond()),
        offset_numeric(offset),
    ))
}

/// `Time.String()` of `t` in `zone`.
fn time_string(t: &DateTime<FixedOffset>, zone: &TimeZone) -> String {
    let (offset, name) = tz::offset_and_name(zone, t.timestamp());
    format!(
        "{}{} {} {}",
        date_time(&wall_at(t, offset), ' '),
        fraction(t.nanosecond()),
        offset_numeric(offset),
        // Go prints the numeric offset for a zone with no name.
        if name.is_empty() {
            offset_numeric(offset)
        } else {
            name
        }
    )
}

/// `2006-01-02T15:04:05` with Go's year rules: at least four digits, a
/// leading `-` for years before 1 AD.
fn date_time(t: &NaiveDateTime, separator: char) -> String {
    let year = t.year();
    let sign = if year < 0 { "-" } else { "" };
    format!(
        "{sign}{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}",
        year.unsigned_abs(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Go's `.999999999`: the fraction without trailing zeros, empty when zero.
fn fraction(nanos: u32) -> String {
    // chrono encodes a leap second as nanos >= 1e9; Go has no leap seconds.
    let nanos = nanos.min(999_999_999);
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// Go's `Z07:00`.
fn offset_z(offset: i32) -> String {
    if offset == 0 {
        return "Z".to_string();
    }
    let (sign, minutes) = split_offset(offset);
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Go's `-0700`.
fn offset_numeric(offset: i32) -> String {
    let (sign, minutes) = split_offset(offset);
    format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

/// Go truncates the offset to whole minutes before choosing the sign.
fn split_offset(offset: i32) -> (char, u32) {
    let minutes = offset / 60;
    let sign = if minutes < 0 { '-' } else { '+' };
    (sign, minutes.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("valid test time")
    }

    #[test]
    fn rfc3339_nano_like_go() {
        assert_eq!(
            rfc3339_nano(&at("2021-10-12T02:03:40.360294686Z")),
            "2021-10-12T02:03:40.360294686Z"
        );
        assert_eq!(
            rfc3339_nano(&at("2021-10-12T02:03:40.5Z")),
            "2021-10-12T02:03:40.5Z"
        );
        assert_eq!(
            rfc3339_nano(&at("2021-10-12T02:03:40.000100Z")),
            "2021-10-12T02:03:40.0001Z"
        );
        assert_eq!(
            rfc3339_nano(&at("2021-10-12T02:03:40Z")),
            "2021-10-12T02:03:40Z"
        );
        assert_eq!(
            rfc3339_nano(&at("2021-10-12T10:03:40+08:00")),
            "2021-10-12T10:03:40+08:00"
        );
        assert_eq!(
            rfc3339_nano(&at("2021-10-11T20:33:40-05:30")),
            "2021-10-11T20:33:40-05:30"
        );
        assert_eq!(
            rfc3339_nano(&at("1970-01-01T00:00:00+00:00")),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339_nano(&at("0001-01-01T00:00:00Z")),
            "0001-01-01T00:00:00Z"
        );
    }

    #[test]
    fn local_forms_follow_the_local_offset() {
        let t = at("2021-10-12T02:03:40.25Z");
        let (offset, _) = tz::offset_and_name(tz::local_zone(), t.timestamp());
        let wall = wall_at(&t, offset).format("%Y-%m-%dT%H:%M:%S").to_string();
        assert_eq!(rfc3339_local(&t), format!("{wall}{}", offset_z(offset)));
        if offset == 0 {
            assert_eq!(rfc3339_local(&t), "2021-10-12T02:03:40Z");
            assert_eq!(
                go_time_string(&at("2021-10-12T02:03:40Z")),
                "2021-10-12 02:03:40 +0000 UTC"
            );
        }
    }

    #[test]
    fn time_string_like_go() {
        let utc = TimeZone::UTC;
        assert_eq!(
            time_string(&at("2021-10-12T02:03:40Z"), &utc),
            "2021-10-12 02:03:40 +0000 UTC"
        );
        assert_eq!(
            time_string(&at("2021-10-12T02:03:40.360294686Z"), &utc),
            "2021-10-12 02:03:40.360294686 +0000 UTC"
        );
        let berlin = tz::tests::berlin();
        assert_eq!(
            time_string(&at("2021-10-12T02:03:40Z"), &berlin),
            "2021-10-12 04:03:40 +0200 CEST"
        );
        assert_eq!(
            time_string(&at("2022-01-01T00:00:00+05:30"), &berlin),
            "2021-12-31 19:30:00 +0100 CET"
        );
        // A zone whose type has no name: Go prints the numeric offset twice.
        let unnamed = TimeZone::tzif("x", &tz::tests::tzif(&[], &[(-18000, false, "")], ""))
            .expect("valid TZif");
        assert_eq!(
            time_string(&at("2021-10-12T02:03:40Z"), &unnamed),
            "2021-10-11 21:03:40 -0500 -0500"
        );
    }

    #[test]
    fn offsets_and_years() {
        assert_eq!(offset_z(0), "Z");
        assert_eq!(offset_z(3600), "+01:00");
        assert_eq!(offset_z(-34200), "-09:30");
        assert_eq!(offset_numeric(0), "+0000");
        assert_eq!(offset_numeric(-25200), "-0700");
        let t = NaiveDate::from_ymd_opt(12345, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .expect("valid date");
        assert_eq!(date_time(&t, 'T'), "12345-01-02T03:04:05");
        let t = NaiveDate::from_ymd_opt(-1, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .expect("valid date");
        assert_eq!(date_time(&t, ' '), "-0001-01-02 03:04:05");
        assert_eq!(fraction(0), "");
        assert_eq!(fraction(500_000_000), ".5");
        assert_eq!(fraction(1_000_000_000), ".999999999");
    }
}
