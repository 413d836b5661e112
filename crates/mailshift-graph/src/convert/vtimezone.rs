//! A VTIMEZONE for an IANA zone, built from the zone's current rule in the system's time-zone
//! database (the POSIX TZ string that ends a TZif file, RFC 8536 §3.3: `CET-1CEST,M3.5.0,M10.5.0/3`).
//!
//! Graph gives a series' times in its zone's wall clock (so that it keeps its hour across
//! daylight-saving changes) but no VTIMEZONE: an object with a TZID and no VTIMEZONE is not
//! valid iCalendar (RFC 5545 §3.2.19), and a server that adds one itself (Radicale, through
//! vobject) then stores an object that differs from the source's. Only the current rule is
//! written: the events Graph holds are recurring series and their occurrences, which the
//! current rule covers. `None` when the zone or its rule cannot be read (no tzdata, a zone
//! without a footer): the TZID then goes alone.

use std::path::Path;

use super::{Lines, Stamp};

/// The VTIMEZONE lines for `iana`, read from `/usr/share/zoneinfo`.
pub fn vtimezone(iana: &str) -> Option<Vec<String>> {
    if iana.is_empty() || iana.contains("..") || iana.starts_with('/') {
        return None;
    }
    let data = std::fs::read(Path::new("/usr/share/zoneinfo").join(iana)).ok()?;
    let footer = footer(&data)?;
    from_posix(iana, &footer)
}

/// The POSIX TZ string at the end of a TZif (version 2 or later) file.
fn footer(data: &[u8]) -> Option<String> {
    if !data.starts_with(b"TZif") || !data.ends_with(b"\n") {
        return None;
    }
    let body = &data[..data.len() - 1];
    let start = body.iter().rposition(|b| *b == b'\n')? + 1;
    let text = std::str::from_utf8(&body[start..]).ok()?;
    (!text.is_empty()).then(|| text.to_string())
}

/// A zone abbreviation (`CET`, `<+03>`) and the rest.
fn name(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((&rest[..end], &rest[end + 1..]));
    }
    let end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    (end >= 3).then(|| (&text[..end], &text[end..]))
}

/// `[+-]hh[:mm[:ss]]` as seconds, and the rest.
fn clock(text: &str) -> Option<(i64, &str)> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let end = digits
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(digits.len());
    let mut parts = digits[..end].split(':').map(|p| p.parse::<i64>());
    let h = parts.next()?.ok()?;
    let m = parts.next().transpose().ok()?.unwrap_or(0);
    let s = parts.next().transpose().ok()?.unwrap_or(0);
    Some((sign * (h * 3600 + m * 60 + s), &digits[end..]))
}

/// `Mm.w.d[/time]`: month, week (5 = last), weekday (0 = Sunday), time of the change.
fn rule(text: &str) -> Option<(u32, i32, u32, i64)> {
    let text = text.strip_prefix('M')?;
    let (date, time) = match text.split_once('/') {
        Some((d, t)) => (d, clock(t)?.0),
        None => (text, 7200),
    };
    let mut parts = date.split('.').map(|p| p.parse::<i64>().ok());
    let (m, w, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=5).contains(&w) || !(0..=6).contains(&d) {
        return None;
    }
    Some((m as u32, w as i32, d as u32, time))
}

fn offset(seconds: i64) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    if s % 60 == 0 {
        format!("{sign}{:02}{:02}", s / 3600, s / 60 % 60)
    } else {
        format!("{sign}{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// The first day in 1970 that a rule names (DTSTART of the observance).
fn onset(month: u32, week: i32, weekday: u32, time: i64) -> String {
    // RFC 5545 weekdays from POSIX's (0 = Sunday); Stamp's are 0 = Monday.
    let target = (weekday as usize + 6) % 7;
    let first = Stamp::parse(&format!("1970{month:02}01")).expect("a valid date");
    let shift = (target + 7 - first.weekday()) % 7;
    let mut day = first.plus_days(shift as i64);
    let mut n = 1;
    while n < week {
        let next = day.plus_days(7);
        if next.m != month {
            break;
        }
        day = next;
        n += 1;
    }
    let t = time.rem_euclid(86_400);
    format!(
        "1970{month:02}{:02}T{:02}{:02}{:02}",
        day.d,
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

const BYDAY: [&str; 7] = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];

fn from_posix(iana: &str, tz: &str) -> Option<Vec<String>> {
    let (std_name, rest) = name(tz)?;
    let (std_west, rest) = clock(rest)?;
    // POSIX counts west of Greenwich: CET-1 is UTC+01:00.
    let std_offset = -std_west;
    let mut out = vec!["BEGIN:VTIMEZONE".to_string(), format!("TZID:{iana}")];
    if rest.is_empty() {
        out.extend([
            "BEGIN:STANDARD".to_string(),
            "DTSTART:19700101T000000".to_string(),
            format!("TZNAME:{std_name}"),
            format!("TZOFFSETFROM:{}", offset(std_offset)),
            format!("TZOFFSETTO:{}", offset(std_offset)),
            "END:STANDARD".to_string(),
            "END:VTIMEZONE".to_string(),
        ]);
        return Some(out);
    }
    let (dst_name, rest) = name(rest)?;
    let (dst_offset, rest) = match rest.strip_prefix(',') {
        Some(_) => (std_offset + 3600, rest),
        None => {
            let (west, rest) = clock(rest)?;
            (-west, rest)
        }
    };
    let mut rules = rest.strip_prefix(',')?.split(',');
    let (to_dst, to_std) = (rule(rules.next()?)?, rule(rules.next()?)?);
    for (kind, name, (m, w, d, t), from, to) in [
        ("DAYLIGHT", dst_name, to_dst, std_offset, dst_offset),
        ("STANDARD", std_name, to_std, dst_offset, std_offset),
    ] {
        let week = if w == 5 { -1 } else { w };
        out.extend([
            format!("BEGIN:{kind}"),
            format!("DTSTART:{}", onset(m, w, d, t)),
            format!(
                "RRULE:FREQ=YEARLY;BYMONTH={m};BYDAY={week}{}",
                BYDAY[d as usize]
            ),
            format!("TZNAME:{name}"),
            format!("TZOFFSETFROM:{}", offset(from)),
            format!("TZOFFSETTO:{}", offset(to)),
            format!("END:{kind}"),
        ]);
    }
    out.push("END:VTIMEZONE".to_string());
    Some(out)
}

/// Writes the VTIMEZONE of each zone once.
pub fn write_all(out: &mut Lines, zones: &[String]) {
    for zone in zones {
        if let Some(lines) = vtimezone(zone) {
            for line in lines {
                out.raw(&line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_rules_become_vtimezones() {
        let berlin = from_posix("Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let text = berlin.join("\n");
        for line in [
            "TZID:Europe/Berlin",
            "DTSTART:19700329T020000",
            "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
            "TZOFFSETFROM:+0100\nTZOFFSETTO:+0200",
            "DTSTART:19701025T030000",
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
            "TZOFFSETFROM:+0200\nTZOFFSETTO:+0100",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let ny = from_posix("America/New_York", "EST5EDT,M3.2.0,M11.1.0")
            .unwrap()
            .join("\n");
        assert!(ny.contains("DTSTART:19700308T020000"), "{ny}");
        assert!(ny.contains("BYMONTH=11;BYDAY=1SU"), "{ny}");
        assert!(ny.contains("TZOFFSETTO:-0400"), "{ny}");
        let kolkata = from_posix("Asia/Kolkata", "IST-5:30").unwrap().join("\n");
        assert!(kolkata.contains("TZOFFSETTO:+0530"), "{kolkata}");
        assert!(
            from_posix("X", "<+03>-3")
                .unwrap()
                .join("\n")
                .contains("TZNAME:+03")
        );
        assert!(from_posix("X", "garbage").is_none());
    }

    #[test]
    fn the_footer_is_the_last_line_of_a_tzif_file() {
        assert_eq!(
            footer(b"TZif2....\n\x00\x01\nCET-1CEST,M3.5.0,M10.5.0/3\n").as_deref(),
            Some("CET-1CEST,M3.5.0,M10.5.0/3")
        );
        assert_eq!(footer(b"not a tzif\nX\n"), None);
    }
}
