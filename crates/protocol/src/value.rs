//! How operation inputs and outputs are represented: `serde_json::Value` shaped by the model.
//!
//! Conventions (every parser produces, every serializer consumes, every handler sees these):
//! - structure: an object keyed by *member names* (never wire names); absent members omitted.
//! - list: an array; map: an object.
//! - string / enum: a string. integer / long / short / byte: an integer number.
//! - float / double: a number (`"NaN"`, `"Infinity"`, `"-Infinity"` as strings).
//! - boolean: a bool.
//! - timestamp: a number of seconds since the epoch (integer when whole, else fractional).
//! - blob (including streaming payloads): a string holding the **standard base64** of the bytes.
//! - document: any JSON value.

use serde_json::Value;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Seconds since the epoch as a JSON number (integer when whole).
pub fn epoch_value(secs: f64) -> Value {
    if secs.fract() == 0.0 && secs.abs() < 9.0e15 {
        Value::from(secs as i64)
    } else {
        serde_json::Number::from_f64(secs).map_or(Value::Null, Value::Number)
    }
}

/// Current time as a timestamp value.
pub fn now_value() -> Value {
    epoch_value(now_secs())
}

/// Current time in fractional seconds since the epoch, rounded to milliseconds.
pub fn now_secs() -> f64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0
}

/// Read a timestamp value (number of epoch seconds).
pub fn value_to_epoch(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn epoch_of(dt: OffsetDateTime) -> f64 {
    dt.unix_timestamp() as f64 + f64::from(dt.nanosecond()) / 1e9
}

fn to_datetime(secs: f64) -> Option<OffsetDateTime> {
    let nanos = (secs * 1e9).round() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// ISO 8601 as AWS writes it: `2015-01-25T08:00:00Z`, with `.123Z` milliseconds when not whole.
pub fn format_iso8601(secs: f64) -> String {
    let Some(dt) = to_datetime(secs) else {
        return String::new();
    };
    let ms = ((secs * 1000.0).round() as i64).rem_euclid(1000);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    if ms == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{ms:03}Z")
    }
}

/// RFC 822 / HTTP date: `Sun, 25 Jan 2015 08:00:00 GMT`.
pub fn format_rfc822(secs: f64) -> String {
    let Some(dt) = to_datetime(secs.floor()) else {
        return String::new();
    };
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[dt.weekday().number_days_from_monday() as usize],
        dt.day(),
        MONTHS[u8::from(dt.month()) as usize - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Parse any timestamp form AWS clients send: epoch seconds (integer or fractional),
/// ISO 8601 / RFC 3339 (with or without offset and fractional seconds), RFC 822.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return Some(n);
    }
    if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(epoch_of(dt));
    }
    if let Ok(dt) = OffsetDateTime::parse(s, &Rfc2822) {
        return Some(epoch_of(dt));
    }
    // RFC 822 with the GMT zone name, which Rfc2822 in `time` does not take.
    if let Some(stripped) = s.strip_suffix(" GMT").or_else(|| s.strip_suffix(" UTC")) {
        let fmt = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second]"
        );
        if let Ok(dt) = PrimitiveDateTime::parse(stripped, &fmt) {
            return Some(dt.assume_offset(UtcOffset::UTC).unix_timestamp() as f64);
        }
    }
    // ISO 8601 without a zone (taken as UTC), optionally with fractional seconds.
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(dt) = PrimitiveDateTime::parse(s, &fmt) {
        return Some(epoch_of(dt.assume_offset(UtcOffset::UTC)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_iso8601(1422172800.0), "2015-01-25T08:00:00Z");
        assert_eq!(format_iso8601(1422172800.123), "2015-01-25T08:00:00.123Z");
        assert_eq!(format_rfc822(1422172800.0), "Sun, 25 Jan 2015 08:00:00 GMT");
        assert_eq!(parse_timestamp("2015-01-25T08:00:00Z"), Some(1422172800.0));
        assert_eq!(
            parse_timestamp("2015-01-25T08:00:00.123Z"),
            Some(1422172800.123)
        );
        assert_eq!(
            parse_timestamp("Sun, 25 Jan 2015 08:00:00 GMT"),
            Some(1422172800.0)
        );
        assert_eq!(parse_timestamp("1422172800"), Some(1422172800.0));
        assert_eq!(parse_timestamp("2015-01-25T08:00:00"), Some(1422172800.0));
        assert_eq!(epoch_value(1.0), Value::from(1));
    }
}
