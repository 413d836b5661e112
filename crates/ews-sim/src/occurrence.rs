//! Occurrences of recurring series: where occurrence N of a series falls (daily, weekly,
//! absolute monthly and yearly patterns, within the series' range), and the occurrence items
//! Exchange gives their own ItemId, so `OccurrenceItemId` (series + instance index) can be
//! read, modified into an exception and deleted, as a client copying a series with changed
//! or cancelled occurrences does.
//!
//! Occurrences keep the series' wall-clock time in its StartTimeZone (the published
//! definition `zones` stored with it), as on Exchange: a 09:30 series in Berlin is at 08:30
//! UTC in winter and 07:30 UTC in summer. A series without a zone is placed in UTC.
//! Relative (“second Tuesday”) patterns are not expanded and answer a clear error.

use chrono::{DateTime, Datelike, Duration, FixedOffset, Months, NaiveDate, SecondsFormat};

use crate::ops::{Fail, kid};
use crate::soap::{t, t_text, with_attrs};
use crate::state::{Item, Mailbox, State, sort_children};
use crate::xml::Node;

fn text<'a>(n: &'a Node, local: &str) -> Option<&'a str> {
    kid(n, local).map(|k| k.text.trim())
}

fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

fn write_time(t: DateTime<FixedOffset>) -> String {
    t.to_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn out_of_range(index: u32) -> Fail {
    (
        "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
        format!("Occurrence index is out of recurrence range ({index})."),
    )
}

fn weekday_named(name: &str) -> Option<chrono::Weekday> {
    use chrono::Weekday::*;
    Some(match name {
        "Sunday" => Sun,
        "Monday" => Mon,
        "Tuesday" => Tue,
        "Wednesday" => Wed,
        "Thursday" => Thu,
        "Friday" => Fri,
        "Saturday" => Sat,
        _ => return None,
    })
}

/// Start and end of occurrence `index` (1-based) of the series `master`.
pub fn nth(master: &Node, index: u32) -> Result<(String, String), Fail> {
    let bad = |what: &str| {
        (
            "ErrorInvalidOperation",
            format!("the simulator cannot place occurrences of this series: {what}"),
        )
    };
    if index == 0 {
        return Err(out_of_range(index));
    }
    let start = text(master, "Start")
        .and_then(parse_time)
        .ok_or_else(|| bad("no readable Start"))?;
    let end = text(master, "End")
        .and_then(parse_time)
        .ok_or_else(|| bad("no readable End"))?;
    let recurrence = kid(master, "Recurrence").ok_or((
        "ErrorItemNotFound",
        "The item is not a recurring series: it has no occurrences.".to_owned(),
    ))?;
    let pattern = recurrence
        .children
        .first()
        .ok_or_else(|| bad("an empty Recurrence"))?;
    let interval: u32 = text(pattern, "Interval")
        .and_then(|i| i.parse().ok())
        .unwrap_or(1)
        .max(1);
    // No series reaches 100,000 occurrences; the bound keeps the arithmetic below in range
    // whatever index a request gives.
    if index > 100_000 || interval > 1_000 {
        return Err(out_of_range(index));
    }
    let n = index - 1;
    let out_of_dates = || out_of_range(index);
    let utc = crate::zones::zone("UTC").expect("in the table");
    let zone = kid(master, "StartTimeZone")
        .and_then(crate::zones::Zone::read)
        .unwrap_or_else(|| utc.clone());
    // The pattern is walked in wall-clock time; each occurrence is then read in the zone.
    let start_utc = start.to_utc();
    let start = zone.to_local(start_utc);
    let at = match pattern.name.local.as_str() {
        "DailyRecurrence" => Duration::try_days(i64::from(n * interval))
            .and_then(|d| start.checked_add_signed(d))
            .ok_or_else(out_of_dates)?,
        "AbsoluteMonthlyRecurrence" => start
            .checked_add_months(Months::new(n * interval))
            .ok_or_else(out_of_dates)?,
        "AbsoluteYearlyRecurrence" => start
            .checked_add_months(Months::new(n * 12))
            .ok_or_else(out_of_dates)?,
        "WeeklyRecurrence" => {
            let days: Vec<chrono::Weekday> = text(pattern, "DaysOfWeek")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(weekday_named)
                .collect();
            if days.is_empty() {
                return Err(bad("WeeklyRecurrence without named days"));
            }
            let week0 = start.date().week(chrono::Weekday::Sun).first_day();
            let mut day = start;
            let mut seen = 0u32;
            // A series has at most a few thousand occurrences; the bound only stops a
            // runaway index.
            loop {
                let weeks = (day.date() - week0).num_days() / 7;
                if weeks % i64::from(interval) == 0 && days.contains(&day.weekday()) {
                    if seen == n {
                        break day;
                    }
                    seen += 1;
                }
                day = day
                    .checked_add_signed(Duration::days(1))
                    .ok_or_else(out_of_dates)?;
                if (day - start).num_days() > 366 * 50 {
                    return Err(out_of_range(index));
                }
            }
        }
        other => return Err(bad(&format!("{other} is not expanded"))),
    };
    if let Some(range) = recurrence.children.get(1) {
        match range.name.local.as_str() {
            "NumberedRecurrence" => {
                let count: u32 = text(range, "NumberOfOccurrences")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(u32::MAX);
                if index > count {
                    return Err(out_of_range(index));
                }
            }
            "EndDateRecurrence" => {
                let end_date = text(range, "EndDate").and_then(|d| {
                    NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d").ok()
                });
                if end_date.is_some_and(|e| at.date() > e) {
                    return Err(out_of_range(index));
                }
            }
            _ => {}
        }
    }
    let at = zone.to_utc(at);
    let until = at
        .checked_add_signed(end.to_utc() - start_utc)
        .ok_or_else(out_of_dates)?;
    Ok((write_time(at.into()), write_time(until.into())))
}

/// The id of occurrence `index` of series `master_id`: the occurrence item already made,
/// or a new one copied from the series (Exchange gives every occurrence an id).
pub fn occurrence_item(
    state: &mut State,
    mailbox: &str,
    master_id: &str,
    index: u32,
) -> Result<String, Fail> {
    let not_found = || {
        (
            "ErrorItemNotFound",
            format!("The specified object was not found in the store. ({master_id})"),
        )
    };
    let mb = state.mailbox(mailbox).ok_or_else(not_found)?;
    let made = mb.items.iter().find(|i| {
        i.master
            .as_ref()
            .is_some_and(|(m, n)| m == master_id && *n == index)
    });
    // An exception keeps its own content; an unmodified occurrence is the series' again
    // (below), so a change to the series shows in it as on Exchange.
    let reuse = match made {
        Some(i) if text(&i.node, "CalendarItemType") == Some("Exception") => {
            return Ok(i.id.clone());
        }
        Some(i) => Some(i.id.clone()),
        None => None,
    };
    let master = mb.item(master_id).ok_or_else(not_found)?;
    let (start, end) = nth(&master.node, index)?;
    let deleted = kid(&master.node, "DeletedOccurrences").is_some_and(|d| {
        d.children
            .iter()
            .any(|o| text(o, "Start").and_then(parse_time) == parse_time(&start))
    });
    if deleted {
        return Err((
            "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
            format!(
                "Occurrence with this index was previously deleted from the recurrence ({index})."
            ),
        ));
    }
    let mut node = master.node.clone();
    node.children.retain(|c| {
        !matches!(
            c.name.local.as_str(),
            "Recurrence"
                | "ModifiedOccurrences"
                | "DeletedOccurrences"
                | "FirstOccurrence"
                | "LastOccurrence"
                | "CalendarItemType"
                | "Start"
                | "End"
                | "OriginalStart"
        )
    });
    node.children.push(t_text("Start", &start));
    node.children.push(t_text("End", &end));
    node.children.push(t_text("OriginalStart", &start));
    node.children.push(t_text("CalendarItemType", "Occurrence"));
    sort_children(&mut node, "CalendarItemType");
    let folder = master.folder.clone();
    let created = master.created;
    if let Some(id) = reuse {
        let mb = state.mailbox_mut(mailbox).ok_or_else(not_found)?;
        if let Some(i) = mb.item_mut(&id) {
            i.node = node;
        }
        return Ok(id);
    }
    let id = state.new_id("Occ");
    let ck = state.new_change_key();
    let mb = state.mailbox_mut(mailbox).ok_or_else(not_found)?;
    mb.items.push(Item {
        id: id.clone(),
        change_key: ck,
        folder,
        node,
        attachments: Vec::new(),
        created,
        seq: created,
        master: Some((master_id.to_owned(), index)),
    });
    Ok(id)
}

/// After an occurrence changed: marks it an exception, lists the series' modified
/// occurrences again, and gives the series a new change key and change number (a sync
/// reports the series as updated, as Exchange does).
pub fn occurrence_changed(state: &mut State, mailbox: &str, occurrence_id: &str) {
    let ck = state.new_change_key();
    let Some(mb) = state.mailbox_mut(mailbox) else {
        return;
    };
    let Some(occ) = mb.item_mut(occurrence_id) else {
        return;
    };
    let Some((master_id, _)) = occ.master.clone() else {
        return;
    };
    occ.node
        .children
        .retain(|c| c.name.local != "CalendarItemType");
    occ.node
        .children
        .push(t_text("CalendarItemType", "Exception"));
    sort_children(&mut occ.node, "CalendarItemType");
    refresh_master(mb, &master_id, ck);
}

/// Deletes an occurrence: the series lists its original start as deleted.
pub fn delete_occurrence(
    state: &mut State,
    mailbox: &str,
    occurrence_id: &str,
) -> Result<(), Fail> {
    let ck = state.new_change_key();
    let mb = state
        .mailbox_mut(mailbox)
        .ok_or(("ErrorNonExistentMailbox", format!("no mailbox {mailbox}")))?;
    let Some(pos) = mb.items.iter().position(|i| i.id == occurrence_id) else {
        return Ok(());
    };
    let occ = mb.items.remove(pos);
    let Some((master_id, _)) = occ.master else {
        return Ok(());
    };
    let original = text(&occ.node, "OriginalStart")
        .unwrap_or_default()
        .to_owned();
    if let Some(master) = mb.item_mut(&master_id) {
        if !master
            .node
            .children
            .iter()
            .any(|c| c.name.local == "DeletedOccurrences")
        {
            master.node.children.push(t("DeletedOccurrences"));
        }
        if let Some(d) = master
            .node
            .children
            .iter_mut()
            .find(|c| c.name.local == "DeletedOccurrences")
        {
            let mut o = t("DeletedOccurrence");
            o.children.push(t_text("Start", &original));
            d.children.push(o);
        }
    }
    refresh_master(mb, &master_id, ck);
    Ok(())
}

fn refresh_master(mb: &mut Mailbox, master_id: &str, ck: String) {
    let mut modified = t("ModifiedOccurrences");
    for i in &mb.items {
        let is_exception = i.master.as_ref().is_some_and(|(m, _)| m == master_id)
            && text(&i.node, "CalendarItemType") == Some("Exception");
        if is_exception {
            let mut o = t("Occurrence");
            o.children.push(with_attrs(
                t("ItemId"),
                &[("Id", &i.id), ("ChangeKey", &i.change_key)],
            ));
            for f in ["Start", "End", "OriginalStart"] {
                o.children
                    .push(t_text(f, text(&i.node, f).unwrap_or_default()));
            }
            modified.children.push(o);
        }
    }
    let seq = mb.next_seq();
    let Some(master) = mb.item_mut(master_id) else {
        return;
    };
    master
        .node
        .children
        .retain(|c| c.name.local != "ModifiedOccurrences");
    if !modified.children.is_empty() {
        master.node.children.push(modified);
    }
    sort_children(&mut master.node, "CalendarItemType");
    master.change_key = ck;
    master.seq = seq;
}
