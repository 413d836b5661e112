//! Events: one iCalendar unit (a VEVENT, or a recurring master with its RECURRENCE-ID
//! overrides, one UID) ↔ an Exchange `CalendarItem` with its recurrence, deleted occurrences
//! and modified occurrences, written and read as one unit.
//!
//! Carried: UID (CalendarItem UID), SUMMARY, DESCRIPTION, LOCATION, CLASS, CATEGORIES,
//! PRIORITY, TRANSP (LegacyFreeBusyStatus), DTSTART/DTEND (or DURATION in whole days, hours,
//! minutes), all-day events, the first VALARM's trigger before the start (the reminder),
//! ATTENDEEs (required, optional, resources; PARTSTAT as ResponseType), ORGANIZER read from
//! Exchange, RRULE (the patterns Exchange has: daily, weekly, monthly and yearly by day or
//! by n-th weekday, with COUNT, UNTIL or no end), EXDATE (deleted occurrences, by their
//! position in the series) and overrides (modified occurrences). Time zones: a TZID becomes
//! the Windows id Exchange keeps (StartTimeZone/EndTimeZone, and the request's
//! TimeZoneContext so local times are read in it); read back, times are written in the
//! item's zone under its IANA id, with a VTIMEZONE from the definition Exchange keeps in
//! StartTimeZone (`zone`); a TZID with no Windows id goes as the UTC instants its
//! VTIMEZONE gives. A modified occurrence deletes the series' fields its override
//! lacks ([`inherited`]).
//!
//! Not carried, and reported: ORGANIZER when writing (Exchange makes the mailbox owner the
//! organizer), RRULEs Exchange has no pattern for (the first occurrence is written alone),
//! RDATE, a second VALARM, and any other property.

use mailshift_dav::object::{Block, ContentLine, components, iana_to_windows, windows_to_iana};

use super::task::{item_fields, item_lines, present_item};
use super::time::{IcalTime, ical_utc, xs_utc};
use super::zone::Rules;
use super::{Field, Outgoing, Uri, escape, fold, text_xml, unescape};
use crate::xml::{self, Node};

/// A series (or a single event) to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub master: Outgoing,
    /// Positions (1-based) of the occurrences to delete after creating the master.
    pub deleted: Vec<u32>,
    /// Positions and fields of the occurrences to modify.
    pub modified: Vec<(u32, Outgoing)>,
}

/// The Windows id Exchange keeps for a TZID (already a Windows id, or an IANA id CLDR maps).
pub fn windows_zone(tzid: &str) -> Option<String> {
    if windows_to_iana(tzid).is_some() {
        return Some(tzid.trim().to_string());
    }
    iana_to_windows(tzid).map(str::to_string)
}

const DAYS: &[(&str, &str)] = &[
    ("SU", "Sunday"),
    ("MO", "Monday"),
    ("TU", "Tuesday"),
    ("WE", "Wednesday"),
    ("TH", "Thursday"),
    ("FR", "Friday"),
    ("SA", "Saturday"),
];

const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const INDEXES: &[(i32, &str)] = &[
    (1, "First"),
    (2, "Second"),
    (3, "Third"),
    (4, "Fourth"),
    (-1, "Last"),
];

/// A recurrence pattern both sides have.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Daily(u32),
    /// Interval, weekdays (0 = Sunday).
    Weekly(u32, Vec<u8>),
    AbsoluteMonthly(u32, u32),
    /// Interval, weekdays, index (1–4, -1 last).
    RelativeMonthly(u32, Vec<u8>, i32),
    /// Day, month (1–12).
    AbsoluteYearly(u32, u32),
    /// Weekdays, index, month.
    RelativeYearly(Vec<u8>, i32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Range {
    NoEnd,
    Count(u32),
    /// The last date (`2027-01-31`).
    Until(String),
}

/// RRULE → pattern and range; Err names what Exchange has no pattern for.
fn read_rrule(rule: &str, start: (i64, i64, i64)) -> Result<(Pattern, Range), String> {
    let mut freq = "";
    let (mut interval, mut count, mut until) = (1u32, None, None);
    let (mut byday, mut bymonthday, mut bymonth, mut bysetpos) = (None, None, None, None);
    for part in rule.split(';') {
        let (k, v) = part.split_once('=').ok_or("a part without =")?;
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => freq = v,
            "INTERVAL" => interval = v.parse().map_err(|_| "INTERVAL")?,
            "COUNT" => count = Some(v.parse::<u32>().map_err(|_| "COUNT")?),
            "UNTIL" => until = Some(v.to_string()),
            "BYDAY" => byday = Some(v.to_ascii_uppercase()),
            "BYMONTHDAY" => bymonthday = Some(v.parse::<u32>().map_err(|_| "BYMONTHDAY")?),
            "BYMONTH" => bymonth = Some(v.parse::<u32>().map_err(|_| "BYMONTH")?),
            "BYSETPOS" => bysetpos = Some(v.parse::<i32>().map_err(|_| "BYSETPOS")?),
            "WKST" => {}
            other => return Err(format!("{other} (Exchange has no such rule part)")),
        }
    }
    // BYDAY: plain days, or one n-th weekday (`2TU`, `-1FR`).
    let mut days = Vec::new();
    let mut nth = bysetpos;
    for day in byday.iter().flat_map(|d| d.split(',')) {
        let split = day.len().saturating_sub(2);
        let (n, code) = day.split_at(split);
        let index = DAYS
            .iter()
            .position(|(c, _)| *c == code)
            .ok_or_else(|| format!("BYDAY={day}"))?;
        if !n.is_empty() {
            let n: i32 = n.parse().map_err(|_| format!("BYDAY={day}"))?;
            if nth.is_some_and(|x| x != n) {
                return Err("BYDAY with several different positions".into());
            }
            nth = Some(n);
        }
        days.push(index as u8);
    }
    if let Some(n) = nth
        && !INDEXES.iter().any(|(i, _)| *i == n)
    {
        return Err(format!("the position {n} (Exchange has 1 to 4 and last)"));
    }
    let (_, sm, sd) = start;
    let weekday = weekday(start);
    let pattern = match freq.to_ascii_uppercase().as_str() {
        "DAILY" if days.is_empty() => Pattern::Daily(interval),
        "WEEKLY" => Pattern::Weekly(interval, if days.is_empty() { vec![weekday] } else { days }),
        "MONTHLY" => match (nth, days.is_empty(), bymonthday) {
            (None, true, d) => Pattern::AbsoluteMonthly(interval, d.unwrap_or(sd as u32)),
            (Some(n), false, None) => Pattern::RelativeMonthly(interval, days, n),
            _ => return Err("this monthly rule".into()),
        },
        "YEARLY" if interval == 1 => {
            let month = bymonth.unwrap_or(sm as u32);
            match (nth, days.is_empty(), bymonthday) {
                (None, true, d) => Pattern::AbsoluteYearly(d.unwrap_or(sd as u32), month),
                (Some(n), false, None) => Pattern::RelativeYearly(days, n, month),
                _ => return Err("this yearly rule".into()),
            }
        }
        other => return Err(format!("FREQ={other} with these parts")),
    };
    let range = match (count, until) {
        (Some(n), _) => Range::Count(n),
        (None, Some(u)) => {
            let d = u.get(..8).ok_or("UNTIL")?;
            Range::Until(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]))
        }
        (None, None) => Range::NoEnd,
    };
    Ok((pattern, range))
}

fn days_xml(days: &[u8]) -> String {
    let mut sorted = days.to_vec();
    sorted.sort();
    sorted.dedup();
    let weekdays = [1, 2, 3, 4, 5];
    if sorted == weekdays {
        return "Weekday".into();
    }
    if sorted == [0, 6] {
        return "WeekendDay".into();
    }
    if sorted.len() == 7 {
        return "Day".into();
    }
    sorted
        .iter()
        .map(|d| DAYS[*d as usize].1)
        .collect::<Vec<_>>()
        .join(" ")
}

fn index_name(n: i32) -> &'static str {
    INDEXES
        .iter()
        .find(|(i, _)| *i == n)
        .map(|(_, name)| *name)
        .unwrap_or("Last")
}

fn recurrence_xml(pattern: &Pattern, range: &Range, start_date: &str) -> String {
    let mut p = String::new();
    match pattern {
        Pattern::Daily(i) => {
            p += &format!("<t:DailyRecurrence><t:Interval>{i}</t:Interval></t:DailyRecurrence>")
        }
        Pattern::Weekly(i, days) => {
            p += &format!(
                "<t:WeeklyRecurrence><t:Interval>{i}</t:Interval><t:DaysOfWeek>{}</t:DaysOfWeek></t:WeeklyRecurrence>",
                days_xml(days)
            )
        }
        Pattern::AbsoluteMonthly(i, d) => {
            p += &format!(
                "<t:AbsoluteMonthlyRecurrence><t:Interval>{i}</t:Interval><t:DayOfMonth>{d}</t:DayOfMonth></t:AbsoluteMonthlyRecurrence>"
            )
        }
        Pattern::RelativeMonthly(i, days, n) => {
            p += &format!(
                "<t:RelativeMonthlyRecurrence><t:Interval>{i}</t:Interval><t:DaysOfWeek>{}</t:DaysOfWeek><t:DayOfWeekIndex>{}</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>",
                days_xml(days),
                index_name(*n)
            )
        }
        Pattern::AbsoluteYearly(d, m) => {
            p += &format!(
                "<t:AbsoluteYearlyRecurrence><t:DayOfMonth>{d}</t:DayOfMonth><t:Month>{}</t:Month></t:AbsoluteYearlyRecurrence>",
                MONTHS[(*m as usize).clamp(1, 12) - 1]
            )
        }
        Pattern::RelativeYearly(days, n, m) => {
            p += &format!(
                "<t:RelativeYearlyRecurrence><t:DaysOfWeek>{}</t:DaysOfWeek><t:DayOfWeekIndex>{}</t:DayOfWeekIndex><t:Month>{}</t:Month></t:RelativeYearlyRecurrence>",
                days_xml(days),
                index_name(*n),
                MONTHS[(*m as usize).clamp(1, 12) - 1]
            )
        }
    }
    match range {
        Range::NoEnd => {
            p += &format!(
                "<t:NoEndRecurrence><t:StartDate>{start_date}</t:StartDate></t:NoEndRecurrence>"
            )
        }
        Range::Count(n) => {
            p += &format!(
                "<t:NumberedRecurrence><t:StartDate>{start_date}</t:StartDate><t:NumberOfOccurrences>{n}</t:NumberOfOccurrences></t:NumberedRecurrence>"
            )
        }
        Range::Until(d) => {
            p += &format!(
                "<t:EndDateRecurrence><t:StartDate>{start_date}</t:StartDate><t:EndDate>{d}</t:EndDate></t:EndDateRecurrence>"
            )
        }
    }
    format!("<t:Recurrence>{p}</t:Recurrence>")
}

fn ymd(date: &str) -> Option<(i64, i64, i64)> {
    let mut it = date.get(..10)?.split('-').map(|p| p.parse::<i64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn day_number((y, m, d): (i64, i64, i64)) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468
}

/// 0 = Sunday.
fn weekday(date: (i64, i64, i64)) -> u8 {
    (day_number(date) + 4).rem_euclid(7) as u8
}

fn month_length(y: i64, m: i64) -> i64 {
    let next = if m == 12 {
        (y + 1, 1, 1)
    } else {
        (y, m + 1, 1)
    };
    day_number(next) - day_number((y, m, 1))
}

fn from_day_number(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Whether `date` is the `n`-th (or last, -1) of its weekday in its month.
fn is_nth(date: (i64, i64, i64), n: i32) -> bool {
    let (y, m, d) = date;
    if n == -1 {
        d + 7 > month_length(y, m)
    } else {
        (d - 1) / 7 + 1 == i64::from(n)
    }
}

/// Whether the pattern has an occurrence on `date`, for a series starting on `start`.
fn matches(pattern: &Pattern, start: (i64, i64, i64), date: (i64, i64, i64)) -> bool {
    let months =
        |i: u32| ((date.0 - start.0) * 12 + date.1 - start.1).rem_euclid(i64::from(i)) == 0;
    let wd = weekday(date);
    match pattern {
        Pattern::Daily(i) => (day_number(date) - day_number(start)).rem_euclid(i64::from(*i)) == 0,
        Pattern::Weekly(i, days) => {
            // Weeks counted from the Sunday of the start's week (Exchange's default).
            let week = |d| (day_number(d) - i64::from(weekday(d))) / 7;
            days.contains(&wd) && (week(date) - week(start)).rem_euclid(i64::from(*i)) == 0
        }
        Pattern::AbsoluteMonthly(i, d) => {
            months(*i) && date.2 == i64::from(*d).min(month_length(date.0, date.1))
        }
        Pattern::RelativeMonthly(i, days, n) => {
            months(*i) && days.contains(&wd) && is_nth(date, *n)
        }
        Pattern::AbsoluteYearly(d, m) => date.1 == i64::from(*m) && date.2 == i64::from(*d),
        Pattern::RelativeYearly(days, n, m) => {
            date.1 == i64::from(*m) && days.contains(&wd) && is_nth(date, *n)
        }
    }
}

/// The position (1-based) of the occurrence on `target` in the series, if it has one there.
fn position(
    pattern: &Pattern,
    range: &Range,
    start: (i64, i64, i64),
    target: (i64, i64, i64),
) -> Option<u32> {
    let (first, last) = (day_number(start), day_number(target));
    let until = match range {
        Range::Until(d) => ymd(d).map(day_number),
        _ => None,
    };
    let mut n = 0u32;
    for day in first..=last {
        let date = from_day_number(day);
        if !matches(pattern, start, date) {
            continue;
        }
        n += 1;
        if matches!(range, Range::Count(c) if n > *c) || until.is_some_and(|u| day > u) {
            return None;
        }
        if day == last {
            return Some(n);
        }
    }
    None
}

/// Minutes before the start of a VALARM's relative TRIGGER (`-PT15M`, `-P1D`, `-PT1H30M`).
fn trigger_minutes(value: &str) -> Option<u32> {
    let value = value.trim();
    let rest = value
        .strip_prefix("-P")
        .or_else(|| value.strip_prefix("P"))?;
    if !value.starts_with('-')
        && rest
            .trim_start_matches(['T', '0', 'M', 'S', 'H', 'D'])
            .is_empty()
    {
        return Some(0);
    }
    let (mut total, mut number) = (0u32, 0u32);
    for c in rest.chars() {
        match c {
            '0'..='9' => number = number * 10 + c.to_digit(10)?,
            'W' => (total, number) = (total + number * 7 * 1440, 0),
            'D' => (total, number) = (total + number * 1440, 0),
            'H' => (total, number) = (total + number * 60, 0),
            'M' => (total, number) = (total + number, 0),
            'S' => number = 0,
            'T' => {}
            _ => return None,
        }
    }
    value.starts_with('-').then_some(total)
}

/// A DURATION in whole minutes (`PT1H30M`, `P1D`).
fn duration_minutes(value: &str) -> Option<i64> {
    let rest = value.trim().strip_prefix('P')?;
    let (mut total, mut number) = (0i64, 0i64);
    for c in rest.chars() {
        match c {
            '0'..='9' => number = number * 10 + i64::from(c.to_digit(10)?),
            'W' => (total, number) = (total + number * 7 * 1440, 0),
            'D' => (total, number) = (total + number * 1440, 0),
            'H' => (total, number) = (total + number * 60, 0),
            'M' => (total, number) = (total + number, 0),
            'S' => number = 0,
            'T' => {}
            _ => return None,
        }
    }
    Some(total)
}

/// `start` plus minutes, keeping its kind (date, local, UTC).
fn add_minutes(start: &IcalTime, minutes: i64) -> Option<IcalTime> {
    let (y, m, d) = ymd(&start.date)?;
    let time = start.time.as_deref().unwrap_or("00:00:00");
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    let total = day_number((y, m, d)) * 1440 + h * 60 + mi + minutes;
    let (y, m, d) = from_day_number(total.div_euclid(1440));
    let rem = total.rem_euclid(1440);
    Some(IcalTime {
        date: format!("{y:04}-{m:02}-{d:02}"),
        time: start
            .time
            .as_ref()
            .map(|_| format!("{:02}:{:02}:{s:02}", rem / 60, rem % 60)),
        utc: start.utc,
        tzid: start.tzid.clone(),
    })
}

fn field(uri: &'static str, xml: String) -> Field {
    Field {
        uri: Uri::Plain(uri),
        container: None,
        entry: None,
        xml,
    }
}

fn attendee_xml(line: &ContentLine) -> String {
    let address = line.value.trim();
    let address = address
        .strip_prefix("mailto:")
        .or_else(|| address.strip_prefix("MAILTO:"))
        .unwrap_or(address);
    let mut out = String::from("<t:Attendee><t:Mailbox>");
    if let Some(name) = line.param("CN") {
        out += &text_xml("Name", name);
    }
    out += &text_xml("EmailAddress", address);
    out += "</t:Mailbox>";
    let response = match line
        .param("PARTSTAT")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("ACCEPTED") => Some("Accept"),
        Some("DECLINED") => Some("Decline"),
        Some("TENTATIVE") => Some("Tentative"),
        Some("NEEDS-ACTION") => Some("NoResponseReceived"),
        _ => None,
    };
    if let Some(r) = response {
        out += &text_xml("ResponseType", r);
    }
    out + "</t:Attendee>"
}

/// One VEVENT as an item's fields (`series` false for an override: no recurrence, no UID).
fn event(
    ev: &Block,
    zones: &[&Block],
    mailbox: &str,
    recurrence: Option<&str>,
    master: bool,
) -> Result<Outgoing, String> {
    let mut out = Outgoing {
        element: "CalendarItem",
        item_fields: Vec::new(),
        uid: None,
        fields: Vec::new(),
        photo: None,
        zone: None,
        lost: Vec::new(),
    };
    item_fields(ev, &mut out);
    let alarms: Vec<&Block> = ev.children.iter().filter(|c| c.name == "VALARM").collect();
    let reminder = alarms
        .first()
        .and_then(|a| a.line("TRIGGER"))
        .filter(|t| {
            t.param("VALUE").is_none()
                && t.param("RELATED")
                    .is_none_or(|r| r.eq_ignore_ascii_case("START"))
        })
        .and_then(|t| trigger_minutes(&t.value));
    if alarms.len() > reminder.map_or(0, |_| 1) {
        out.lost.push(format!(
            "{} alarm(s) (Exchange keeps one reminder before the start)",
            alarms.len() - reminder.map_or(0, |_| 1)
        ));
    }
    out.item_fields.push(field(
        "item:ReminderIsSet",
        text_xml(
            "ReminderIsSet",
            if reminder.is_some() { "true" } else { "false" },
        ),
    ));
    if let Some(minutes) = reminder {
        out.item_fields.push(field(
            "item:ReminderMinutesBeforeStart",
            text_xml("ReminderMinutesBeforeStart", &minutes.to_string()),
        ));
    }
    if master && let Some(uid) = ev.line("UID") {
        out.fields
            .push(field("calendar:UID", text_xml("UID", uid.value.trim())));
    }
    let start = ev
        .line("DTSTART")
        .and_then(IcalTime::read)
        .ok_or("a VEVENT without a DTSTART Exchange can read")?;
    let end = match (
        ev.line("DTEND").and_then(IcalTime::read),
        ev.line("DURATION"),
    ) {
        (Some(end), _) => end,
        (None, Some(d)) => duration_minutes(&d.value)
            .and_then(|m| add_minutes(&start, m))
            .ok_or_else(|| format!("DURATION {}", d.value))?,
        (None, None) => {
            add_minutes(&start, if start.time.is_none() { 1440 } else { 0 }).ok_or("DTSTART")?
        }
    };
    let all_day = start.time.is_none();
    // A TZID with no Windows id (Outlook's "Customized Time Zone", a zone CLDR does not
    // map): its times are sent as the UTC instants the object's VTIMEZONE gives, so the
    // event stays at the right moment though Exchange keeps no zone for it.
    let zone = |t: &IcalTime, out: &mut Outgoing| -> (IcalTime, Option<String>) {
        let Some(tzid) = t.tzid.as_deref() else {
            return (t.clone(), None);
        };
        if let Some(w) = windows_zone(tzid) {
            return (t.clone(), Some(w));
        }
        let instant = zones
            .iter()
            .find(|z| z.line("TZID").is_some_and(|l| l.value.trim() == tzid))
            .and_then(|z| Rules::from_vtimezone(z))
            .and_then(|r| r.utc(&t.date, t.time.as_deref()?));
        let Some(u) = instant.filter(|u| u.len() == 16) else {
            out.lost.push(format!(
                "the time zone {tzid:?} (no Windows zone known for it; its times are taken as UTC)"
            ));
            return (t.clone(), None);
        };
        out.lost.push(format!(
            "the time zone {tzid:?} (no Windows zone known for it; its times are sent as the UTC instants its VTIMEZONE gives)"
        ));
        let utc = IcalTime {
            date: format!("{}-{}-{}", &u[..4], &u[4..6], &u[6..8]),
            time: Some(format!("{}:{}:{}", &u[9..11], &u[11..13], &u[13..15])),
            utc: true,
            tzid: None,
        };
        (utc, None)
    };
    let (start, start_zone) = zone(&start, &mut out);
    let (end, end_zone) = zone(&end, &mut out);
    out.lost.dedup();
    out.zone = start_zone.clone();
    let xs = |t: &IcalTime, z: &Option<String>| {
        // A local time whose zone is unknown is sent as UTC rather than in another's context.
        if t.tzid.is_some() && z.is_none() {
            format!("{}Z", t.to_xs())
        } else {
            t.to_xs()
        }
    };
    out.fields.push(field(
        "calendar:Start",
        text_xml("Start", &xs(&start, &start_zone)),
    ));
    out.fields
        .push(field("calendar:End", text_xml("End", &xs(&end, &end_zone))));
    out.fields.push(field(
        "calendar:IsAllDayEvent",
        text_xml("IsAllDayEvent", if all_day { "true" } else { "false" }),
    ));
    let free = ev
        .line("TRANSP")
        .is_some_and(|t| t.value.trim().eq_ignore_ascii_case("TRANSPARENT"));
    out.fields.push(field(
        "calendar:LegacyFreeBusyStatus",
        text_xml("LegacyFreeBusyStatus", if free { "Free" } else { "Busy" }),
    ));
    if let Some(location) = ev
        .line("LOCATION")
        .map(|l| unescape(&l.value))
        .filter(|l| !l.is_empty())
    {
        out.fields
            .push(field("calendar:Location", text_xml("Location", &location)));
    }
    if let Some(organizer) = ev.line("ORGANIZER") {
        let address = organizer
            .value
            .trim()
            .trim_start_matches("mailto:")
            .trim_start_matches("MAILTO:");
        if !address.eq_ignore_ascii_case(mailbox) {
            out.lost.push(format!(
                "ORGANIZER {address} (Exchange makes the mailbox owner the organizer)"
            ));
        }
    }
    let (mut required, mut optional, mut resources) = (String::new(), String::new(), String::new());
    for attendee in ev.all("ATTENDEE") {
        let role = attendee
            .param("ROLE")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let cutype = attendee
            .param("CUTYPE")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let xml = attendee_xml(attendee);
        if cutype == "RESOURCE" || cutype == "ROOM" {
            resources += &xml;
        } else if role == "OPT-PARTICIPANT" || role == "NON-PARTICIPANT" {
            optional += &xml;
        } else {
            required += &xml;
        }
    }
    for (list, element, uri) in [
        (required, "RequiredAttendees", "calendar:RequiredAttendees"),
        (optional, "OptionalAttendees", "calendar:OptionalAttendees"),
        (resources, "Resources", "calendar:Resources"),
    ] {
        if !list.is_empty() {
            out.fields
                .push(field(uri, format!("<t:{element}>{list}</t:{element}>")));
        }
    }
    if let Some(recurrence) = recurrence {
        out.fields
            .push(field("calendar:Recurrence", recurrence.to_string()));
    }
    if master && let Some(z) = &start_zone {
        out.fields.push(field(
            "calendar:StartTimeZone",
            format!("<t:StartTimeZone Id=\"{}\"/>", xml::escape(z)),
        ));
    }
    if master && let Some(z) = &end_zone {
        out.fields.push(field(
            "calendar:EndTimeZone",
            format!("<t:EndTimeZone Id=\"{}\"/>", xml::escape(z)),
        ));
    }
    let carried = [
        "UID",
        "DTSTAMP",
        "SUMMARY",
        "DESCRIPTION",
        "LOCATION",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RRULE",
        "EXDATE",
        "RECURRENCE-ID",
        "CLASS",
        "CATEGORIES",
        "PRIORITY",
        "TRANSP",
        "ORGANIZER",
        "ATTENDEE",
        "SEQUENCE",
        "CREATED",
        "LAST-MODIFIED",
        "STATUS",
    ];
    for line in &ev.lines {
        if !carried.contains(&line.name.as_str()) && !line.name.starts_with("X-") {
            out.lost.push(format!(
                "{} (Exchange events have no field for it)",
                line.name
            ));
        }
    }
    Ok(out)
}

/// The calendar object in `data` (one UID) as an Exchange series; `mailbox` is the owner the
/// organizer becomes.
pub fn to_ews(data: &[u8], mailbox: &str) -> Result<Series, String> {
    let blocks = components(data).map_err(|e| format!("line {}: {}", e.line, e.message))?;
    let calendar = blocks
        .into_iter()
        .find(|b| b.name == "VCALENDAR")
        .ok_or("no VCALENDAR")?;
    let events: Vec<&Block> = calendar
        .children
        .iter()
        .filter(|c| c.name == "VEVENT")
        .collect();
    let zones: Vec<&Block> = calendar
        .children
        .iter()
        .filter(|c| c.name == "VTIMEZONE")
        .collect();
    let master = events
        .iter()
        .find(|e| e.line("RECURRENCE-ID").is_none())
        .copied()
        .ok_or("overridden occurrences without their series (Exchange needs the series)")?;
    let start = master
        .line("DTSTART")
        .and_then(IcalTime::read)
        .ok_or("DTSTART")?;
    let start_ymd = ymd(&start.date).ok_or("DTSTART")?;
    let mut lost = Vec::new();
    let rule = match master.all("RRULE").count() {
        0 => None,
        1 => {
            let rrule = master.line("RRULE").expect("one");
            match read_rrule(&rrule.value, start_ymd) {
                Ok(rule) => Some(rule),
                Err(why) => {
                    lost.push(format!(
                        "RRULE {} ({why}; only the first occurrence is written)",
                        rrule.value
                    ));
                    None
                }
            }
        }
        _ => {
            lost.push("a second RRULE (only the first occurrence is written)".into());
            None
        }
    };
    let recurrence = rule
        .as_ref()
        .map(|(p, r)| recurrence_xml(p, r, &start.date));
    let mut series = Series {
        master: event(master, &zones, mailbox, recurrence.as_deref(), true)?,
        deleted: Vec::new(),
        modified: Vec::new(),
    };
    series.master.lost.extend(lost);
    let Some((pattern, range)) = rule else {
        if events.len() > 1 || master.line("EXDATE").is_some() {
            series
                .master
                .lost
                .push("the overridden and deleted occurrences (no series to hold them)".into());
        }
        return Ok(series);
    };
    let position_of =
        |t: &IcalTime| ymd(&t.date).and_then(|d| position(&pattern, &range, start_ymd, d));
    for exdate in master.all("EXDATE") {
        for value in exdate.value.split(',') {
            let line = ContentLine {
                name: "EXDATE".into(),
                params: exdate.params.clone(),
                value: value.to_string(),
            };
            match IcalTime::read(&line).as_ref().and_then(position_of) {
                Some(n) => series.deleted.push(n),
                None => series
                    .master
                    .lost
                    .push(format!("EXDATE {value} (not an occurrence of the series)")),
            }
        }
    }
    for ov in events.iter().filter(|e| e.line("RECURRENCE-ID").is_some()) {
        let rid = ov.line("RECURRENCE-ID").expect("filtered");
        match IcalTime::read(rid).as_ref().and_then(position_of) {
            Some(n) => {
                let mut fields = event(ov, &zones, mailbox, None, false)?;
                series.master.lost.append(&mut fields.lost);
                series.modified.push((n, fields));
            }
            None => series.master.lost.push(format!(
                "the override of {} (not an occurrence of the series)",
                rid.value
            )),
        }
    }
    series.deleted.sort();
    series.deleted.dedup();
    Ok(series)
}

/// The fields each occurrence of a series inherits from the series as written: a modified
/// occurrence deletes those its override lacks (an override without DESCRIPTION has no
/// description, whereas Exchange would show the series' body in it). The fields that
/// describe the series as a whole are not the occurrence's to delete.
pub fn inherited(master: &Outgoing) -> Vec<Uri> {
    master
        .all()
        .map(|f| f.uri.clone())
        .filter(|u| {
            !matches!(
                u,
                Uri::Uid
                    | Uri::Plain(
                        "calendar:UID"
                            | "calendar:Recurrence"
                            | "calendar:StartTimeZone"
                            | "calendar:EndTimeZone"
                    )
            )
        })
        .collect()
}

/// The fields an Exchange calendar item has now, as UpdateItem names them.
pub fn present(item: &Node) -> Vec<Uri> {
    let mut out = present_item(item);
    for (element, uri) in [
        ("ReminderIsSet", "item:ReminderIsSet"),
        (
            "ReminderMinutesBeforeStart",
            "item:ReminderMinutesBeforeStart",
        ),
        ("Location", "calendar:Location"),
    ] {
        if item.text_of(element).is_some() {
            out.push(Uri::Plain(uri));
        }
    }
    for (element, uri) in [
        ("RequiredAttendees", "calendar:RequiredAttendees"),
        ("OptionalAttendees", "calendar:OptionalAttendees"),
        ("Resources", "calendar:Resources"),
        ("Recurrence", "calendar:Recurrence"),
    ] {
        if item.child(element).is_some_and(|c| !c.children.is_empty()) {
            out.push(Uri::Plain(uri));
        }
    }
    out
}

/// The zone an item's times are written in: its TZID (an IANA id) and, when Exchange sent
/// the definition, its rule (UTC times become wall-clock times in it).
#[derive(Clone, Copy)]
struct Zone<'a> {
    tzid: &'a str,
    rules: Option<&'a Rules>,
}

/// A time as an iCalendar property: the wall-clock time in `zone` when it is known (a UTC
/// value through the zone's rule; a value without offset or with one as written), else
/// UTC.
fn time_line(name: &str, value: &str, zone: Option<Zone<'_>>, all_day: bool) -> Option<String> {
    let value = value.trim();
    if all_day {
        let date = value.get(..10)?.replace('-', "");
        return Some(format!("{name};VALUE=DATE:{date}"));
    }
    match zone {
        Some(Zone { tzid, rules }) if !value.ends_with('Z') || rules.is_some() => {
            let local = match rules {
                Some(r) if value.ends_with('Z') => r.local(value)?,
                _ => value.get(..19)?.replace(['-', ':'], ""),
            };
            Some(format!("{name};TZID={tzid}:{local}"))
        }
        _ => ical_utc(value).map(|t| format!("{name}:{t}")),
    }
}

fn attendee_lines(item: &Node, lines: &mut Vec<String>) {
    for (element, role) in [
        ("RequiredAttendees", "REQ-PARTICIPANT"),
        ("OptionalAttendees", "OPT-PARTICIPANT"),
        ("Resources", "NON-PARTICIPANT"),
    ] {
        for attendee in item.child(element).iter().flat_map(|a| a.all("Attendee")) {
            let Some(address) = attendee.at(&["Mailbox", "EmailAddress"]) else {
                continue;
            };
            let mut line = String::from("ATTENDEE");
            if let Some(name) = attendee
                .at(&["Mailbox", "Name"])
                .filter(|n| !n.text.is_empty())
            {
                line += &format!(";CN=\"{}\"", name.text.trim().replace('"', ""));
            }
            if element == "Resources" {
                line += ";CUTYPE=RESOURCE";
            }
            line += &format!(";ROLE={role}");
            let partstat = match attendee.text_of("ResponseType") {
                Some("Accept") | Some("Organizer") => Some("ACCEPTED"),
                Some("Decline") => Some("DECLINED"),
                Some("Tentative") => Some("TENTATIVE"),
                Some("NoResponseReceived") => Some("NEEDS-ACTION"),
                _ => None,
            };
            if let Some(p) = partstat {
                line += &format!(";PARTSTAT={p}");
            }
            lines.push(format!("{line}:mailto:{}", address.text.trim()));
        }
    }
}

fn rrule(recurrence: &Node) -> Option<String> {
    let pattern = recurrence.children.first()?;
    let range = recurrence.children.get(1)?;
    let days = |node: &Node| -> Vec<&str> {
        let text = node.text_of("DaysOfWeek").unwrap_or_default();
        text.split_whitespace()
            .flat_map(|d| match d {
                "Weekday" => vec!["MO", "TU", "WE", "TH", "FR"],
                "WeekendDay" => vec!["SU", "SA"],
                "Day" => vec!["SU", "MO", "TU", "WE", "TH", "FR", "SA"],
                d => DAYS
                    .iter()
                    .filter(|(_, n)| *n == d)
                    .map(|(c, _)| *c)
                    .collect(),
            })
            .collect()
    };
    let interval = pattern.text_of("Interval").unwrap_or("1").trim();
    let interval = if interval == "1" {
        String::new()
    } else {
        format!(";INTERVAL={interval}")
    };
    let index = |node: &Node| {
        INDEXES
            .iter()
            .find(|(_, n)| Some(*n) == node.text_of("DayOfWeekIndex"))
            .map(|(i, _)| *i)
            .unwrap_or(1)
    };
    let month = |node: &Node| {
        MONTHS
            .iter()
            .position(|m| Some(*m) == node.text_of("Month"))
            .map(|m| m + 1)
            .unwrap_or(1)
    };
    let relative = |node: &Node| {
        let d = days(node);
        if d.len() == 1 {
            format!(";BYDAY={}{}", index(node), d[0])
        } else {
            format!(";BYDAY={};BYSETPOS={}", d.join(","), index(node))
        }
    };
    let mut rule = match pattern.name.as_str() {
        "DailyRecurrence" => format!("FREQ=DAILY{interval}"),
        "WeeklyRecurrence" => format!("FREQ=WEEKLY{interval};BYDAY={}", days(pattern).join(",")),
        "AbsoluteMonthlyRecurrence" => format!(
            "FREQ=MONTHLY{interval};BYMONTHDAY={}",
            pattern.text_of("DayOfMonth")?.trim()
        ),
        "RelativeMonthlyRecurrence" => format!("FREQ=MONTHLY{interval}{}", relative(pattern)),
        "AbsoluteYearlyRecurrence" => format!(
            "FREQ=YEARLY;BYMONTH={};BYMONTHDAY={}",
            month(pattern),
            pattern.text_of("DayOfMonth")?.trim()
        ),
        "RelativeYearlyRecurrence" => {
            format!(
                "FREQ=YEARLY;BYMONTH={}{}",
                month(pattern),
                relative(pattern)
            )
        }
        _ => return None,
    };
    match range.name.as_str() {
        "NumberedRecurrence" => {
            rule += &format!(";COUNT={}", range.text_of("NumberOfOccurrences")?.trim())
        }
        "EndDateRecurrence" => {
            let end = range.text_of("EndDate")?.get(..10)?.replace('-', "");
            rule += &format!(";UNTIL={end}T235959Z");
        }
        _ => {}
    }
    Some(rule)
}

/// A calendar item's VEVENT lines (master when `rid` is None, else an override).
fn vevent(
    item: &Node,
    uid: &str,
    zone: Option<Zone<'_>>,
    rid: Option<&str>,
    stamp: &str,
) -> Vec<String> {
    let mut lines = vec![
        "BEGIN:VEVENT".to_string(),
        format!("UID:{uid}"),
        format!("DTSTAMP:{stamp}"),
    ];
    let all_day = item.text_of("IsAllDayEvent") == Some("true");
    if let Some(rid) = rid.and_then(|r| time_line("RECURRENCE-ID", r, zone, all_day)) {
        lines.push(rid);
    }
    if let Some(l) = item
        .text_of("Start")
        .and_then(|v| time_line("DTSTART", v, zone, all_day))
    {
        lines.push(l);
    }
    if let Some(l) = item
        .text_of("End")
        .and_then(|v| time_line("DTEND", v, zone, all_day))
    {
        lines.push(l);
    }
    item_lines(item, &mut lines);
    if let Some(location) = item.text_of("Location") {
        lines.push(format!("LOCATION:{}", escape(location)));
    }
    if item.text_of("LegacyFreeBusyStatus") == Some("Free") {
        lines.push("TRANSP:TRANSPARENT".into());
    }
    if let Some(address) = item.at(&["Organizer", "Mailbox", "EmailAddress"]) {
        lines.push(format!("ORGANIZER:mailto:{}", address.text.trim()));
    }
    attendee_lines(item, &mut lines);
    if rid.is_none() {
        if let Some(rule) = item.child("Recurrence").and_then(rrule) {
            lines.push(format!("RRULE:{rule}"));
        }
        for deleted in item
            .child("DeletedOccurrences")
            .iter()
            .flat_map(|d| d.all("DeletedOccurrence"))
        {
            if let Some(l) = deleted
                .text_of("Start")
                .and_then(|v| time_line("EXDATE", v, zone, all_day))
            {
                lines.push(l);
            }
        }
    }
    if item.text_of("ReminderIsSet") == Some("true") {
        let minutes = item
            .text_of("ReminderMinutesBeforeStart")
            .unwrap_or("15")
            .trim();
        lines.extend([
            "BEGIN:VALARM".to_string(),
            "ACTION:DISPLAY".into(),
            "DESCRIPTION:Reminder".into(),
            format!("TRIGGER:-PT{minutes}M"),
            "END:VALARM".into(),
        ]);
    }
    lines.push("END:VEVENT".into());
    lines
}

/// The Windows zone an item's times are in, when it says one Exchange and CLDR know.
pub fn item_zone(item: &Node) -> Option<String> {
    item.child("StartTimeZone")
        .and_then(|z| z.attr("Id"))
        .filter(|id| windows_to_iana(id).is_some())
        .map(str::to_string)
}

/// An Exchange calendar item and its modified occurrences (read in the item's time-zone
/// context, [`item_zone`]) as one VCALENDAR: times in the item's zone under its IANA id,
/// with the VTIMEZONE made from the definition Exchange keeps with the item (RFC 5545
/// §3.6.5 wants one for each TZID used).
pub fn from_ews(item: &Node, occurrences: &[Node], fallback_uid: &str) -> Vec<u8> {
    let rules = item.child("StartTimeZone").and_then(Rules::read);
    let tzid = item_zone(item).and_then(|w| windows_to_iana(&w));
    let zone = tzid.map(|tzid| Zone {
        tzid,
        rules: rules.as_ref(),
    });
    let uid = item
        .text_of("UID")
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|| fallback_uid.to_string());
    let stamp = item
        .text_of("LastModifiedTime")
        .or_else(|| item.text_of("DateTimeCreated"))
        .and_then(ical_utc)
        .unwrap_or_else(|| "19700101T000000Z".into());
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//mailshift//EWS//EN".into(),
    ];
    if let Some(Zone {
        tzid,
        rules: Some(rules),
    }) = zone
    {
        lines.extend(rules.vtimezone(tzid));
    }
    lines.extend(vevent(item, &uid, zone, None, &stamp));
    for occurrence in occurrences {
        let Some(original) = occurrence.text_of("OriginalStart") else {
            continue;
        };
        lines.extend(vevent(occurrence, &uid, zone, Some(original), &stamp));
    }
    lines.push("END:VCALENDAR".into());
    fold(&lines)
}

/// Sorts the start of an xs:dateTime for comparisons (the UTC date-time).
pub fn utc_key(value: &str) -> Option<(String, String)> {
    xs_utc(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_the_pattern_and_the_range() {
        let start = (2026, 12, 1); // a Tuesday
        assert_eq!(weekday(start), 2);
        let weekly = Pattern::Weekly(1, vec![1, 3, 5]);
        // Tue 1st is the start but not a Mon/Wed/Fri: Wed 2nd is the first occurrence.
        assert_eq!(
            position(&weekly, &Range::NoEnd, start, (2026, 12, 2)),
            Some(1)
        );
        assert_eq!(
            position(&weekly, &Range::NoEnd, start, (2026, 12, 7)),
            Some(3)
        );
        assert_eq!(position(&weekly, &Range::NoEnd, start, (2026, 12, 8)), None);
        assert_eq!(
            position(&weekly, &Range::Count(2), start, (2026, 12, 7)),
            None
        );
        let monthly = Pattern::RelativeMonthly(1, vec![2], -1);
        assert_eq!(
            position(&monthly, &Range::NoEnd, (2026, 12, 29), (2027, 2, 23)),
            Some(3)
        );
        let daily = Pattern::Daily(2);
        assert_eq!(
            position(
                &daily,
                &Range::Until("2026-12-05".into()),
                start,
                (2026, 12, 5)
            ),
            Some(3)
        );
        assert_eq!(
            position(
                &daily,
                &Range::Until("2026-12-04".into()),
                start,
                (2026, 12, 5)
            ),
            None
        );
    }

    #[test]
    fn windows_zones_come_back_through_their_iana_ids() {
        // Exchange to Exchange: read as the IANA id, written as the Windows id again.
        for windows in [
            "W. Europe Standard Time",
            "Romance Standard Time",
            "GMT Standard Time",
            "Eastern Standard Time",
            "Pacific Standard Time",
            "UTC",
        ] {
            let iana = windows_to_iana(windows).unwrap();
            assert_eq!(windows_zone(iana).as_deref(), Some(windows), "{iana}");
        }
    }

    #[test]
    fn rrules_exchange_has_no_pattern_for_are_named() {
        let start = (2026, 12, 1);
        assert!(read_rrule("FREQ=HOURLY", start).is_err());
        assert!(read_rrule("FREQ=YEARLY;INTERVAL=2", start).is_err());
        assert!(
            read_rrule("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=3;BYHOUR=9", start)
                .unwrap_err()
                .contains("BYHOUR")
        );
        assert_eq!(
            read_rrule("FREQ=MONTHLY;BYDAY=-1TU;COUNT=3", start).unwrap(),
            (Pattern::RelativeMonthly(1, vec![2], -1), Range::Count(3))
        );
        assert_eq!(trigger_minutes("-PT1H30M"), Some(90));
        assert_eq!(trigger_minutes("-P1D"), Some(1440));
        assert_eq!(trigger_minutes("PT5M"), None);
    }
}
