//! The Windows time zones the simulator knows, as Exchange publishes them
//! (`t:TimeZoneDefinitionType`: Periods with their Bias, a TransitionsGroup of
//! RecurringDayTransitions, as GetServerTimeZones with ReturnFullTimeZoneData answers), and
//! the arithmetic Exchange does with them: local wall-clock times read in a request's
//! TimeZoneContext become UTC, and a series' occurrences keep their wall-clock time in its
//! StartTimeZone across daylight-saving changes.
//!
//! Only the zones tests use, and only each zone's current rule (Exchange also publishes
//! earlier groups, such as Eastern's before 2007, selected by AbsoluteDateTransitions); a
//! request naming another zone gets Exchange's ErrorTimeZone.

use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};

use crate::xml::{self, Node};

/// Id, display name, standard bias, and daylight rule: bias, then (month, occurrence of
/// Sunday, minutes after midnight) of the change to daylight and back to standard. Bias as
/// Windows counts it: UTC = local + bias.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<(
        &'static str,
        (u32, i32, &'static str),
        (u32, i32, &'static str),
    )>,
);

const TABLE: &[Row] = &[
    ("UTC", "(UTC) Coordinated Universal Time", "PT0H", None),
    (
        "GMT Standard Time",
        "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
        "PT0H",
        Some(("-PT1H", (3, -1, "PT1H"), (10, -1, "PT2H"))),
    ),
    (
        "W. Europe Standard Time",
        "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
        "-PT1H",
        Some(("-PT2H", (3, -1, "PT2H"), (10, -1, "PT3H"))),
    ),
    (
        "Romance Standard Time",
        "(UTC+01:00) Brussels, Copenhagen, Madrid, Paris",
        "-PT1H",
        Some(("-PT2H", (3, -1, "PT2H"), (10, -1, "PT3H"))),
    ),
    (
        "Eastern Standard Time",
        "(UTC-05:00) Eastern Time (US &amp; Canada)",
        "PT5H",
        Some(("PT4H", (3, 2, "PT2H"), (11, 1, "PT2H"))),
    ),
    (
        "Pacific Standard Time",
        "(UTC-08:00) Pacific Time (US &amp; Canada)",
        "PT8H",
        Some(("PT7H", (3, 2, "PT2H"), (11, 1, "PT2H"))),
    ),
];

/// The published definition of zone `id` as XML (a `t:TimeZoneDefinition` element).
fn definition_xml(row: &Row) -> String {
    let (id, name, standard, daylight) = *row;
    let period = |kind: &str| format!("trule:Microsoft/Registry/{id}/2006-{kind}");
    let mut periods = format!(
        "<t:Period Bias=\"{standard}\" Name=\"Standard\" Id=\"{}\"/>",
        period("Standard")
    );
    let mut group = String::new();
    match daylight {
        None => {
            group += &format!(
                "<t:Transition><t:To Kind=\"Period\">{}</t:To></t:Transition>",
                period("Standard")
            )
        }
        Some((bias, to_daylight, to_standard)) => {
            periods += &format!(
                "<t:Period Bias=\"{bias}\" Name=\"Daylight\" Id=\"{}\"/>",
                period("Daylight")
            );
            for (kind, (month, occurrence, offset)) in
                [("Daylight", to_daylight), ("Standard", to_standard)]
            {
                group += &format!(
                    "<t:RecurringDayTransition><t:To Kind=\"Period\">{}</t:To>\
                     <t:TimeOffset>{offset}</t:TimeOffset><t:Month>{month}</t:Month>\
                     <t:DayOfWeek>Sunday</t:DayOfWeek><t:Occurrence>{occurrence}</t:Occurrence>\
                     </t:RecurringDayTransition>",
                    period(kind)
                );
            }
        }
    }
    format!(
        "<t:TimeZoneDefinition xmlns:t=\"{}\" Id=\"{id}\" Name=\"{name}\">\
         <t:Periods>{periods}</t:Periods>\
         <t:TransitionsGroups><t:TransitionsGroup Id=\"0\">{group}</t:TransitionsGroup></t:TransitionsGroups>\
         <t:Transitions><t:Transition><t:To Kind=\"Group\">0</t:To></t:Transition></t:Transitions>\
         </t:TimeZoneDefinition>",
        xml::TYPES
    )
}

/// A zone's rule, read back from its published definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    /// Minutes, UTC = local + bias.
    standard: i64,
    daylight: Option<Daylight>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Daylight {
    bias: i64,
    /// To daylight, in local standard time; back to standard, in local daylight time.
    start: Change,
    end: Change,
}

/// The n-th (-1: last) given weekday of a month, at minutes after midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    month: u32,
    weekday: Weekday,
    occurrence: i32,
    minutes: i64,
}

struct Known {
    definition: Node,
    zone: Zone,
}

fn known() -> &'static [Known] {
    static KNOWN: OnceLock<Vec<Known>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        TABLE
            .iter()
            .map(|row| {
                let definition =
                    xml::parse("a published time zone", &definition_xml(row)).expect("the table");
                let zone = Zone::read(&definition).expect("the table reads back");
                Known { definition, zone }
            })
            .collect()
    })
}

/// The published definition of a zone (a `t:TimeZoneDefinition` element), by Windows id.
pub fn definition(id: &str) -> Option<&'static Node> {
    known()
        .iter()
        .find(|k| k.zone.id == id.trim())
        .map(|k| &k.definition)
}

/// Every published definition, as GetServerTimeZones answers them.
pub fn all() -> impl Iterator<Item = &'static Node> {
    known().iter().map(|k| &k.definition)
}

/// The rule of a zone, by Windows id.
pub fn zone(id: &str) -> Option<&'static Zone> {
    known()
        .iter()
        .find(|k| k.zone.id == id.trim())
        .map(|k| &k.zone)
}

/// Exchange's answer to a zone it has no definition of.
pub fn unknown(id: &str) -> crate::ops::Fail {
    (
        "ErrorTimeZone",
        format!("The time zone {id:?} is not a time zone this server has a definition of."),
    )
}

/// The zone a request's local times are read in: its TimeZoneContext's definition (as given
/// when it carries Periods, else the published one its Id names), UTC without one.
pub fn context(definition: Option<&Node>) -> Result<Zone, crate::ops::Fail> {
    let Some(def) = definition else {
        return Ok(zone("UTC").expect("in the table").clone());
    };
    if kid(def, "Periods").is_some() {
        return Zone::read(def).ok_or((
            "ErrorTimeZone",
            "The TimeZoneContext's definition has no rule the server can read.".to_owned(),
        ));
    }
    let id = def.attr("Id").unwrap_or_default();
    zone(id).cloned().ok_or_else(|| unknown(id))
}

/// Gives a calendar item's StartTimeZone and EndTimeZone, when set by Id alone, the whole
/// published definition (what Exchange answers for them), keeping the element's name.
pub fn fill(node: &mut Node) -> Result<(), crate::ops::Fail> {
    for c in &mut node.children {
        if !matches!(c.name.local.as_str(), "StartTimeZone" | "EndTimeZone")
            || kid(c, "Periods").is_some()
        {
            continue;
        }
        let id = c.attr("Id").unwrap_or_default();
        let published = definition(id).ok_or_else(|| unknown(id))?;
        let name = c.name.clone();
        *c = published.clone();
        c.name = name;
        c.prefixes.clear();
    }
    Ok(())
}

/// Minutes of an xs:duration as time-zone definitions write them (`-PT1H`, `PT5H30M`).
fn duration_minutes(text: &str) -> Option<i64> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, text),
    };
    let rest = rest.strip_prefix("PT")?;
    let (mut total, mut number) = (0i64, String::new());
    for c in rest.chars() {
        match c {
            '0'..='9' => number.push(c),
            'H' => total += number.drain(..).as_str().parse::<i64>().ok()? * 60,
            'M' => total += number.drain(..).as_str().parse::<i64>().ok()?,
            'S' => number.clear(),
            _ => return None,
        }
    }
    number.is_empty().then_some(sign * total)
}

fn kid<'a>(n: &'a Node, local: &str) -> Option<&'a Node> {
    n.children.iter().find(|c| c.name.local == local)
}

impl Zone {
    /// The rule of a `t:TimeZoneDefinitionType` element: the group its last Transition
    /// leads to (the rule in force now).
    pub fn read(def: &Node) -> Option<Zone> {
        let periods: Vec<(&str, &str, i64)> = kid(def, "Periods")?
            .children
            .iter()
            .filter_map(|p| {
                Some((
                    p.attr("Id")?,
                    p.attr("Name").unwrap_or_default(),
                    duration_minutes(p.attr("Bias")?)?,
                ))
            })
            .collect();
        let period = |id: &str| periods.iter().find(|(i, _, _)| *i == id.trim());
        let group_id = kid(def, "Transitions")?.children.last()?;
        let group_id = kid(group_id, "To")?.text.trim().to_owned();
        let group = kid(def, "TransitionsGroups")?
            .children
            .iter()
            .find(|g| g.attr("Id") == Some(group_id.as_str()))?;
        let mut standard = None;
        let (mut start, mut end, mut daylight_bias) = (None, None, None);
        for t in &group.children {
            let (_, name, bias) = period(&kid(t, "To")?.text)?;
            if t.name.local != "RecurringDayTransition" {
                standard = Some(*bias);
                continue;
            }
            let change = Change {
                month: kid(t, "Month")?.text.trim().parse().ok()?,
                weekday: kid(t, "DayOfWeek")?.text.trim().parse().ok()?,
                occurrence: kid(t, "Occurrence")?.text.trim().parse().ok()?,
                minutes: duration_minutes(&kid(t, "TimeOffset")?.text)?,
            };
            if *name == "Daylight" {
                start = Some(change);
                daylight_bias = Some(*bias);
            } else {
                end = Some(change);
                standard = Some(*bias);
            }
        }
        let daylight = match (start, end, daylight_bias) {
            (Some(start), Some(end), Some(bias)) => Some(Daylight { bias, start, end }),
            _ => None,
        };
        Some(Zone {
            id: def.attr("Id")?.to_owned(),
            standard: standard?,
            daylight,
        })
    }

    /// Minutes to add to UTC for the local time at `utc`.
    pub fn offset_at(&self, utc: DateTime<Utc>) -> i64 {
        let Some(d) = &self.daylight else {
            return -self.standard;
        };
        let local_standard = utc.naive_utc() - Duration::minutes(self.standard);
        let year = local_standard.year();
        // Both changes in local standard time: the return to standard is written in
        // daylight time, the daylight saving (standard - daylight bias) earlier.
        let (Some(on), Some(off)) = (d.start.at(year), d.end.at(year)) else {
            return -self.standard;
        };
        let off = off - Duration::minutes(self.standard - d.bias);
        let in_daylight = if on < off {
            local_standard >= on && local_standard < off
        } else {
            // Southern hemisphere: daylight time spans the new year.
            local_standard >= on || local_standard < off
        };
        if in_daylight { -d.bias } else { -self.standard }
    }

    /// The UTC instant of a wall-clock time in this zone. A time skipped by the change to
    /// daylight time is read in standard time (it shows an hour later); a time that occurs
    /// twice is the first (daylight) one.
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        if let Some(d) = &self.daylight {
            let candidate = (local + Duration::minutes(d.bias)).and_utc();
            if self.offset_at(candidate) == -d.bias {
                return candidate;
            }
        }
        (local + Duration::minutes(self.standard)).and_utc()
    }

    /// The wall-clock time in this zone at `utc`.
    pub fn to_local(&self, utc: DateTime<Utc>) -> NaiveDateTime {
        utc.naive_utc() + Duration::minutes(self.offset_at(utc))
    }
}

impl Change {
    /// When the change happens in `year` (local time of the period it leaves).
    fn at(&self, year: i32) -> Option<NaiveDateTime> {
        let first = NaiveDate::from_ymd_opt(year, self.month, 1)?;
        let day = if self.occurrence > 0 && self.occurrence < 5 {
            NaiveDate::from_weekday_of_month_opt(
                year,
                self.month,
                self.weekday,
                self.occurrence as u8,
            )?
        } else {
            // -1 (and Windows' 5): the last such weekday of the month.
            let next = first.checked_add_months(chrono::Months::new(1))?;
            let mut day = next.pred_opt()?;
            while day.weekday() != self.weekday {
                day = day.pred_opt()?;
            }
            day
        };
        Some(day.and_hms_opt(0, 0, 0)? + Duration::minutes(self.minutes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn published_definitions_read_back_into_their_rules() {
        let berlin = zone("W. Europe Standard Time").unwrap();
        assert_eq!(berlin.standard, -60);
        let d = berlin.daylight.as_ref().unwrap();
        assert_eq!((d.bias, d.start.month, d.start.occurrence), (-120, 3, -1));
        assert_eq!((d.end.month, d.end.minutes), (10, 180));
        assert_eq!(zone("UTC").unwrap().daylight, None);
        assert!(zone("Mars Standard Time").is_none());
        assert_eq!(duration_minutes("PT5H30M"), Some(330));
        assert_eq!(duration_minutes("-PT1H"), Some(-60));
        assert_eq!(duration_minutes("P1D"), None);
    }

    #[test]
    fn european_changes_fall_on_the_last_sundays_at_one_utc() {
        let berlin = zone("W. Europe Standard Time").unwrap();
        // 2026: daylight from Sunday 29 March 01:00 UTC to Sunday 25 October 01:00 UTC.
        assert_eq!(berlin.offset_at(utc("2026-03-29T00:59:00Z")), 60);
        assert_eq!(berlin.offset_at(utc("2026-03-29T01:00:00Z")), 120);
        assert_eq!(berlin.offset_at(utc("2026-10-25T00:59:00Z")), 120);
        assert_eq!(berlin.offset_at(utc("2026-10-25T01:00:00Z")), 60);
        assert_eq!(
            berlin.to_utc(local("2026-03-23T09:30:00")),
            utc("2026-03-23T08:30:00Z")
        );
        assert_eq!(
            berlin.to_utc(local("2026-03-30T09:30:00")),
            utc("2026-03-30T07:30:00Z")
        );
        // 02:30 on 29 March does not exist: read in standard time.
        assert_eq!(
            berlin.to_utc(local("2026-03-29T02:30:00")),
            utc("2026-03-29T01:30:00Z")
        );
        // 02:30 on 25 October happens twice: the first, in daylight time.
        assert_eq!(
            berlin.to_utc(local("2026-10-25T02:30:00")),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn american_changes_fall_on_the_second_and_first_sundays() {
        let eastern = zone("Eastern Standard Time").unwrap();
        // 2026: daylight from Sunday 8 March 07:00 UTC to Sunday 1 November 06:00 UTC.
        assert_eq!(eastern.offset_at(utc("2026-03-08T06:59:00Z")), -300);
        assert_eq!(eastern.offset_at(utc("2026-03-08T07:00:00Z")), -240);
        assert_eq!(eastern.offset_at(utc("2026-11-01T05:59:00Z")), -240);
        assert_eq!(eastern.offset_at(utc("2026-11-01T06:00:00Z")), -300);
        assert_eq!(
            eastern.to_local(utc("2026-11-02T15:00:00Z")),
            local("2026-11-02T10:00:00")
        );
    }
}
