//! The occurrences of a recurring series, from Graph's `patternedRecurrence` (pattern ×
//! range), the way Exchange expands them: what `instances` lists and what an occurrence id
//! names. Dates are the series' local dates; the window of an `instances` read is compared
//! with the occurrences' local start times as if both were UTC, which is exact for series
//! in UTC and close enough for the tests' windows otherwise.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use serde_json::Value;

/// More than any test series needs; bounds `noEnd` series.
const MAX_OCCURRENCES: usize = 1000;

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "sunday" => Weekday::Sun,
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        _ => return None,
    })
}

/// Reads Graph's local date-times (`2026-12-01T10:00:00.0000000`) and RFC 3339 ones.
pub(crate) fn parse_local(text: &str) -> Option<NaiveDateTime> {
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(dt.naive_utc());
    }
    let trimmed = text.split('.').next()?;
    NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S").ok()
}

/// The day of `month` that is the `index`th (`first`…`fourth`, `last`) of `days`.
fn relative_day(year: i32, month: u32, days: &[Weekday], index: &str) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let matching: Vec<NaiveDate> = first
        .iter_days()
        .take_while(|d| d.month() == month)
        .filter(|d| days.contains(&d.weekday()))
        .collect();
    match index {
        "first" => matching.first().copied(),
        "second" => matching.get(1).copied(),
        "third" => matching.get(2).copied(),
        "fourth" => matching.get(3).copied(),
        "last" => matching.last().copied(),
        _ => None,
    }
}

/// The local dates of a series' occurrences, in order, or None when the recurrence is
/// not one the simulator can expand.
pub(crate) fn dates(recurrence: &Value) -> Option<Vec<NaiveDate>> {
    let pattern = recurrence.get("pattern")?;
    let range = recurrence.get("range")?;
    let ty = pattern.get("type")?.as_str()?;
    let interval = pattern
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1) as i64;
    let days: Vec<Weekday> = pattern
        .get("daysOfWeek")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| weekday(d.as_str()?))
        .collect();
    let day_of_month = pattern
        .get("dayOfMonth")
        .and_then(Value::as_u64)
        .unwrap_or(1) as u32;
    let month = pattern.get("month").and_then(Value::as_u64).unwrap_or(1) as u32;
    let index = pattern
        .get("index")
        .and_then(Value::as_str)
        .unwrap_or("first");
    let start = NaiveDate::parse_from_str(range.get("startDate")?.as_str()?, "%Y-%m-%d").ok()?;
    let end = match range.get("type")?.as_str()? {
        "endDate" => {
            Some(NaiveDate::parse_from_str(range.get("endDate")?.as_str()?, "%Y-%m-%d").ok()?)
        }
        _ => None,
    };
    let count = match range.get("type")?.as_str()? {
        "numbered" => range.get("numberOfOccurrences")?.as_u64()? as usize,
        _ => MAX_OCCURRENCES,
    }
    .min(MAX_OCCURRENCES);

    let mut out = Vec::new();
    let push = |d: NaiveDate, out: &mut Vec<NaiveDate>| -> bool {
        if d < start {
            return true;
        }
        if end.is_some_and(|e| d > e) || out.len() >= count {
            return false;
        }
        out.push(d);
        true
    };
    match ty {
        "daily" => {
            let mut d = start;
            while push(d, &mut out) {
                d += Duration::days(interval);
            }
        }
        "weekly" => {
            // Weeks counted from the one holding the start (Sunday-based, Graph's default).
            let mut week = start - Duration::days(start.weekday().num_days_from_sunday() as i64);
            'weeks: loop {
                for offset in 0..7 {
                    let d = week + Duration::days(offset);
                    if days.contains(&d.weekday()) && !push(d, &mut out) {
                        break 'weeks;
                    }
                }
                week += Duration::weeks(interval);
            }
        }
        "absoluteMonthly" | "relativeMonthly" | "absoluteYearly" | "relativeYearly" => {
            let yearly = ty.ends_with("Yearly");
            let step = if yearly { 12 * interval } else { interval } as i32;
            let (mut y, mut m) = if yearly {
                (start.year(), month)
            } else {
                (start.year(), start.month())
            };
            for _ in 0..MAX_OCCURRENCES * 12 {
                let day = if ty.starts_with("absolute") {
                    NaiveDate::from_ymd_opt(y, m, day_of_month)
                } else {
                    relative_day(y, m, &days, index)
                };
                if let Some(d) = day
                    && !push(d, &mut out)
                {
                    break;
                }
                let months = (m as i32 - 1) + step;
                y += months.div_euclid(12);
                m = (months.rem_euclid(12) + 1) as u32;
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ymd(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn weekly_numbered_and_daily_end_date_series_expand() {
        let weekly = json!({
            "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "wednesday"]},
            "range": {"type": "numbered", "startDate": "2026-12-02", "numberOfOccurrences": 3}
        });
        assert_eq!(
            dates(&weekly).unwrap(),
            vec![ymd("2026-12-02"), ymd("2026-12-14"), ymd("2026-12-16")]
        );
        let daily = json!({
            "pattern": {"type": "daily", "interval": 3},
            "range": {"type": "endDate", "startDate": "2026-12-30", "endDate": "2027-01-05"}
        });
        assert_eq!(
            dates(&daily).unwrap(),
            vec![ymd("2026-12-30"), ymd("2027-01-02"), ymd("2027-01-05")]
        );
    }

    #[test]
    fn monthly_series_skip_months_without_the_day_and_find_relative_days() {
        let absolute = json!({
            "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
            "range": {"type": "numbered", "startDate": "2027-01-01", "numberOfOccurrences": 3}
        });
        assert_eq!(
            dates(&absolute).unwrap(),
            vec![ymd("2027-01-31"), ymd("2027-03-31"), ymd("2027-05-31")]
        );
        let relative = json!({
            "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "range": {"type": "numbered", "startDate": "2027-01-01", "numberOfOccurrences": 2}
        });
        assert_eq!(
            dates(&relative).unwrap(),
            vec![ymd("2027-01-29"), ymd("2027-02-26")]
        );
    }
}
