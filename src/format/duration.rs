//! Relative times the way docker prints them (go-units `HumanDuration`).

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;

/// go-units `HumanDuration`: "Less than a second", "1 second", "N seconds",
/// "About a minute", "N minutes", "About an hour", "N hours", "N days",
/// "N weeks", "N months", "N years".
///
/// Durations beyond Go's `time.Duration` range (about 292 years) saturate as
/// Go's `time.Sub` does.
pub fn human_duration(d: Duration) -> String {
    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    human_duration_nanos(nanos)
}

/// `HumanDuration` on a signed Go duration in nanoseconds; negative values
/// (a timestamp in the future) print "Less than a second".
pub(crate) fn human_duration_nanos(d: i64) -> String {
    // Each threshold uses Go's float conversions (`d.Seconds()`, `d.Minutes()`,
    // `d.Hours()`), then truncates with `int(...)`; replicating them keeps the
    // boundaries identical, including the `+0.5` rounding for hours.
    let seconds = go_seconds(d) as i64;
    if seconds < 1 {
        return "Less than a second".to_string();
    }
    if seconds == 1 {
        return "1 second".to_string();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = go_minutes(d) as i64;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (go_hours(d) + 0.5) as i64;
    if hours == 1 {
        return "About an hour".to_string();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    // Years use the unrounded hours, as go-units does.
    format!("{} years", (go_hours(d) as i64) / 24 / 365)
}

/// Go's `Duration.Seconds()`.
fn go_seconds(d: i64) -> f64 {
    (d / NANOS_PER_SECOND) as f64 + (d % NANOS_PER_SECOND) as f64 / 1e9
}

/// Go's `Duration.Minutes()`.
fn go_minutes(d: i64) -> f64 {
    (d / NANOS_PER_MINUTE) as f64 + (d % NANOS_PER_MINUTE) as f64 / (60.0 * 1e9)
}

/// Go's `Duration.Hours()`.
fn go_hours(d: i64) -> f64 {
    (d / NANOS_PER_HOUR) as f64 + (d % NANOS_PER_HOUR) as f64 / (60.0 * 60.0 * 1e9)
}

/// docker's CREATED column: `"<human_duration> ago"`.
///
/// Prints `N/A` when `created` is unknown or before the year 2000 (strata's
/// rule for reproducible images stamped with epoch 0). Like the Docker API,
/// which reports `Created` in whole seconds, the creation time is truncated to
/// the second before measuring; a time in the future prints
/// "Less than a second ago".
pub fn created_since(created: Option<DateTime<FixedOffset>>, now: DateTime<Utc>) -> String {
    let Some(created) = created else {
        return "N/A".to_string();
    };
    let cutoff = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
    if cutoff.is_some_and(|cutoff| created < cutoff) {
        return "N/A".to_string();
    }
    let created_nanos = i128::from(created.timestamp()) * i128::from(NANOS_PER_SECOND);
    let now_nanos = i128::from(now.timestamp()) * i128::from(NANOS_PER_SECOND)
        + i128::from(now.timestamp_subsec_nanos());
    // Go's Time.Sub saturates at the Duration limits.
    let d = (now_nanos - created_nanos).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    format!("{} ago", human_duration_nanos(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn seconds() {
        assert_eq!(human_duration(Duration::ZERO), "Less than a second");
        assert_eq!(
            human_duration(Duration::from_millis(999)),
            "Less than a second"
        );
        assert_eq!(human_duration(secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_millis(1999)), "1 second");
        assert_eq!(human_duration(secs(2)), "2 seconds");
        assert_eq!(human_duration(secs(59)), "59 seconds");
    }

    #[test]
    fn minutes() {
        assert_eq!(human_duration(secs(60)), "About a minute");
        assert_eq!(human_duration(secs(119)), "About a minute");
        assert_eq!(human_duration(secs(120)), "2 minutes");
        assert_eq!(human_duration(secs(59 * 60 + 59)), "59 minutes");
    }

    #[test]
    fn hours_round_to_nearest() {
        assert_eq!(human_duration(secs(3600)), "About an hour");
        // 1h29m59s still rounds to one hour; 1h30m rounds up to two.
        assert_eq!(human_duration(secs(5399)), "About an hour");
        assert_eq!(human_duration(secs(5400)), "2 hours");
        assert_eq!(human_duration(secs(47 * 3600 + 1799)), "47 hours");
        // 47h30m rounds to 48 hours, which is already "2 days".
        assert_eq!(human_duration(secs(47 * 3600 + 1800)), "2 days");
    }

    #[test]
    fn days_weeks_months_years() {
        let day = 24 * 3600;
        assert_eq!(human_duration(secs(13 * day)), "13 days");
        assert_eq!(human_duration(secs(14 * day - 1801)), "13 days");
        assert_eq!(human_duration(secs(14 * day - 1800)), "2 weeks");
        assert_eq!(human_duration(secs(20 * day)), "2 weeks");
        assert_eq!(human_duration(secs(21 * day)), "3 weeks");
        assert_eq!(human_duration(secs(59 * day)), "8 weeks");
        assert_eq!(human_duration(secs(60 * day)), "2 months");
        assert_eq!(human_duration(secs(729 * day)), "24 months");
        assert_eq!(human_duration(secs(730 * day)), "2 years");
        assert_eq!(human_duration(secs(1095 * day)), "3 years");
    }

    #[test]
    fn years_use_unrounded_hours() {
        // 3 years minus 20 minutes: the rounded hour count would be 26280
        // (= 3 years) but go-units truncates for the year figure.
        let d = secs(1095 * 24 * 3600 - 20 * 60);
        assert_eq!(human_duration(d), "2 years");
    }

    #[test]
    fn saturates_like_go() {
        assert_eq!(human_duration(Duration::MAX), "292 years");
    }

    #[test]
    fn negative_is_less_than_a_second() {
        assert_eq!(
            human_duration_nanos(-5 * NANOS_PER_SECOND),
            "Less than a second"
        );
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("valid test time")
    }

    #[test]
    fn created_since_formats() {
        let now = at("2021-11-01T12:00:00.5Z").with_timezone(&Utc);
        assert_eq!(
            created_since(Some(at("2021-10-18T12:00:00Z")), now),
            "2 weeks ago"
        );
        // The creation time is truncated to whole seconds, `now` is not.
        assert_eq!(
            created_since(Some(at("2021-11-01T12:00:00.4Z")), now),
            "Less than a second ago"
        );
        assert_eq!(
            created_since(Some(at("2021-11-01T11:59:59.9Z")), now),
            "1 second ago"
        );
        assert_eq!(
            created_since(Some(at("2021-11-01T11:59:58.9Z")), now),
            "2 seconds ago"
        );
        assert_eq!(
            created_since(Some(at("2021-11-01T19:00:00+08:00")), now),
            "About an hour ago"
        );
        assert_eq!(
            created_since(Some(at("2021-11-02T00:00:00Z")), now),
            "Less than a second ago"
        );
        assert_eq!(created_since(None, now), "N/A");
        assert_eq!(created_since(Some(at("1970-01-01T00:00:00Z")), now), "N/A");
        assert_eq!(created_since(Some(at("1999-12-31T23:59:59Z")), now), "N/A");
        assert_eq!(
            created_since(Some(at("2000-01-01T00:00:00Z")), now),
            "21 years ago"
        );
    }
}
