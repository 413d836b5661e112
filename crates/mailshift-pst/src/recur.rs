//! PidLidAppointmentRecur (MS-OXOCAL §2.2.1.44, the AppointmentRecurrencePattern blob) read
//! into an RRULE, EXDATEs and modified occurrences.
//!
//! The blob counts in minutes since 1601 in the appointment's own time zone; the event is
//! written in UTC, so local times are shifted by the offset between the first occurrence's
//! UTC start and its local start. That offset is the one of the first occurrence: across a
//! daylight-saving change the EXDATE and override times of later occurrences are an hour off
//! (the time zone blob, PidLidTimeZoneStruct, is not read yet).
//!
//! A modified occurrence keeps its own start, end, subject and location (from the blob's
//! ExceptionInfo); its own body and attendees live in an attachment and are not carried (the
//! master's apply). Hijri calendars are not read: the master is carried with a note.

/// What a recurrence becomes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recurrence {
    /// The RRULE value (`FREQ=WEEKLY;INTERVAL=1;BYDAY=TU`).
    pub rule: String,
    /// Deleted occurrences (not also modified), original starts, Unix seconds UTC.
    pub deleted: Vec<i64>,
    pub modified: Vec<Modified>,
}

/// One modified occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified {
    /// Original start (RECURRENCE-ID), new start and end: Unix seconds UTC.
    pub original: i64,
    pub start: i64,
    pub end: i64,
    pub subject: Option<String>,
    pub location: Option<String>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let end =
            end.ok_or_else(|| format!("the recurrence blob ends at byte {}", self.b.len()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

/// Minutes since 1601 → Unix seconds.
fn minutes(m: u32) -> i64 {
    i64::from(m) * 60 - 11_644_473_600
}

const DAYS: [&str; 7] = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];

fn by_day(mask: u32) -> String {
    DAYS.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, d)| *d)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads the blob; `start` is the master's start (Unix seconds UTC), for the time zone shift.
pub fn read(blob: &[u8], start: i64) -> Result<Recurrence, String> {
    let mut r = Reader { b: blob, at: 0 };
    let _reader_version = r.u16()?;
    let _writer_version = r.u16()?;
    let frequency = r.u16()?;
    let pattern = r.u16()?;
    let calendar = r.u16()?;
    let _first = r.u32()?;
    let period = r.u32()?;
    let _sliding = r.u32()?;
    let (mask, nth, day) = match pattern {
        0x0 => (0, 0, 0),
        0x1 => (r.u32()?, 0, 0),
        0x2 | 0x3 => (0, 0, r.u32()?),
        0x4 => {
            let m = r.u32()?;
            (m, r.u32()?, 0)
        }
        p => {
            return Err(format!(
                "recurrence pattern type {p:#x} (a Hijri calendar) is not read"
            ));
        }
    };
    if calendar != 0 && calendar != 1 {
        return Err(format!("calendar type {calendar:#x} is not read"));
    }
    let end_type = r.u32()?;
    let count = r.u32()?;
    let _first_dow = r.u32()?;
    let n = r.u32()? as usize;
    let deleted: Vec<u32> = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
    let n = r.u32()? as usize;
    let modified: Vec<u32> = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
    let start_date = r.u32()?;
    let end_date = r.u32()?;
    let _reader2 = r.u32()?;
    let _writer2 = r.u32()?;
    let start_offset = r.u32()?;
    let _end_offset = r.u32()?;
    let exceptions = r.u16()?;

    // Local minutes + shift = UTC.
    let shift = start - minutes(start_date.saturating_add(start_offset));
    let utc = |local: u32| minutes(local) + shift;

    let (_, month, ..) = crate::props::civil(minutes(start_date));
    let mut rule = match (frequency, pattern) {
        (0x200A, 0x0) => format!("FREQ=DAILY;INTERVAL={}", (period / 1440).max(1)),
        // "Every weekday": a daily frequency with a week pattern.
        (0x200A, 0x1) | (0x200B, 0x1) => {
            format!(
                "FREQ=WEEKLY;INTERVAL={};BYDAY={}",
                period.max(1),
                by_day(mask)
            )
        }
        (0x200C, 0x2) => format!("FREQ=MONTHLY;INTERVAL={};BYMONTHDAY={day}", period.max(1)),
        (0x200C, 0x3) => format!("FREQ=MONTHLY;INTERVAL={};BYMONTHDAY=-1", period.max(1)),
        (0x200C, 0x4) => format!(
            "FREQ=MONTHLY;INTERVAL={};BYDAY={};BYSETPOS={}",
            period.max(1),
            by_day(mask),
            if nth == 5 { -1 } else { nth as i64 }
        ),
        (0x200D, 0x2) => format!(
            "FREQ=YEARLY;INTERVAL={};BYMONTH={month};BYMONTHDAY={day}",
            (period / 12).max(1)
        ),
        (0x200D, 0x3) => format!(
            "FREQ=YEARLY;INTERVAL={};BYMONTH={month};BYMONTHDAY=-1",
            (period / 12).max(1)
        ),
        (0x200D, 0x4) => format!(
            "FREQ=YEARLY;INTERVAL={};BYMONTH={month};BYDAY={};BYSETPOS={}",
            (period / 12).max(1),
            by_day(mask),
            if nth == 5 { -1 } else { nth as i64 }
        ),
        (f, p) => return Err(format!("recurrence {f:#x}/{p:#x} is not read")),
    };
    match end_type {
        0x2021 => {
            let (y, m, d, hh, mm, ss) =
                crate::props::civil(utc(end_date.saturating_add(start_offset)));
            rule.push_str(&format!(";UNTIL={y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"));
        }
        0x2022 => rule.push_str(&format!(";COUNT={count}")),
        _ => {}
    }

    let mut out_modified = Vec::new();
    for _ in 0..exceptions {
        let new_start = r.u32()?;
        let new_end = r.u32()?;
        let original = r.u32()?;
        let flags = r.u16()?;
        let mut subject = None;
        let mut location = None;
        let text = |r: &mut Reader| -> Result<String, String> {
            let _len = r.u16()?;
            let len2 = r.u16()?;
            Ok(String::from_utf8_lossy(r.take(usize::from(len2))?).into_owned())
        };
        if flags & 0x0001 != 0 {
            subject = Some(text(&mut r)?);
        }
        for (bit, size) in [(0x0002u16, 4usize), (0x0004, 4), (0x0008, 4)] {
            if flags & bit != 0 {
                r.take(size)?;
            }
        }
        if flags & 0x0010 != 0 {
            location = Some(text(&mut r)?);
        }
        for bit in [0x0020u16, 0x0040, 0x0080, 0x0100] {
            if flags & bit != 0 {
                r.take(4)?;
            }
        }
        out_modified.push(Modified {
            // OriginalStartDate is the original occurrence's start, local.
            original: utc(original),
            start: utc(new_start),
            end: utc(new_end),
            subject,
            location,
        });
    }
    // DeletedInstanceDates holds the modified occurrences' dates too (local midnights).
    let modified_days: Vec<u32> = modified;
    let deleted = deleted
        .into_iter()
        .filter(|d| !modified_days.contains(d))
        .map(|d| utc(d.saturating_add(start_offset)))
        .collect();
    Ok(Recurrence {
        rule,
        deleted,
        modified: out_modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minutes since 1601 of a Unix time.
    fn m(unix: i64) -> u32 {
        ((unix + 11_644_473_600) / 60) as u32
    }

    /// A monthly "second Tuesday" pattern, 10 occurrences, starting 2024-01-09 (local
    /// midnight), 09:00 local; one occurrence deleted (2024-03-12), none modified.
    fn blob() -> Vec<u8> {
        let mut b = Vec::new();
        let u16 = |b: &mut Vec<u8>, v: u16| b.extend_from_slice(&v.to_le_bytes());
        let u32 = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
        u16(&mut b, 0x3004);
        u16(&mut b, 0x3004);
        u16(&mut b, 0x200C); // monthly
        u16(&mut b, 0x0004); // MonthNth
        u16(&mut b, 0); // Gregorian
        u32(&mut b, 0); // FirstDateTime
        u32(&mut b, 1); // every month
        u32(&mut b, 0); // sliding
        u32(&mut b, 0x04); // Tuesday
        u32(&mut b, 2); // second
        u32(&mut b, 0x2022); // after N occurrences
        u32(&mut b, 10);
        u32(&mut b, 0); // FirstDOW
        u32(&mut b, 1);
        u32(&mut b, m(1_710_201_600)); // 2024-03-12
        u32(&mut b, 0);
        u32(&mut b, m(1_704_758_400)); // StartDate 2024-01-09
        u32(&mut b, m(1_731_369_600)); // EndDate
        u32(&mut b, 0x3006);
        u32(&mut b, 0x3009);
        u32(&mut b, 540); // 09:00
        u32(&mut b, 600);
        u16(&mut b, 0); // no exceptions
        b
    }

    #[test]
    fn a_monthly_nth_pattern_reads_as_an_rrule_with_its_exdate() {
        // The first occurrence is 09:00 local = 08:00 UTC (UTC+1).
        let start = 1_704_758_400 + 8 * 3600;
        let r = read(&blob(), start).unwrap();
        assert_eq!(
            r.rule,
            "FREQ=MONTHLY;INTERVAL=1;BYDAY=TU;BYSETPOS=2;COUNT=10"
        );
        assert_eq!(r.deleted, vec![1_710_201_600 + 8 * 3600]);
        assert!(r.modified.is_empty());
    }

    #[test]
    fn a_cut_blob_is_an_error_not_a_panic() {
        let b = blob();
        for len in [0, 7, 30, b.len() - 1] {
            assert!(read(&b[..len], 0).is_err(), "{len}");
        }
    }
}
