//! Byte sizes the way docker prints them (`github.com/docker/go-units`).

/// Decimal unit suffixes used by go-units' `HumanSize*` family.
const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// Formats a byte count as docker's image tables do: go-units
/// `HumanSizeWithPrecision(size, 3)`, e.g. `133MB`, `13.3kB`, `0B`.
pub fn human_size(bytes: u64) -> String {
    // Go converts the int64 size to float64 first; `as f64` rounds the same way.
    human_size_precision(bytes as f64, 3)
}

/// go-units `HumanSizeWithPrecision`: decimal units, `%.*g` with `precision`
/// significant digits (docker's progress bars use 4: `72.52MB`).
pub fn human_size_precision(bytes: f64, precision: usize) -> String {
    let mut size = bytes;
    let mut unit = 0;
    // Repeated division (not one division by 1000^n) so the float rounding
    // matches go-units bit for bit.
    while size >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let mut out = format_g(size, precision);
    out.push_str(DECIMAL_UNITS[unit]);
    out
}

/// Go's `fmt.Sprintf("%.*g", precision, x)`.
///
/// `%g` picks exponent form when the decimal exponent is below -4 or at least
/// the precision, and otherwise prints the shortest fixed form without
/// trailing zeros; a precision of 0 counts as 1.
pub fn format_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let prec = precision.max(1);
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let (digits, dp) = round_significant(x.abs(), prec);
    let nd = digits.len();

    // Mirrors strconv's %g decision, including its special case that lowers
    // the exponent threshold when all digits are integral.
    let mut eprec = prec;
    if eprec > nd && nd as i64 >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    let body = if exp < -4 || exp >= eprec as i64 {
        let shown = prec.min(nd);
        fmt_e(&digits, shown - 1, exp)
    } else {
        let shown = if prec as i64 > dp {
            nd as i64
        } else {
            prec as i64
        };
        fmt_f(&digits, dp, (shown - dp).max(0) as usize)
    };
    format!("{sign}{body}")
}

/// Rounds `x` (non-negative, finite) to `prec` significant decimal digits,
/// round-half-even on exact ties as Go's strconv does. Returns the digits with
/// trailing zeros trimmed and the decimal point position (`0.d1d2… × 10^dp`).
fn round_significant(x: f64, prec: usize) -> (Vec<u8>, i64) {
    if x == 0.0 {
        return (vec![b'0'], 1);
    }
    // Rust's `{:.N e}` is correctly rounded from the exact binary value with
    // ties to even, which is what strconv's fixed-precision path does.
    let text = format!("{:.*e}", prec - 1, x);
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exponent + 1)
}

/// strconv's `%e` body: `d.ddde±XX` with at least two exponent digits.
fn fmt_e(digits: &[u8], decimals: usize, exp: i64) -> String {
    let mut out = String::new();
    out.push(char::from(digits[0]));
    if decimals > 0 {
        out.push('.');
        for i in 1..=decimals {
            out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
        }
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push('0');
    }
    out.push_str(&abs.to_string());
    out
}

/// strconv's `%f` body with `decimals` fraction digits.
fn fmt_f(digits: &[u8], dp: i64, decimals: usize) -> String {
    let digit_at = |i: i64| -> char {
        if i >= 0 && (i as usize) < digits.len() {
            char::from(digits[i as usize])
        } else {
            '0'
        }
    };
    let mut out = String::new();
    if dp > 0 {
        for i in 0..dp {
            out.push(digit_at(i));
        }
    } else {
        out.push('0');
    }
    if decimals > 0 {
        out.push('.');
        for i in 0..decimals as i64 {
            out.push(digit_at(dp + i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_image_sizes() {
        assert_eq!(human_size(133_277_153), "133MB");
        assert_eq!(human_size(13_300), "13.3kB");
        assert_eq!(human_size(13_256), "13.3kB");
        assert_eq!(human_size(4_610), "4.61kB");
        assert_eq!(human_size(64_000_000), "64MB");
        assert_eq!(human_size(69_300_000), "69.3MB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1), "1B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(1_200), "1.2kB");
        assert_eq!(human_size(1_000_000_000), "1GB");
        assert_eq!(human_size(5_368_709_120), "5.37GB");
    }

    #[test]
    fn exponent_form_when_rounding_reaches_precision() {
        // 999.5 rounds to 1000 at three digits: %g switches to exponent form.
        assert_eq!(human_size(999_500), "1e+03kB");
        assert_eq!(human_size(999_499), "999kB");
        assert_eq!(human_size(999_999_999), "1e+03MB");
        // Ties round to even: 100.5 -> 100, 101.5 -> 102.
        assert_eq!(human_size(100_500), "100kB");
        assert_eq!(human_size(101_500), "102kB");
    }

    #[test]
    fn largest_units() {
        assert_eq!(human_size(u64::MAX), "18.4EB");
        assert_eq!(human_size_precision(1e24, 3), "1YB");
        assert_eq!(human_size_precision(2.5e27, 3), "2.5e+03YB");
    }

    #[test]
    fn precision_four_for_progress() {
        assert_eq!(human_size_precision(72_524_288.0, 4), "72.52MB");
        assert_eq!(human_size_precision(1_048_576.0, 4), "1.049MB");
        assert_eq!(human_size_precision(512.0, 4), "512B");
        assert_eq!(human_size_precision(-5.0, 3), "-5B");
    }

    #[test]
    fn go_percent_g() {
        assert_eq!(format_g(0.0, 3), "0");
        assert_eq!(format_g(-0.0, 3), "-0");
        assert_eq!(format_g(100.0, 3), "100");
        assert_eq!(format_g(0.5, 3), "0.5");
        assert_eq!(format_g(0.0001234, 3), "0.000123");
        assert_eq!(format_g(0.00001234, 3), "1.23e-05");
        assert_eq!(format_g(123_456.0, 3), "1.23e+05");
        assert_eq!(format_g(1e100, 3), "1e+100");
        assert_eq!(format_g(2.5, 1), "2");
        assert_eq!(format_g(3.5, 1), "4");
        assert_eq!(format_g(15.0, 0), "2e+01");
        assert_eq!(format_g(f64::NAN, 3), "NaN");
        assert_eq!(format_g(f64::INFINITY, 3), "+Inf");
        assert_eq!(format_g(f64::NEG_INFINITY, 3), "-Inf");
    }
}
