//! Field values as both CRMs send them, normalized so that equal meanings compare equal.
//!
//! HubSpot sends every property as a string: numbers as decimal text, booleans as
//! `"true"`/`"false"`, dates as `YYYY-MM-DD` or epoch milliseconds, date-times as ISO 8601
//! or epoch milliseconds, multi-selects joined with `;`. Salesforce uses JSON types, ISO
//! dates, ISO date-times with a `+0000` offset, and `;`-joined multi-picklists. A merge
//! that compared raw JSON would see `"1.0"` and `1` as a change and write it back and
//! forth forever; comparing [`Canon`] values cannot.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Side;

/// The type of a field, on either side, as far as comparing and writing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free text, ids, phones, URLs, text areas.
    Text,
    /// An email address: compared without regard to case.
    Email,
    Number,
    Bool,
    Date,
    DateTime,
    /// A single-select picklist / enumeration.
    Enum,
    /// A multi-select picklist / checkbox enumeration, `;`-joined on both sides.
    MultiEnum,
}

impl FieldType {
    /// The family a mapping must stay within: text may map to a picklist, a date to a
    /// date-time, but text never to a number.
    pub fn family(self) -> TypeFamily {
        match self {
            FieldType::Text | FieldType::Email | FieldType::Enum | FieldType::MultiEnum => {
                TypeFamily::Text
            }
            FieldType::Number => TypeFamily::Number,
            FieldType::Bool => TypeFamily::Bool,
            FieldType::Date | FieldType::DateTime => TypeFamily::Temporal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Email => "email",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Enum => "enum",
            FieldType::MultiEnum => "multi_enum",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFamily {
    Text,
    Number,
    Bool,
    Temporal,
}

/// A normalized value. Two raw values mean the same thing exactly when their `Canon`s
/// are equal.
#[derive(Debug, Clone)]
pub enum Canon<'a> {
    Blank,
    Text(Cow<'a, str>),
    /// Compared case-insensitively; written as the source spelled it.
    Email(Cow<'a, str>),
    Number(Decimal),
    Bool(bool),
    Date(NaiveDate),
    /// Milliseconds since the epoch, UTC.
    DateTime(i64),
    /// Multi-select values, trimmed, sorted and de-duplicated.
    Set(Vec<Cow<'a, str>>),
}

impl PartialEq for Canon<'_> {
    fn eq(&self, other: &Self) -> bool {
        use Canon::*;
        match (self, other) {
            (Blank, Blank) => true,
            (Text(a), Text(b)) => a == b,
            (Email(a), Email(b)) => a.eq_ignore_ascii_case(b),
            (Number(a), Number(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (DateTime(a), DateTime(b)) => a == b,
            (Set(a), Set(b)) => a == b,
            // Dates and date-times meet when a date-only field maps to a date-time one
            // (HubSpot `closedate` is a date-time, Salesforce `CloseDate` a date).
            (Date(d), DateTime(t)) | (DateTime(t), Date(d)) => date_of_millis(*t) == Some(*d),
            _ => false,
        }
    }
}

impl Canon<'_> {
    pub fn is_blank(&self) -> bool {
        matches!(self, Canon::Blank)
    }

    /// The text form, for value maps, picklist checks and lengths.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Canon::Blank => Cow::Borrowed(""),
            Canon::Text(s) | Canon::Email(s) => Cow::Borrowed(s),
            Canon::Number(d) => Cow::Owned(d.to_string()),
            Canon::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Canon::Date(d) => Cow::Owned(format_date(*d)),
            Canon::DateTime(ms) => Cow::Owned(iso_millis(*ms)),
            Canon::Set(items) => Cow::Owned(items.join(";")),
        }
    }

    pub fn into_owned(self) -> Canon<'static> {
        match self {
            Canon::Blank => Canon::Blank,
            Canon::Text(s) => Canon::Text(Cow::Owned(s.into_owned())),
            Canon::Email(s) => Canon::Email(Cow::Owned(s.into_owned())),
            Canon::Number(d) => Canon::Number(d),
            Canon::Bool(b) => Canon::Bool(b),
            Canon::Date(d) => Canon::Date(d),
            Canon::DateTime(t) => Canon::DateTime(t),
            Canon::Set(v) => {
                Canon::Set(v.into_iter().map(|s| Cow::Owned(s.into_owned())).collect())
            }
        }
    }

    /// The value as `side` expects it in a write of a field of type `target`.
    ///
    /// HubSpot takes strings only and clears a property with `""`; Salesforce takes JSON
    /// types and clears a field with `null`.
    pub fn render(&self, side: Side, target: FieldType) -> Value {
        match side {
            Side::HubSpot => Value::String(self.render_hubspot(target)),
            Side::Salesforce => self.render_salesforce(),
        }
    }

    fn render_hubspot(&self, target: FieldType) -> String {
        match (self, target) {
            (Canon::Blank, _) => String::new(),
            // A date written to a HubSpot date-time property is midnight UTC, which is
            // how HubSpot itself stores date-only values there.
            (Canon::Date(d), FieldType::DateTime) => d
                .and_hms_opt(0, 0, 0)
                .map(|t| iso_millis(t.and_utc().timestamp_millis()))
                .unwrap_or_default(),
            (Canon::DateTime(ms), FieldType::Date) => {
                date_of_millis(*ms).map(format_date).unwrap_or_default()
            }
            (other, _) => other.text().into_owned(),
        }
    }

    fn render_salesforce(&self) -> Value {
        match self {
            Canon::Blank => Value::Null,
            Canon::Number(d) => decimal_to_json(*d),
            Canon::Bool(b) => Value::Bool(*b),
            other => Value::String(other.text().into_owned()),
        }
    }
}

fn decimal_to_json(d: Decimal) -> Value {
    if d.fract().is_zero()
        && let Some(i) = d.to_i64()
    {
        return Value::from(i);
    }
    d.to_f64()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(d.to_string()))
}

fn date_of_millis(ms: i64) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.date_naive())
}

/// `2024-01-15T10:00:00.000Z`: accepted by both CRMs.
pub fn iso_millis(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A raw value that does not parse as its field's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {expected}")]
pub struct TypeMismatch {
    pub value: String,
    pub expected: &'static str,
}

/// Normalizes a raw value (either side's wire form) as a field of type `ty`.
pub fn normalize(raw: &Value, ty: FieldType) -> Result<Canon<'_>, TypeMismatch> {
    let text: Cow<'_, str> = match raw {
        Value::Null => return Ok(Canon::Blank),
        Value::String(s) => Cow::Borrowed(s.trim()),
        Value::Number(n) if ty == FieldType::Number => {
            // Integers skip the text round trip: most Salesforce numbers are whole.
            if let Some(i) = n.as_i64() {
                return Ok(Canon::Number(Decimal::from(i)));
            }
            if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                // Shortest round-trip text, without a heap allocation.
                let mut buf = ryu::Buffer::new();
                return parse_decimal(buf.format_finite(f))
                    .map(|d| Canon::Number(d.normalize()))
                    .ok_or_else(|| mismatch(&n.to_string(), ty));
            }
            Cow::Owned(n.to_string())
        }
        Value::Number(n) => Cow::Owned(n.to_string()),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Array(_) | Value::Object(_) => {
            return Err(mismatch(&raw.to_string(), ty));
        }
    };
    if text.is_empty() {
        return Ok(Canon::Blank);
    }
    match ty {
        FieldType::Text | FieldType::Enum => Ok(Canon::Text(text)),
        FieldType::Email => Ok(Canon::Email(text)),
        FieldType::Number => parse_decimal(&text)
            .map(|d| Canon::Number(d.normalize()))
            .ok_or_else(|| mismatch(&text, ty)),
        FieldType::Bool => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Canon::Bool(true)),
            "false" => Ok(Canon::Bool(false)),
            _ => Err(mismatch(&text, ty)),
        },
        FieldType::Date => parse_date(&text)
            .map(Canon::Date)
            .ok_or_else(|| mismatch(&text, ty)),
        FieldType::DateTime => parse_datetime_millis(&text)
            .map(Canon::DateTime)
            .ok_or_else(|| mismatch(&text, ty)),
        FieldType::MultiEnum => {
            let mut items: Vec<Cow<'_, str>> = match text {
                Cow::Borrowed(s) => s
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Cow::Borrowed)
                    .collect(),
                Cow::Owned(s) => s
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Cow::Owned(s.to_owned()))
                    .collect(),
            };
            items.sort();
            items.dedup();
            if items.is_empty() {
                Ok(Canon::Blank)
            } else {
                Ok(Canon::Set(items))
            }
        }
    }
}

/// The comparison type of a value whose field type no metadata gives: JSON numbers and
/// booleans (Salesforce's typed values) say what they are; anything else is text.
pub fn infer_type(raw: &Value) -> FieldType {
    match raw {
        Value::Number(_) => FieldType::Number,
        Value::Bool(_) => FieldType::Bool,
        _ => FieldType::Text,
    }
}

fn mismatch(text: &str, ty: FieldType) -> TypeMismatch {
    TypeMismatch {
        value: text.chars().take(80).collect(),
        expected: ty.as_str(),
    }
}

fn parse_decimal(s: &str) -> Option<Decimal> {
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

/// Dates arrive as `YYYY-MM-DD`, as an ISO date-time (its UTC date counts), or as epoch
/// milliseconds (HubSpot's older form).
fn parse_date(s: &str) -> Option<NaiveDate> {
    parse_iso_date(s).or_else(|| parse_datetime_millis(s).and_then(date_of_millis))
}

/// `YYYY-MM-DD`, by hand: chrono's format-string parser costs more than the rest of a
/// field's merge, and dates are compared four times per field.
fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

/// `YYYY-MM-DD`, by hand for the same reason.
fn format_date(d: NaiveDate) -> String {
    use chrono::Datelike;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        return d.format("%Y-%m-%d").to_string();
    }
    let y = y as u32;
    let digits = [
        y / 1000,
        y / 100 % 10,
        y / 10 % 10,
        y % 10,
        10,
        m / 10,
        m % 10,
        10,
        day / 10,
        day % 10,
    ];
    digits
        .iter()
        .map(|&n| {
            if n == 10 {
                '-'
            } else {
                char::from(b'0' + n as u8)
            }
        })
        .collect()
}

/// Date-times arrive as RFC 3339 (`Z` or `+00:00`), Salesforce's `+0000` form, or epoch
/// milliseconds.
pub fn parse_datetime_millis(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.timestamp_millis());
    }
    // A bare date where a date-time is expected: midnight UTC.
    parse_iso_date(s)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: Value, ty: FieldType) -> Canon<'static> {
        match normalize(&v, ty) {
            Ok(c) => c.into_owned(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn numbers_compare_by_value_not_spelling() {
        assert_eq!(
            canon(json!("1.0"), FieldType::Number),
            canon(json!(1), FieldType::Number)
        );
        assert_eq!(
            canon(json!("1200.50"), FieldType::Number),
            canon(json!(1200.5), FieldType::Number)
        );
        assert_eq!(
            canon(json!("1e3"), FieldType::Number),
            canon(json!(1000), FieldType::Number)
        );
        assert_ne!(
            canon(json!("1.01"), FieldType::Number),
            canon(json!(1), FieldType::Number)
        );
    }

    #[test]
    fn multi_selects_ignore_order_spacing_and_repeats() {
        assert_eq!(
            canon(json!("b;a; c"), FieldType::MultiEnum),
            canon(json!("a;c;b;a"), FieldType::MultiEnum)
        );
        assert_eq!(canon(json!(" ; "), FieldType::MultiEnum), Canon::Blank);
    }

    #[test]
    fn booleans_from_strings_and_json() {
        assert_eq!(
            canon(json!("true"), FieldType::Bool),
            canon(json!(true), FieldType::Bool)
        );
        assert!(normalize(&json!("yes please"), FieldType::Bool).is_err());
    }

    #[test]
    fn dates_in_every_wire_form() {
        let d = canon(json!("2024-01-15"), FieldType::Date);
        assert_eq!(d, canon(json!("1705276800000"), FieldType::Date));
        assert_eq!(d, canon(json!("2024-01-15T00:00:00.000Z"), FieldType::Date));
        // A date-only Salesforce field against HubSpot's midnight-UTC date-time.
        assert_eq!(d, canon(json!("2024-01-15T00:00:00Z"), FieldType::DateTime));
    }

    #[test]
    fn datetimes_from_salesforce_offsets_and_hubspot_millis() {
        let a = canon(json!("2024-01-15T10:00:00.000+0000"), FieldType::DateTime);
        let b = canon(json!("2024-01-15T10:00:00Z"), FieldType::DateTime);
        let c = canon(json!("1705312800000"), FieldType::DateTime);
        let d = canon(json!("2024-01-15T12:00:00.000+02:00"), FieldType::DateTime);
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(c, d);
    }

    #[test]
    fn blanks_are_null_empty_or_whitespace() {
        for v in [json!(null), json!(""), json!("   ")] {
            assert_eq!(canon(v, FieldType::Text), Canon::Blank);
        }
    }

    #[test]
    fn emails_compare_without_case_and_keep_their_spelling() {
        let a = canon(json!("Ana@Example.com"), FieldType::Email);
        assert_eq!(a, canon(json!("ana@example.com "), FieldType::Email));
        assert_eq!(
            a.render(Side::Salesforce, FieldType::Email),
            json!("Ana@Example.com")
        );
    }

    #[test]
    fn renders_each_side_in_its_wire_form() {
        let n = canon(json!("1200.50"), FieldType::Number);
        assert_eq!(n.render(Side::Salesforce, FieldType::Number), json!(1200.5));
        assert_eq!(n.render(Side::HubSpot, FieldType::Number), json!("1200.5"));
        let i = canon(json!(42.0), FieldType::Number);
        assert_eq!(i.render(Side::Salesforce, FieldType::Number), json!(42));
        assert_eq!(
            Canon::Blank.render(Side::Salesforce, FieldType::Text),
            json!(null)
        );
        assert_eq!(
            Canon::Blank.render(Side::HubSpot, FieldType::Text),
            json!("")
        );
        let d = canon(json!("2024-01-15"), FieldType::Date);
        assert_eq!(
            d.render(Side::HubSpot, FieldType::DateTime),
            json!("2024-01-15T00:00:00.000Z")
        );
        assert_eq!(
            d.render(Side::Salesforce, FieldType::Date),
            json!("2024-01-15")
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_mismatch_not_a_blank() {
        let raw = json!("N/A");
        let e = normalize(&raw, FieldType::Number);
        assert_eq!(
            e.err(),
            Some(TypeMismatch {
                value: "N/A".into(),
                expected: "number"
            })
        );
    }
}
