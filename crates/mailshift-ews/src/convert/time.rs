//! Date-times between iCalendar (`20261201T090000Z`, `;TZID=…:20261201T090000`,
//! `;VALUE=DATE:20261201`) and xs:dateTime as EWS writes them (`2026-12-01T09:00:00Z`,
//! `2026-12-01T09:00:00+01:00`), with no time-zone database: local times are sent without an
//! offset under the request's time-zone context, and offsets read back are folded into UTC by
//! plain calendar arithmetic.

use mailshift_dav::object::ContentLine;

/// An iCalendar DATE or DATE-TIME value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcalTime {
    /// `2026-12-01`
    pub date: String,
    /// `09:00:00`; None for a DATE.
    pub time: Option<String>,
    pub utc: bool,
    pub tzid: Option<String>,
}

impl IcalTime {
    /// Reads a DTSTART/DTEND/DUE/… line; None when its value is no date.
    pub fn read(line: &ContentLine) -> Option<IcalTime> {
        let value = line.value.trim();
        let (date, rest) = value.split_at_checked(8)?;
        if !date.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let date = format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..]);
        if rest.is_empty() {
            return Some(IcalTime {
                date,
                time: None,
                utc: false,
                tzid: None,
            });
        }
        let rest = rest.strip_prefix('T')?;
        let (hms, utc) = match rest.strip_suffix('Z') {
            Some(hms) => (hms, true),
            None => (rest, false),
        };
        if hms.len() != 6 || !hms.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(IcalTime {
            date,
            time: Some(format!("{}:{}:{}", &hms[..2], &hms[2..4], &hms[4..])),
            utc,
            tzid: if utc {
                None
            } else {
                line.param("TZID").map(str::to_string)
            },
        })
    }

    /// As xs:dateTime: UTC with `Z`; a local or floating time without offset (read in the
    /// request's time-zone context); a date at midnight.
    pub fn to_xs(&self) -> String {
        let time = self.time.as_deref().unwrap_or("00:00:00");
        let zone = if self.utc { "Z" } else { "" };
        format!("{}T{time}{zone}", self.date)
    }
}

/// An xs:dateTime as EWS returns it, in UTC: `(2026-12-01, 08:00:00)`. An offset is folded in;
/// a value without one is taken as UTC (what Exchange answers in).
pub fn xs_utc(value: &str) -> Option<(String, String)> {
    let value = value.trim();
    let (date, rest) = value.split_once('T')?;
    let (time, offset) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(at) = rest.rfind(['+', '-']).filter(|&at| at >= 8) {
        let (t, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        (
            t,
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?),
        )
    } else {
        (rest, 0)
    };
    let time = time.split('.').next()?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (
        hms.next()??,
        hms.next()??,
        hms.next().flatten().unwrap_or(0),
    );
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let minutes = days_from_civil(y, mo, d) * 1440 + h * 60 + m - offset;
    let (days, rem) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let (y, mo, d) = civil_from_days(days);
    Some((
        format!("{y:04}-{mo:02}-{d:02}"),
        format!("{:02}:{:02}:{s:02}", rem / 60, rem % 60),
    ))
}

/// `2026-12-01T08:00:00Z` → `20261201T080000Z`.
pub fn ical_utc(value: &str) -> Option<String> {
    let (date, time) = xs_utc(value)?;
    Some(format!(
        "{}T{}Z",
        date.replace('-', ""),
        time.replace(':', "")
    ))
}

/// The date part of an xs:dateTime as an iCalendar DATE (`20261201`), without conversion
/// (Exchange's all-day values and task dates are dates at midnight).
pub fn ical_date(value: &str) -> Option<String> {
    let date = value.trim().get(..10)?;
    let out = date.replace('-', "");
    (out.len() == 8 && out.bytes().all(|b| b.is_ascii_digit())).then_some(out)
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian, day 0 = 1970-01-01).
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> ContentLine {
        let card = format!("BEGIN:VTODO\r\n{text}\r\nEND:VTODO\r\n");
        mailshift_dav::object::components(card.as_bytes()).unwrap()[0].lines[0].clone()
    }

    #[test]
    fn ical_values_become_xs_date_times() {
        let t = IcalTime::read(&line("DUE;TZID=Europe/Paris:20261201T090000")).unwrap();
        assert_eq!(t.tzid.as_deref(), Some("Europe/Paris"));
        assert_eq!(t.to_xs(), "2026-12-01T09:00:00");
        let t = IcalTime::read(&line("DUE:20261201T090000Z")).unwrap();
        assert_eq!(t.to_xs(), "2026-12-01T09:00:00Z");
        let t = IcalTime::read(&line("DUE;VALUE=DATE:20261201")).unwrap();
        assert_eq!(
            (t.to_xs(), t.time),
            ("2026-12-01T00:00:00".to_string(), None)
        );
        assert_eq!(IcalTime::read(&line("DUE:soon")), None);
    }

    #[test]
    fn offsets_fold_into_utc_across_days_and_years() {
        assert_eq!(
            ical_utc("2026-12-01T09:00:00Z").as_deref(),
            Some("20261201T090000Z")
        );
        assert_eq!(
            ical_utc("2027-01-01T00:30:00+01:00").as_deref(),
            Some("20261231T233000Z")
        );
        assert_eq!(
            ical_utc("2024-02-28T23:00:00-02:00").as_deref(),
            Some("20240229T010000Z")
        );
        assert_eq!(
            ical_utc("2026-12-01T09:00:00.000").as_deref(),
            Some("20261201T090000Z")
        );
        assert_eq!(
            ical_date("2027-04-15T00:00:00Z").as_deref(),
            Some("20270415")
        );
    }
}
