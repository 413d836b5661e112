//! A Windows time zone as Exchange describes it (`t:TimeZoneDefinitionType`: Periods with a
//! Bias, RecurringDayTransitions between them, as an item's StartTimeZone carries it) → the
//! offset at an instant, wall-clock times out of Exchange's UTC ones, and the VTIMEZONE that
//! RFC 5545 requires for each TZID an iCalendar object uses.
//!
//! The rule used is the one in force now (the group the definition's last Transition leads
//! to): Exchange also describes earlier rules (Eastern's before 2007), which only events of
//! those years would need. Plain calendar arithmetic, no time-zone database: the definition
//! Exchange sends is the database.

use super::time::{civil_from_days, days_from_civil, xs_utc};
use crate::xml::Node;
use mailshift_dav::object::Block;

/// A zone's rule. Biases in minutes, as Windows counts them: UTC = local + bias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    standard: i64,
    daylight: Option<Daylight>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Daylight {
    bias: i64,
    /// The change to daylight time, in local standard time.
    start: Change,
    /// The change back, in local daylight time.
    end: Change,
}

/// The n-th (-1 or 5: last) weekday of a month, minutes after midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    month: i64,
    /// 0 = Sunday.
    weekday: i64,
    occurrence: i64,
    minutes: i64,
}

const WEEKDAYS: &[(&str, &str)] = &[
    ("Sunday", "SU"),
    ("Monday", "MO"),
    ("Tuesday", "TU"),
    ("Wednesday", "WE"),
    ("Thursday", "TH"),
    ("Friday", "FR"),
    ("Saturday", "SA"),
];

/// Minutes of an xs:duration as definitions write them (`-PT1H`, `PT5H30M`).
fn duration_minutes(text: &str) -> Option<i64> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, text),
    };
    let rest = rest.strip_prefix("PT")?;
    let (mut total, mut number) = (0i64, None::<i64>);
    for c in rest.chars() {
        match c {
            '0'..='9' => {
                number = Some(number.unwrap_or(0) * 10 + i64::from(c.to_digit(10)?));
            }
            'H' => total += number.take()? * 60,
            'M' => total += number.take()?,
            'S' => number = None,
            _ => return None,
        }
    }
    number.is_none().then_some(sign * total)
}

impl Rules {
    /// The rule of a definition (an item's StartTimeZone); None when it carries no
    /// Periods (a zone named by Id alone) or is not understood.
    pub fn read(def: &Node) -> Option<Rules> {
        let periods: Vec<(&str, &str, i64)> = def
            .child("Periods")?
            .all("Period")
            .filter_map(|p| {
                Some((
                    p.attr("Id")?.trim(),
                    p.attr("Name").unwrap_or_default(),
                    duration_minutes(p.attr("Bias")?)?,
                ))
            })
            .collect();
        let period = |id: &str| periods.iter().find(|(i, _, _)| *i == id.trim());
        let group_id = def.child("Transitions")?.children.last()?.child("To")?;
        let group = def
            .child("TransitionsGroups")?
            .all("TransitionsGroup")
            .find(|g| g.attr("Id") == Some(group_id.text.trim()))?;
        let (mut standard, mut start, mut end, mut daylight_bias) = (None, None, None, None);
        for t in &group.children {
            let (_, name, bias) = period(&t.child("To")?.text)?;
            if t.name != "RecurringDayTransition" {
                standard = Some(*bias);
                continue;
            }
            let weekday = t.text_of("DayOfWeek")?.trim();
            let change = Change {
                month: t.text_of("Month")?.trim().parse().ok()?,
                weekday: WEEKDAYS.iter().position(|(d, _)| *d == weekday)? as i64,
                occurrence: t.text_of("Occurrence")?.trim().parse().ok()?,
                minutes: duration_minutes(t.text_of("TimeOffset")?)?,
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
        Some(Rules {
            standard: standard?,
            daylight,
        })
    }

    /// The rule of a VTIMEZONE whose STANDARD and DAYLIGHT recur yearly on an n-th weekday
    /// of a month (what Outlook and most calendars write; of several, the latest); None for
    /// other forms (RDATE lists, a day of the month).
    pub fn from_vtimezone(block: &Block) -> Option<Rules> {
        let latest = |kind: &str| {
            block
                .children
                .iter()
                .filter(|c| c.name == kind)
                .max_by_key(|c| c.line("DTSTART").map(|l| l.value.trim().to_string()))
        };
        let offset = |c: &Block| parse_offset(&c.line("TZOFFSETTO")?.value);
        let standard = latest("STANDARD")?;
        let daylight = match latest("DAYLIGHT") {
            None => None,
            Some(d) => Some(Daylight {
                bias: -offset(d)?,
                start: Change::from_rrule(d)?,
                end: Change::from_rrule(standard)?,
            }),
        };
        Some(Rules {
            standard: -offset(standard)?,
            daylight,
        })
    }

    /// The UTC instant of a wall-clock time in this zone (`2026-03-30`, `09:30:00`), as
    /// iCalendar writes it (`20260330T073000Z`). A time skipped by the change to daylight
    /// time is read in standard time; one that occurs twice is the first.
    pub fn utc(&self, date: &str, time: &str) -> Option<String> {
        let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, day) = (d.next()??, d.next()??, d.next()??);
        let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
        let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
        let local = days_from_civil(y, m, day) * 1440 + h * 60 + mi;
        let utc = match &self.daylight {
            Some(d) if self.offset_at(local + d.bias) == -d.bias => local + d.bias,
            _ => local + self.standard,
        };
        let (y, m, day) = civil_from_days(utc.div_euclid(1440));
        let rem = utc.rem_euclid(1440);
        Some(format!(
            "{y:04}{m:02}{day:02}T{:02}{:02}{s:02}Z",
            rem / 60,
            rem % 60
        ))
    }

    /// Minutes to add to UTC for the local time at `utc` (minutes since 1970).
    fn offset_at(&self, utc: i64) -> i64 {
        let Some(d) = &self.daylight else {
            return -self.standard;
        };
        let local_standard = utc - self.standard;
        let (year, _, _) = civil_from_days(local_standard.div_euclid(1440));
        let on = d.start.at(year);
        // Written in daylight time: in standard time, the daylight saving earlier.
        let off = d.end.at(year) - (self.standard - d.bias);
        let in_daylight = if on < off {
            local_standard >= on && local_standard < off
        } else {
            local_standard >= on || local_standard < off
        };
        if in_daylight { -d.bias } else { -self.standard }
    }

    /// An xs:dateTime (UTC, or with an offset) as the wall-clock time in this zone, in
    /// iCalendar's form (`20260330T093000`).
    pub fn local(&self, xs: &str) -> Option<String> {
        let (date, time) = xs_utc(xs)?;
        let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, day) = (d.next()??, d.next()??, d.next()??);
        let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
        let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
        let utc = days_from_civil(y, m, day) * 1440 + h * 60 + mi;
        let local = utc + self.offset_at(utc);
        let (y, m, day) = civil_from_days(local.div_euclid(1440));
        let rem = local.rem_euclid(1440);
        Some(format!(
            "{y:04}{m:02}{day:02}T{:02}{:02}{s:02}",
            rem / 60,
            rem % 60
        ))
    }

    /// The VTIMEZONE for this rule under `tzid`: one STANDARD, and a DAYLIGHT when the zone
    /// changes, each with the yearly rule and its first onset in 1970.
    pub fn vtimezone(&self, tzid: &str) -> Vec<String> {
        let mut lines = vec!["BEGIN:VTIMEZONE".to_string(), format!("TZID:{tzid}")];
        let standard = offset_text(-self.standard);
        match &self.daylight {
            None => lines.extend([
                "BEGIN:STANDARD".to_string(),
                "DTSTART:19700101T000000".into(),
                format!("TZOFFSETFROM:{standard}"),
                format!("TZOFFSETTO:{standard}"),
                "END:STANDARD".into(),
            ]),
            Some(d) => {
                let daylight = offset_text(-d.bias);
                for (kind, change, from, to) in [
                    ("STANDARD", &d.end, &daylight, &standard),
                    ("DAYLIGHT", &d.start, &standard, &daylight),
                ] {
                    lines.extend([
                        format!("BEGIN:{kind}"),
                        format!("DTSTART:{}", ical_minutes(change.at(1970))),
                        format!("TZOFFSETFROM:{from}"),
                        format!("TZOFFSETTO:{to}"),
                        format!(
                            "RRULE:FREQ=YEARLY;BYMONTH={};BYDAY={}{}",
                            change.month,
                            if change.occurrence > 4 || change.occurrence < 0 {
                                -1
                            } else {
                                change.occurrence
                            },
                            WEEKDAYS[change.weekday as usize % 7].1
                        ),
                        format!("END:{kind}"),
                    ]);
                }
            }
        }
        lines.push("END:VTIMEZONE".into());
        lines
    }
}

/// `+0100`, `-0430` → minutes.
fn parse_offset(text: &str) -> Option<i64> {
    let text = text.trim();
    let (sign, digits) = match text.split_at_checked(1)? {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    let h: i64 = digits.get(..2)?.parse().ok()?;
    let m: i64 = digits.get(2..4)?.parse().ok()?;
    Some(sign * (h * 60 + m))
}

impl Change {
    /// A STANDARD or DAYLIGHT's onset: its DTSTART's time of day, and its RRULE's month and
    /// n-th weekday.
    fn from_rrule(part: &Block) -> Option<Change> {
        let start = part.line("DTSTART")?.value.trim().to_string();
        let hm = start.split_once('T')?.1;
        let minutes = hm.get(..2)?.parse::<i64>().ok()? * 60 + hm.get(2..4)?.parse::<i64>().ok()?;
        let rule = part.line("RRULE")?.value.to_ascii_uppercase();
        let (mut month, mut byday) = (None, None);
        for item in rule.split(';') {
            match item.split_once('=')? {
                ("FREQ", f) if f != "YEARLY" => return None,
                ("BYMONTH", m) => month = m.parse::<i64>().ok(),
                ("BYDAY", d) => byday = Some(d.to_string()),
                _ => {}
            }
        }
        let byday = byday?;
        let (n, code) = byday.split_at_checked(byday.len().checked_sub(2)?)?;
        let occurrence: i64 = n.trim_start_matches('+').parse().ok()?;
        Some(Change {
            month: month?,
            weekday: WEEKDAYS.iter().position(|(_, c)| *c == code)? as i64,
            occurrence: if occurrence < 0 { -1 } else { occurrence },
            minutes,
        })
    }

    /// When the change happens in `year`, in minutes since 1970 (of the local time it
    /// leaves).
    fn at(&self, year: i64) -> i64 {
        let first = days_from_civil(year, self.month, 1);
        let weekday_of = |days: i64| (days + 4).rem_euclid(7);
        let day = if (1..=4).contains(&self.occurrence) {
            first + (self.weekday - weekday_of(first)).rem_euclid(7) + 7 * (self.occurrence - 1)
        } else {
            let (ny, nm) = if self.month == 12 {
                (year + 1, 1)
            } else {
                (year, self.month + 1)
            };
            let last = days_from_civil(ny, nm, 1) - 1;
            last - (weekday_of(last) - self.weekday).rem_euclid(7)
        };
        day * 1440 + self.minutes
    }
}

fn offset_text(minutes: i64) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.abs();
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

fn ical_minutes(minutes: i64) -> String {
    let (y, m, d) = civil_from_days(minutes.div_euclid(1440));
    let rem = minutes.rem_euclid(1440);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}00", rem / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A definition as Exchange sends it in an item's StartTimeZone.
    fn definition(standard: &str, daylight: Option<(&str, &str, &str)>) -> Node {
        let period = |id: &str, name: &str, bias: &str| Node {
            name: "Period".into(),
            attrs: vec![
                ("Bias".into(), bias.into()),
                ("Name".into(), name.into()),
                ("Id".into(), id.into()),
            ],
            ..Node::default()
        };
        let text = |name: &str, text: &str| Node {
            name: name.into(),
            text: text.into(),
            ..Node::default()
        };
        let to = |target: &str| text("To", target);
        let mut periods = vec![period("std", "Standard", standard)];
        let mut group = Vec::new();
        match daylight {
            None => group.push(Node {
                name: "Transition".into(),
                children: vec![to("std")],
                ..Node::default()
            }),
            Some((bias, on, off)) => {
                periods.push(period("dlt", "Daylight", bias));
                for (target, rule) in [("dlt", on), ("std", off)] {
                    let parts: Vec<&str> = rule.split(' ').collect();
                    group.push(Node {
                        name: "RecurringDayTransition".into(),
                        children: vec![
                            to(target),
                            text("TimeOffset", parts[0]),
                            text("Month", parts[1]),
                            text("DayOfWeek", "Sunday"),
                            text("Occurrence", parts[2]),
                        ],
                        ..Node::default()
                    });
                }
            }
        }
        Node {
            name: "StartTimeZone".into(),
            children: vec![
                Node {
                    name: "Periods".into(),
                    children: periods,
                    ..Node::default()
                },
                Node {
                    name: "TransitionsGroups".into(),
                    children: vec![Node {
                        name: "TransitionsGroup".into(),
                        attrs: vec![("Id".into(), "0".into())],
                        children: group,
                        ..Node::default()
                    }],
                    ..Node::default()
                },
                Node {
                    name: "Transitions".into(),
                    children: vec![Node {
                        name: "Transition".into(),
                        children: vec![to("0")],
                        ..Node::default()
                    }],
                    ..Node::default()
                },
            ],
            ..Node::default()
        }
    }

    fn berlin() -> Rules {
        Rules::read(&definition(
            "-PT1H",
            Some(("-PT2H", "PT2H 3 -1", "PT3H 10 -1")),
        ))
        .unwrap()
    }

    fn eastern() -> Rules {
        Rules::read(&definition("PT5H", Some(("PT4H", "PT2H 3 2", "PT2H 11 1")))).unwrap()
    }

    #[test]
    fn utc_times_become_wall_clock_times_on_both_sides_of_a_change() {
        let b = berlin();
        assert_eq!(
            b.local("2026-03-23T08:30:00Z").as_deref(),
            Some("20260323T093000")
        );
        assert_eq!(
            b.local("2026-03-30T07:30:00Z").as_deref(),
            Some("20260330T093000")
        );
        // The changes themselves, 01:00 UTC on the last Sundays of March and October.
        assert_eq!(
            b.local("2026-03-29T00:59:00Z").as_deref(),
            Some("20260329T015900")
        );
        assert_eq!(
            b.local("2026-03-29T01:00:00Z").as_deref(),
            Some("20260329T030000")
        );
        assert_eq!(
            b.local("2026-10-25T00:59:00Z").as_deref(),
            Some("20261025T025900")
        );
        assert_eq!(
            b.local("2026-10-25T01:00:00Z").as_deref(),
            Some("20261025T020000")
        );
        let e = eastern();
        assert_eq!(
            e.local("2026-10-26T14:00:00Z").as_deref(),
            Some("20261026T100000")
        );
        assert_eq!(
            e.local("2026-11-02T15:00:00Z").as_deref(),
            Some("20261102T100000")
        );
        // Across midnight and the year.
        assert_eq!(
            e.local("2027-01-01T03:00:00Z").as_deref(),
            Some("20261231T220000")
        );
        let utc = Rules::read(&definition("PT0H", None)).unwrap();
        assert_eq!(
            utc.local("2026-07-01T12:00:00Z").as_deref(),
            Some("20260701T120000")
        );
    }

    #[test]
    fn a_vtimezone_reads_back_into_the_same_rule_and_gives_utc_instants() {
        let text = berlin().vtimezone("Customized Time Zone").join("\r\n") + "\r\n";
        let block = mailshift_dav::object::components(text.as_bytes()).unwrap()[0].clone();
        let read = Rules::from_vtimezone(&block).unwrap();
        assert_eq!(read, berlin());
        assert_eq!(
            read.utc("2026-03-23", "09:30:00").as_deref(),
            Some("20260323T083000Z")
        );
        assert_eq!(
            read.utc("2026-03-30", "09:30:00").as_deref(),
            Some("20260330T073000Z")
        );
        let text = eastern().vtimezone("Eastern").join("\r\n") + "\r\n";
        let block = mailshift_dav::object::components(text.as_bytes()).unwrap()[0].clone();
        let read = Rules::from_vtimezone(&block).unwrap();
        assert_eq!(read, eastern());
        assert_eq!(
            read.utc("2026-11-02", "10:00:00").as_deref(),
            Some("20261102T150000Z")
        );
        assert_eq!(parse_offset("-0430"), Some(-270));
        assert_eq!(parse_offset("0100"), None);
    }

    #[test]
    fn the_vtimezone_states_both_rules_with_their_first_onsets() {
        assert_eq!(
            berlin().vtimezone("Europe/Berlin"),
            [
                "BEGIN:VTIMEZONE",
                "TZID:Europe/Berlin",
                "BEGIN:STANDARD",
                "DTSTART:19701025T030000",
                "TZOFFSETFROM:+0200",
                "TZOFFSETTO:+0100",
                "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
                "END:STANDARD",
                "BEGIN:DAYLIGHT",
                "DTSTART:19700329T020000",
                "TZOFFSETFROM:+0100",
                "TZOFFSETTO:+0200",
                "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
                "END:DAYLIGHT",
                "END:VTIMEZONE",
            ]
        );
        let e = eastern().vtimezone("America/New_York");
        assert!(e.contains(&"DTSTART:19701101T020000".to_string()), "{e:?}");
        assert!(e.contains(&"DTSTART:19700308T020000".to_string()), "{e:?}");
        assert!(
            e.contains(&"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU".to_string()),
            "{e:?}"
        );
        assert!(e.contains(&"TZOFFSETTO:-0400".to_string()), "{e:?}");
        let none = Rules::read(&definition("PT0H", None)).unwrap();
        assert!(
            none.vtimezone("UTC")
                .contains(&"TZOFFSETTO:+0000".to_string())
        );
        // A zone named by its id alone has no rule to state.
        assert_eq!(
            Rules::read(&Node {
                name: "StartTimeZone".into(),
                ..Node::default()
            }),
            None
        );
        assert_eq!(duration_minutes("PT5H30M"), Some(330));
        assert_eq!(duration_minutes("-PT1H"), Some(-60));
        assert_eq!(duration_minutes("PTH"), None);
    }
}
