//! Durations as users write them in specs: Go's `time.ParseDuration` forms (`720h`, `90m`, `1h30m`,
//! `1.5h`, `0`), without a sign. The API server checks the same shape with [`PATTERN`] and compares
//! them with CEL's `duration()`, which is Go's parser; this one is for the operator's own arithmetic.

use std::time::Duration;

/// The OpenAPI pattern every duration field carries. Negative durations never match.
pub const PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$";

/// Longest duration string the schema accepts; bounds the cost of CEL rules that read it.
pub const MAX_LENGTH: u32 = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration {0:?} is not of the form 720h, 90m or 1h30m")]
    Malformed(String),
    #[error("duration {0:?} is too long")]
    Overflow(String),
}

/// Parses a non-negative Go-style duration. `"0"` is the only form without a unit.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_owned());
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(malformed());
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (whole, after) = split_digits(rest);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => split_digits(after),
            None => ("", after),
        };
        let dotted = after.len() + fraction.len() + whole.len() < rest.len();
        if whole.is_empty() || (dotted && fraction.is_empty()) {
            return Err(malformed());
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err(malformed()),
        };
        let overflow = || DurationError::Overflow(text.to_owned());
        let whole: u128 = whole.parse().map_err(|_| overflow())?;
        let mut nanos = whole.checked_mul(nanos_per_unit).ok_or_else(overflow)?;
        if !fraction.is_empty() {
            // Like Go, digits past nanosecond precision are dropped rather than rounded.
            let digits = fraction.len().min(30) as u32;
            let fraction: u128 = fraction[..digits as usize].parse().map_err(|_| overflow())?;
            nanos += fraction * nanos_per_unit / 10u128.pow(digits);
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        rest = after;
    }
    // Go's limit: durations are an int64 count of nanoseconds (about 292 years).
    if total > i64::MAX as u128 {
        return Err(DurationError::Overflow(text.to_owned()));
    }
    Ok(Duration::from_nanos(total as u64))
}

fn split_digits(text: &str) -> (&str, &str) {
    text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn accepts_go_forms() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("720h", Duration::from_secs(720 * H)),
            ("90m", Duration::from_secs(90 * 60)),
            ("1h30m", Duration::from_secs(90 * 60)),
            ("1.5h", Duration::from_secs(90 * 60)),
            ("2h45m30.5s", Duration::from_millis((2 * H * 1000) + 45 * 60_000 + 30_500)),
            ("10ms", Duration::from_millis(10)),
            ("7us", Duration::from_micros(7)),
            ("3ns", Duration::from_nanos(3)),
            ("1m1m", Duration::from_secs(120)),
            ("87600h", Duration::from_secs(87600 * H)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_what_the_schema_rejects() {
        for text in ["", "-1h", "+1h", "h", "1", "10", "1d", "1H", "1h ", " 1h", "1.h", ".5h", "1h-", "1.5.5h", "1µs"]
        {
            assert!(matches!(parse(text), Err(DurationError::Malformed(_))), "{text} should be malformed");
        }
    }

    #[test]
    fn rejects_what_go_cannot_hold() {
        assert!(matches!(parse("2562048h"), Err(DurationError::Overflow(_))));
        assert!(matches!(parse("99999999999999999999999999999999999999999h"), Err(DurationError::Overflow(_))));
        assert!(parse("2562047h").is_ok());
    }
}
