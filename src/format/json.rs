//! Go's `encoding/json` output for template values, as docker's `json`
//! template function produces it.

use gotmpl::Value;

/// Encodes `value` like Go's `json.Encoder` (without its trailing newline).
///
/// Maps print with sorted keys (Go sorts map keys; `Value::Map` is already
/// ordered the same way, by bytes). With `escape_html` the characters `<`, `>`
/// and `&` become `\u003c`, `\u003e`, `\u0026`, as `json.Marshal` does;
/// docker's `json` function turns that off, except for its formatter contexts,
/// whose own `MarshalJSON` uses `json.Marshal`. Returns `None` where Go
/// reports an error (NaN, infinities, functions).
pub(crate) fn encode(value: &Value, escape_html: bool) -> Option<String> {
    let mut out = String::new();
    write_value(&mut out, value, escape_html)?;
    Some(out)
}

fn write_value(out: &mut String, value: &Value, escape_html: bool) -> Option<()> {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Uint(n) => out.push_str(&n.to_string()),
        Value::Float(f) => out.push_str(&float(*f)?),
        Value::String(s) => write_string(out, s, escape_html),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, escape_html)?;
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key, escape_html);
                out.push(':');
                write_value(out, item, escape_html)?;
            }
            out.push('}');
        }
        Value::Function(_) => return None,
    }
    Some(())
}

/// Go's float encoding: shortest representation, plain decimal between 1e-6
/// and 1e21, otherwise exponent form with a signed exponent (`1e+21`, `1e-7`).
fn float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e')?;
        return Some(match exponent.strip_prefix('-') {
            Some(digits) => format!("{mantissa}e-{digits}"),
            None => format!("{mantissa}e+{exponent}"),
        });
    }
    Some(format!("{f}"))
}

/// Go's string encoding: `\"`, `\\`, `\n`, `\r`, `\t` short escapes, other
/// control characters as `\u00XX` (docker 20.10 predates Go 1.22's `\b` and
/// `\f`), U+2028 and U+2029 always escaped.
fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use gotmpl::tmap;

    #[test]
    fn strings() {
        let v = Value::from("<none> & \"q\" \\ \n\t\r\u{1}\u{8}\u{c}\u{7f}\u{2028}é");
        assert_eq!(
            encode(&v, false).as_deref(),
            Some(
                r#""<none> & \"q\" \\ \n\t\r\u0001\u0008\u000c\u007f\u2028é""#
                    .replace("\\u007f", "\u{7f}")
                    .as_str()
            )
        );
        assert_eq!(
            encode(&Value::from("<none>&"), true).as_deref(),
            Some(r#""\u003cnone\u003e\u0026""#)
        );
    }

    #[test]
    fn maps_are_sorted_and_compact() {
        let v = tmap! {
            "Tag" => "latest",
            "ID" => "87a94228f133",
            "Size" => 133u64,
            "Labels" => Value::Nil,
            "Ports" => vec![80i64, 443],
            "Ok" => true,
        };
        assert_eq!(
            encode(&v, false).as_deref(),
            Some(
                r#"{"ID":"87a94228f133","Labels":null,"Ok":true,"Ports":[80,443],"Size":133,"Tag":"latest"}"#
            )
        );
        assert_eq!(encode(&tmap! {}, false).as_deref(), Some("{}"));
        assert_eq!(
            encode(&Value::from(Vec::<Value>::new()), false).as_deref(),
            Some("[]")
        );
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(float(0.0).as_deref(), Some("0"));
        assert_eq!(float(1.5).as_deref(), Some("1.5"));
        assert_eq!(float(-2.0).as_deref(), Some("-2"));
        assert_eq!(float(1e20).as_deref(), Some("100000000000000000000"));
        assert_eq!(float(1e21).as_deref(), Some("1e+21"));
        assert_eq!(float(1.5e-7).as_deref(), Some("1.5e-7"));
        assert_eq!(float(0.000001).as_deref(), Some("0.000001"));
        assert_eq!(float(1.2345678e-10).as_deref(), Some("1.2345678e-10"));
        assert_eq!(float(f64::NAN), None);
        assert_eq!(encode(&Value::Float(f64::INFINITY), false), None);
    }
}
