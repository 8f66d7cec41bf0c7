//! Typed values and the value-shape laws that normalise them (`ip:10.0.0.7`, `email:a@b.c`).
//!
//! A value's *shape* is recognised from its text; two values are "the same" (so a second
//! write is idempotent) when their normalised forms are equal.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The shape a value was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// An IPv4 or IPv6 address.
    Ip,
    /// An e-mail address.
    Email,
    /// An http(s) URL.
    Url,
    /// A calendar date `YYYY-MM-DD` (also accepted: `YYYY/MM/DD`, RFC 3339 date-times).
    Date,
    /// A phone number (7 or more digits with `+ - ( ) .` and spaces).
    Phone,
    /// A decimal number.
    Number,
    /// `true` / `false` (also yes/no).
    Bool,
    /// Anything else.
    Text,
}

impl Shape {
    /// The prefix used in the normalised form.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Email => "email",
            Self::Url => "url",
            Self::Date => "date",
            Self::Phone => "phone",
            Self::Number => "number",
            Self::Bool => "bool",
            Self::Text => "text",
        }
    }
}

/// A value as written (`raw`) and as normalised (`normalized`, e.g. `ip:10.0.0.7`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedValue {
    /// The value exactly as given (trimmed).
    pub raw: String,
    /// The recognised shape.
    pub shape: Shape,
    /// `<shape>:<canonical form>`; equality of values is equality of this string.
    pub normalized: String,
}

impl TypedValue {
    /// Recognise the shape of `raw` and normalise it.
    ///
    /// A value that arrives already typed — `<shape>:<value>` as a capture plugin writes it,
    /// e.g. `ip:10.0.0.7` — is taken as that shape when the rest really has it (or when the
    /// prefix is `text:`): `raw` is then the untyped rest, so `ip:10.0.0.7` and `10.0.0.7`
    /// are the same value. A prefix the rest does not fit (`ip:not an address`) is kept as
    /// part of a text value.
    pub fn parse(raw: &str) -> Self {
        let raw = raw.trim();
        let (raw, (shape, canon)) = match typed_prefix(raw) {
            Some(typed) => typed,
            None => (raw, classify(raw)),
        };
        let raw = raw.to_string();
        Self {
            normalized: format!("{}:{}", shape.prefix(), canon),
            raw,
            shape,
        }
    }
}

/// Every shape, for recognising a `<shape>:` prefix.
const SHAPES: [Shape; 8] = [
    Shape::Ip,
    Shape::Email,
    Shape::Url,
    Shape::Date,
    Shape::Phone,
    Shape::Number,
    Shape::Bool,
    Shape::Text,
];

/// `(untyped rest, classification)` when `s` is `<shape>:<rest>` and `rest` has that shape
/// (any non-empty rest for `text:`).
fn typed_prefix(s: &str) -> Option<(&str, (Shape, String))> {
    let (prefix, rest) = s.split_once(':')?;
    let shape = SHAPES.into_iter().find(|sh| sh.prefix() == prefix)?;
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    if shape == Shape::Text {
        return Some((rest, (Shape::Text, text_canon(rest))));
    }
    let found = classify(rest);
    (found.0 == shape).then_some((rest, found))
}

fn text_canon(s: &str) -> String {
    let collapsed: Vec<String> = s.split_whitespace().map(|w| w.to_lowercase()).collect();
    collapsed.join(" ")
}

fn classify(s: &str) -> (Shape, String) {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return (Shape::Ip, ip.to_string());
    }
    if let Some(e) = email(s) {
        return (Shape::Email, e);
    }
    if let Some(u) = url(s) {
        return (Shape::Url, u);
    }
    if let Some(d) = date(s) {
        return (Shape::Date, d);
    }
    if let Some(p) = phone(s) {
        return (Shape::Phone, p);
    }
    if let Some(n) = number(s) {
        return (Shape::Number, n);
    }
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" => return (Shape::Bool, "true".into()),
        "false" | "no" => return (Shape::Bool, "false".into()),
        _ => {}
    }
    (Shape::Text, text_canon(s))
}

fn email(s: &str) -> Option<String> {
    let (local, domain) = s.split_once('@')?;
    let ok_local = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "._%+-".contains(c));
    let ok_domain = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || ".-".contains(c));
    (ok_local && ok_domain).then(|| format!("{}@{}", local, domain.to_lowercase()))
}

fn url(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let rest_at = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return None;
    };
    if s.chars().any(char::is_whitespace) || s.len() == rest_at {
        return None;
    }
    let (host, path) = match s[rest_at..].find('/') {
        Some(i) => (&s[rest_at..rest_at + i], &s[rest_at + i..]),
        None => (&s[rest_at..], ""),
    };
    let path = if path == "/" { "" } else { path };
    Some(format!(
        "{}{}{}",
        &lower[..rest_at],
        host.to_ascii_lowercase(),
        path
    ))
}

fn date(s: &str) -> Option<String> {
    let head = s.get(..10)?;
    let rest = &s[10..];
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    let b = head.as_bytes();
    let sep = b[4];
    if !(sep == b'-' || sep == b'/') || b[7] != sep {
        return None;
    }
    let y: u32 = head[..4].parse().ok()?;
    let m: u32 = head[5..7].parse().ok()?;
    let d: u32 = head[8..10].parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

fn phone(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let allowed = s
        .chars()
        .all(|c| c.is_ascii_digit() || "+-(). ".contains(c));
    let has_sep = s.chars().any(|c| "-() +".contains(c));
    (allowed && has_sep && digits.len() >= 7 && digits.len() <= 15).then(|| {
        if s.trim_start().starts_with('+') {
            format!("+{digits}")
        } else {
            digits
        }
    })
}

fn number(s: &str) -> Option<String> {
    let cleaned: String = s.chars().filter(|&c| c != ',' && c != '_').collect();
    if cleaned.is_empty()
        || !cleaned
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
    {
        return None;
    }
    let v: f64 = cleaned.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    Some(if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        TypedValue::parse(s).normalized
    }

    #[test]
    fn shapes_are_recognised_and_normalised() {
        assert_eq!(norm(" 10.0.0.7 "), "ip:10.0.0.7");
        assert_eq!(norm("Ada@Example.COM"), "email:Ada@example.com");
        assert_eq!(norm("HTTPS://Example.com/"), "url:https://example.com");
        assert_eq!(norm("2024/03/09"), "date:2024-03-09");
        assert_eq!(norm("2024-03-09T10:00:00Z"), "date:2024-03-09");
        assert_eq!(norm("+1 (555) 010-2030"), "phone:+15550102030");
        assert_eq!(norm("1,200"), "number:1200");
        assert_eq!(norm("3.50"), "number:3.5");
        assert_eq!(norm("Yes"), "bool:true");
        assert_eq!(norm("  Deep   Purple "), "text:deep purple");
    }

    #[test]
    fn already_typed_values_keep_their_type() {
        let v = TypedValue::parse("ip:10.0.0.7");
        assert_eq!(
            (v.shape, v.raw.as_str(), v.normalized.as_str()),
            (Shape::Ip, "10.0.0.7", "ip:10.0.0.7")
        );
        assert_eq!(v, TypedValue::parse("10.0.0.7"));
        assert_eq!(norm("email:Ada@Example.COM"), "email:Ada@example.com");
        assert_eq!(norm("url:https://example.com/"), "url:https://example.com");
        assert_eq!(norm("date:2024/03/09"), "date:2024-03-09");
        assert_eq!(norm("number: 1,200"), "number:1200");
        assert_eq!(norm("bool:yes"), "bool:true");
        assert_eq!(norm("phone:+1 (555) 010-2030"), "phone:+15550102030");
        // A declared text stays text even when the rest looks like another shape.
        assert_eq!(norm("text:10.0.0.7"), "text:10.0.0.7");
        assert_eq!(TypedValue::parse("text:Deep Purple").raw, "Deep Purple");
    }

    #[test]
    fn a_prefix_that_does_not_fit_is_text() {
        assert_eq!(norm("ip:not an address"), "text:ip:not an address");
        assert_eq!(
            TypedValue::parse("ip:not an address").raw,
            "ip:not an address"
        );
        assert_eq!(norm("number:abc"), "text:number:abc");
        assert_eq!(norm("note: buy milk"), "text:note: buy milk");
        assert_eq!(norm("ip:"), "text:ip:");
        assert_eq!(norm("https://example.com"), "url:https://example.com");
    }

    #[test]
    fn not_everything_is_a_number_or_date() {
        assert_ne!(TypedValue::parse("2024-13-01").shape, Shape::Date);
        assert_eq!(TypedValue::parse("e").shape, Shape::Text);
        assert_eq!(TypedValue::parse("a@b").shape, Shape::Text);
    }
}
