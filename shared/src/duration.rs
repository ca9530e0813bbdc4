//! Durations as an operator writes them in a config file: "500ms", "6s", "2m", "1h".

use std::time::Duration;

/// Parses "500ms", "6s", "2m" or "1h" (an unsigned integer and a unit, nothing else).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("{text:?} has no unit: write for example \"500ms\", \"6s\" or \"2m\"")
    })?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "{text:?} does not start with a number: write for example \"6s\""
        ));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{number:?} in {text:?} is too large"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or("too large")?,
        "h" => n
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or("too large")?,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    Ok(duration)
}

/// Formats a duration the way [`parse`] reads it, choosing the largest exact unit.
pub fn format(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("6s"), Ok(Duration::from_secs(6)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("8h"), Ok(Duration::from_secs(8 * 3600)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "",
            "6",
            "s",
            "6 s",
            "-1s",
            "1.5s",
            "6sec",
            "99999999999999999999s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["500ms", "6s", "2m", "8h", "0s", "1500ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
