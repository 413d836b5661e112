//! Times as people and programs read them; the state and the status model keep Unix seconds.

/// `2026-11-22T17:30:00Z`: the JSON views (`/api/status`).
pub fn rfc3339(secs: u64) -> String {
    utc(secs).map_or_else(
        || secs.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// `2026-11-22 17:30:00 UTC`: the text views (`status`, `state list`, `state show`).
pub fn human(secs: u64) -> String {
    utc(secs).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// `2026-11-29 14:05 UTC`, rounded up to the minute: when a pause ends (a run at the minute
/// shown is never early).
pub fn minute(secs: u64) -> String {
    let up = secs.div_ceil(60).saturating_mul(60);
    utc(up).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn utc(secs: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn human_times_are_utc_seconds() {
        assert_eq!(human(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(human(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(human(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn minutes_round_up() {
        assert_eq!(minute(1_700_000_000), "2023-11-14 22:14 UTC");
        assert_eq!(minute(1_699_999_980), "2023-11-14 22:13 UTC");
    }
}
