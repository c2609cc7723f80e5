//! Serde for durations as whole milliseconds in JSON and humantime-like strings (`"5s"`) in
//! TOML; both forms are accepted when reading.
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serializer};

/// Writes a duration as milliseconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Millis(u64),
    Text(String),
}

/// Reads milliseconds, or a string like `500ms`, `5s`, `2m`, `1h`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Repr::deserialize(d)? {
        Repr::Millis(ms) => Ok(Duration::from_millis(ms)),
        Repr::Text(t) => parse(&t).map_err(de::Error::custom),
    }
}

/// Parses `<number><unit>` with unit one of `ms`, `s`, `m`, `h`.
///
/// # Errors
/// A message naming the bad text when it has no unit, an unknown unit or no number.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected e.g. \"500ms\", \"5s\", \"2m\"")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be ms, s, m or h"
            ))
        }
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_garbage() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert!(parse("5").is_err());
        assert!(parse("s").is_err());
        assert!(parse("5x").is_err());
    }
}
