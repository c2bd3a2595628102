//! Cell text helpers from docker/cli's formatter: `Ellipsis` and `TruncateID`.

use unicode_width::UnicodeWidthChar;

/// Length of a short image or layer ID, as moby's `stringid.TruncateID`.
const SHORT_ID_LEN: usize = 12;

/// Display width as docker/cli's `charWidth`: 2 for East Asian Wide and
/// Fullwidth characters, 1 for everything else. Unlike a terminal width,
/// combining marks and control characters count as 1, since docker's
/// `golang.org/x/text/width` lookup does.
fn char_width(c: char) -> usize {
    match c.width() {
        Some(w) if w >= 2 => 2,
        _ => 1,
    }
}

/// docker/cli `formatter.Ellipsis`: cuts `s` to fit `max_display_width`
/// columns and ends it in `…` (U+2026) when anything was cut.
///
/// docker's quirks are kept: a width of 1 returns the first character even
/// when it is double width, and when even the first character is wider than
/// `max_display_width - 1` the string is returned uncut.
pub fn ellipsis(s: &str, max_display_width: usize) -> String {
    if max_display_width == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if max_display_width == 1 {
        return chars.first().map(char::to_string).unwrap_or_default();
    }
    if s.is_ascii() {
        if s.len() <= max_display_width {
            return s.to_string();
        }
        let mut out: String = chars[..max_display_width - 1].iter().collect();
        out.push('…');
        return out;
    }

    let mut ends = Vec::with_capacity(chars.len());
    let mut total = 0;
    for &c in &chars {
        total += char_width(c);
        ends.push(total);
    }
    if total <= max_display_width {
        return s.to_string();
    }
    let room = max_display_width - 1;
    for i in 0..ends.len().saturating_sub(1) {
        if ends[i] <= room && ends[i + 1] > room {
            let mut out: String = chars[..=i].iter().collect();
            out.push('…');
            return out;
        }
    }
    s.to_string()
}

/// moby `stringid.TruncateID`: drops an `algorithm:` prefix and keeps the
/// first 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    // Go slices bytes; IDs are hex, and for anything else stopping at a
    // character boundary keeps the result valid UTF-8.
    let mut end = id.len().min(SHORT_ID_LEN);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_cut_to_width_minus_one_plus_ellipsis() {
        let s = "/bin/sh -c #(nop) ADD file:910392427fdf089bc26b9d6dc4de4d6d2";
        assert_eq!(s.len(), 60);
        let cut = ellipsis(s, 45);
        assert_eq!(cut, "/bin/sh -c #(nop) ADD file:910392427fdf089bc…");
        assert_eq!(cut.chars().count(), 45);
        assert_eq!(ellipsis("short", 45), "short");
        assert_eq!(ellipsis("exactly5", 8), "exactly5");
        assert_eq!(ellipsis("exactly5", 7), "exactl…");
        assert_eq!(ellipsis("abc", 0), "");
        assert_eq!(ellipsis("abc", 1), "a");
        assert_eq!(ellipsis("", 1), "");
        assert_eq!(ellipsis("", 5), "");
    }

    #[test]
    fn docker_ellipsis_cases_with_wide_characters() {
        // The table from docker/cli's displayutils_test.go.
        assert_eq!(ellipsis("t🐳ststring", 0), "");
        assert_eq!(ellipsis("t🐳ststring", 1), "t");
        assert_eq!(ellipsis("t🐳ststring", 2), "t…");
        assert_eq!(ellipsis("t🐳ststring", 6), "t🐳st…");
        assert_eq!(ellipsis("t🐳ststring", 20), "t🐳ststring");
        assert_eq!(ellipsis("你好世界teststring", 0), "");
        assert_eq!(ellipsis("你好世界teststring", 1), "你");
        assert_eq!(ellipsis("你好世界teststring", 3), "你…");
        assert_eq!(ellipsis("你好世界teststring", 6), "你好…");
        assert_eq!(ellipsis("你好世界teststring", 20), "你好世界teststring");
    }

    #[test]
    fn docker_quirks_are_kept() {
        // No prefix fits in one column before the ellipsis: docker returns the
        // whole string.
        assert_eq!(ellipsis("你好世界", 2), "你好世界");
        // A combining accent counts as one column in docker's width table.
        assert_eq!(ellipsis("e\u{301}e\u{301}e\u{301}", 4), "e\u{301}e…");
        // A cut that would split a wide character stops before it.
        assert_eq!(ellipsis("ab你好", 4), "ab…");
    }

    #[test]
    fn truncate_ids() {
        assert_eq!(
            truncate_id("sha256:87a94228f133e2da99cb16d653cd1373c5b4e8689956386c1c12b60a20421a02"),
            "87a94228f133"
        );
        assert_eq!(
            truncate_id("87a94228f133e2da99cb16d653cd1373c5b4e8689956386c1c12b60a20421a02"),
            "87a94228f133"
        );
        assert_eq!(truncate_id("sha256:abc"), "abc");
        assert_eq!(truncate_id("<missing>"), "<missing>");
        assert_eq!(truncate_id(""), "");
        assert_eq!(truncate_id("a:b:cdef"), "b:cdef");
    }
}
