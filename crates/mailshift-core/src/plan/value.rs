//! Values the plan writes as text (sizes, dates, durations), parsed once when the plan is read.
//!
//! Each keeps the text as written, so a plan serializes back as it came (its JSON view, and the
//! fingerprints computed from it, do not move), and keeps its parse error for the validator,
//! which reports every bad value at once at its place in the file. A plan that validated holds
//! no error, so the accessors' `None` means "not a valid value" only before validation.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written as a number of bytes or a string such as `35MB` or `1.5 GiB`.
#[derive(Debug, Clone, PartialEq)]
pub struct ByteSize {
    written: WrittenSize,
    bytes: Result<u64, String>,
}

/// A size in bytes, written as a number of bytes or a string such as `35MB` or `1.5 GiB`.
// The schema of `ByteSize` (named so, with this description) is this type's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "ByteSize")]
enum WrittenSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    /// The size in bytes, or why the value is not a size.
    pub fn parsed(&self) -> Result<u64, &str> {
        self.bytes.as_ref().copied().map_err(String::as_str)
    }

    /// The size in bytes (`None` for a value the validator rejects).
    pub fn bytes(&self) -> Option<u64> {
        self.bytes.as_ref().ok().copied()
    }

    /// Why the value is not a size.
    pub fn error(&self) -> Option<&str> {
        self.bytes.as_ref().err().map(String::as_str)
    }

    fn from_written(written: WrittenSize) -> ByteSize {
        let bytes = match &written {
            WrittenSize::Bytes(n) => Ok(*n),
            WrittenSize::Text(t) => parse_byte_size(t),
        };
        ByteSize { written, bytes }
    }
}

impl From<u64> for ByteSize {
    fn from(n: u64) -> ByteSize {
        ByteSize::from_written(WrittenSize::Bytes(n))
    }
}

impl From<&str> for ByteSize {
    fn from(text: &str) -> ByteSize {
        ByteSize::from_written(WrittenSize::Text(text.to_string()))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WrittenSize::deserialize(d).map(ByteSize::from_written)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        WrittenSize::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        WrittenSize::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        WrittenSize::json_schema(generator)
    }
}

/// Parses `35MB`, `1.5 GiB`, `512k` or a byte count.
fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{text}` is not a size"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    let v = n * mult;
    if !v.is_finite() || v > u64::MAX as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(v as u64)
}

/// Defines a value written as a string: the text as written, and what it parses to.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $value:ty, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            text: String,
            value: Result<$value, String>,
        }

        impl $name {
            /// The value as written in the plan.
            pub fn as_str(&self) -> &str {
                &self.text
            }

            /// The value, or why the text is not one.
            pub fn parsed(&self) -> Result<$value, &str> {
                self.value.as_ref().copied().map_err(String::as_str)
            }

            /// Why the text is not a valid value.
            pub fn error(&self) -> Option<&str> {
                self.value.as_ref().err().map(String::as_str)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> $name {
                let parse: fn(&str) -> Result<$value, String> = $parse;
                $name {
                    value: parse(text),
                    text: text.to_string(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(|text| $name::from(text.as_str()))
            }
        }

        // The schema is a plain string's, as it was before the value was parsed.
        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                String::schema_name()
            }

            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                String::json_schema(generator)
            }
        }
    };
}

text_value!(
    /// A calendar day, written `YYYY-MM-DD`.
    Date,
    (u32, u32, u32),
    |s| parse_date(s).ok_or_else(|| format!("`{s}` is not a date"))
);

text_value!(
    /// A period in whole seconds, written `90s`, `15m`, `1h30m` or `2d`; never zero.
    Interval,
    u64,
    parse_duration
);

text_value!(
    /// A duration that may also be written in milliseconds (`250ms`), or as an [`Interval`].
    Duration,
    std::time::Duration,
    parse_millis
);

text_value!(
    /// An instant, written in RFC 3339 with its offset, e.g. `2026-12-05T22:00:00+01:00`;
    /// parsed to Unix seconds.
    Timestamp,
    i64,
    parse_timestamp
);

impl Timestamp {
    /// Unix seconds (`None` for a value the validator rejects).
    pub fn unix(&self) -> Option<i64> {
        self.value.as_ref().ok().copied()
    }
}

/// Parses an RFC 3339 instant into Unix seconds.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp())
        .map_err(|e| format!("`{s}` is not an RFC 3339 time ({e})"))
}

impl Date {
    /// (year, month, day), which compare in calendar order.
    pub fn ymd(&self) -> Option<(u32, u32, u32)> {
        self.value.as_ref().ok().copied()
    }
}

impl Interval {
    pub fn secs(&self) -> Option<u64> {
        self.value.as_ref().ok().copied()
    }
}

impl Duration {
    pub fn get(&self) -> Option<std::time::Duration> {
        self.value.as_ref().ok().copied()
    }
}

/// Parses `YYYY-MM-DD` into a comparable (year, month, day).
pub fn parse_date(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.trim().splitn(3, '-');
    let y: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1970..=9999).contains(&y) && (1..=days).contains(&d)).then_some((y, m, d))
}

/// Parses `90s`, `15m`, `1h30m`, `2d` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("unknown duration unit `{c}` in `{text}`")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        total = total
            .checked_add(
                n.checked_mul(unit)
                    .ok_or_else(|| format!("`{text}` is too long"))?,
            )
            .ok_or_else(|| format!("`{text}` is too long"))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!(
            "`{text}` has a number without a unit: add `s`, `m`, `h` or `d`"
        ));
    }
    if total == 0 {
        return Err("a zero interval would sync without pause".to_string());
    }
    Ok(total)
}

/// A duration that may be given in milliseconds (`250ms`) as well as `parse_duration`'s units.
pub fn parse_millis(s: &str) -> Result<std::time::Duration, String> {
    let text = s.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return match ms.trim().parse::<u64>() {
            Ok(0) => Err("a zero duration would not wait at all".to_string()),
            Ok(n) => Ok(std::time::Duration::from_millis(n)),
            Err(_) => Err(format!("`{text}` is not a duration")),
        };
    }
    parse_duration(text).map(std::time::Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_durations() {
        assert_eq!(
            parse_millis("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_millis("2m"), Ok(std::time::Duration::from_secs(120)));
        assert!(parse_millis("0ms").is_err());
        assert!(parse_millis("fast").is_err());
    }

    #[test]
    fn sizes_dates_durations() {
        assert_eq!(ByteSize::from("35MB").bytes(), Some(35_000_000));
        assert_eq!(ByteSize::from("1.5 GiB").bytes(), Some(1_610_612_736));
        assert_eq!(ByteSize::from(7).bytes(), Some(7));
        assert!(ByteSize::from("12 parsecs").error().is_some());
        assert_eq!(parse_date("2024-02-29"), Some((2024, 2, 29)));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn values_serialize_as_written() {
        for text in [r#"" 35 MB""#, "1024", r#""12 parsecs""#] {
            let size: ByteSize = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&size).unwrap(), text);
        }
        let date: Date = serde_json::from_str(r#"" 2024-01-31""#).unwrap();
        assert_eq!(date.ymd(), Some((2024, 1, 31)));
        assert_eq!(serde_json::to_string(&date).unwrap(), r#"" 2024-01-31""#);
        let bad: Date = serde_json::from_str(r#""2024-13-01""#).unwrap();
        assert_eq!(bad.error(), Some("`2024-13-01` is not a date"));
        let interval: Interval = serde_json::from_str(r#""1h30m""#).unwrap();
        assert_eq!(interval.secs(), Some(5400));
        let timeout: Duration = serde_json::from_str(r#""250ms""#).unwrap();
        assert_eq!(timeout.get(), Some(std::time::Duration::from_millis(250)));
        assert_eq!(serde_json::to_string(&timeout).unwrap(), r#""250ms""#);
    }
}
