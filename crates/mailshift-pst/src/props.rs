//! MAPI properties as plain values, and the named-property map (PidLid… ids are per file:
//! each file numbers its named properties itself, from 0x8000).

use std::collections::{BTreeMap, HashMap};

use outlook_pst::ltp::prop_context::PropertyValue;
use outlook_pst::ltp::table_context::TableContext;
use outlook_pst::messaging::folder::Folder;
use outlook_pst::messaging::message::Message;
use outlook_pst::messaging::named_prop::{NamedPropertyGuid, NamedPropertyId};
use outlook_pst::messaging::store::Store;

/// One property's value, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    /// FILETIME: 100 ns since 1601-01-01 UTC.
    Time(i64),
    Float(f64),
    Bin(Vec<u8>),
    Strs(Vec<String>),
}

/// The first 32 bits of the property sets this crate reads (the rest of each GUID is the
/// same `-0000-0000-C000-000000000046`).
pub const PSETID_APPOINTMENT: u32 = 0x0006_2002;
pub const PSETID_TASK: u32 = 0x0006_2003;
pub const PSETID_ADDRESS: u32 = 0x0006_2004;
pub const PSETID_COMMON: u32 = 0x0006_2008;

/// (property set, LID) → this file's property id.
#[derive(Debug, Default, Clone)]
pub(crate) struct Named(HashMap<(u32, u32), u16>);

impl Named {
    #[cfg(test)]
    pub(crate) fn from_map(map: HashMap<(u32, u32), u16>) -> Named {
        Named(map)
    }

    pub(crate) fn read(store: &dyn Store) -> Named {
        let mut map = HashMap::new();
        let Ok(named) = store.named_property_map() else {
            return Named(map);
        };
        let props = named.properties();
        let Ok(entries) = props.stream_entry() else {
            return Named(map);
        };
        // The GUID stream read whole: `lookup_guid` in outlook-pst 1.2.0 adds the 3
        // reserved indexes twice and reads past the stream.
        let guids = props.stream_guid().unwrap_or_default();
        for e in entries {
            let NamedPropertyId::Number(lid) = e.id() else {
                continue;
            };
            let set = match e.guid() {
                NamedPropertyGuid::GuidIndex(i) => match guids.get(usize::from(i)) {
                    Some(g) => g.data1(),
                    None => continue,
                },
                _ => continue,
            };
            map.insert((set, lid), e.prop_id());
        }
        Named(map)
    }
}

/// A recipient of a message or an appointment.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// 1 To, 2 Cc, 3 Bcc (PR_RECIPIENT_TYPE).
    pub kind: i64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// An item's properties, named properties resolved.
#[derive(Debug, Clone, Default)]
pub struct Props {
    pub tags: BTreeMap<u16, Value>,
    named: HashMap<(u32, u32), u16>,
    pub recipients: Vec<Recipient>,
    /// Rows of the attachment table (their sub-node ids), in order.
    pub attachments: Vec<u32>,
}

pub(crate) fn value(v: &PropertyValue) -> Option<Value> {
    Some(match v {
        PropertyValue::Integer16(i) => Value::Int(i64::from(*i)),
        PropertyValue::Integer32(i) => Value::Int(i64::from(*i)),
        PropertyValue::Integer64(i) => Value::Int(*i),
        PropertyValue::Boolean(b) => Value::Bool(*b),
        PropertyValue::Time(t) => Value::Time(*t),
        PropertyValue::Floating64(f) | PropertyValue::FloatingTime(f) => Value::Float(*f),
        PropertyValue::Floating32(f) => Value::Float(f64::from(*f)),
        PropertyValue::String8(s) => Value::Str(s.to_string()),
        PropertyValue::Unicode(s) => Value::Str(s.to_string()),
        PropertyValue::Binary(b) => Value::Bin(b.buffer().to_vec()),
        PropertyValue::MultipleUnicode(v) => Value::Strs(v.iter().map(|s| s.to_string()).collect()),
        PropertyValue::MultipleString8(v) => Value::Strs(v.iter().map(|s| s.to_string()).collect()),
        _ => return None,
    })
}

pub(crate) fn folder_class(f: &dyn Folder) -> Option<String> {
    match f.properties().get(0x3613).and_then(value) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

/// The rows of a table as property maps.
pub(crate) fn rows(table: &dyn TableContext) -> Vec<(u32, BTreeMap<u16, Value>)> {
    let ctx = table.context();
    let mut out = Vec::new();
    for row in table.rows_matrix() {
        let mut map = BTreeMap::new();
        if let Ok(cols) = row.columns(ctx) {
            for (col, v) in ctx.columns().iter().zip(cols) {
                if let Some(v) = v
                    && let Ok(pv) = table.read_column(&v, col.prop_type())
                    && let Some(v) = value(&pv)
                {
                    map.insert(col.prop_id(), v);
                }
            }
        }
        out.push((u32::from(row.id()), map));
    }
    out
}

impl Props {
    #[cfg(test)]
    pub(crate) fn for_tests(tags: BTreeMap<u16, Value>, named: Named) -> Props {
        Props {
            tags,
            named: named.0,
            recipients: Vec::new(),
            attachments: Vec::new(),
        }
    }

    pub(crate) fn of_message(m: &dyn Message, named: &Named) -> Props {
        let tags = m
            .properties()
            .iter()
            .filter_map(|(k, v)| value(v).map(|v| (*k, v)))
            .collect();
        let recipients = m
            .recipient_table()
            .map(|t| {
                rows(t.as_ref())
                    .into_iter()
                    .map(|(_, r)| {
                        let s = |id| match r.get(&id) {
                            Some(Value::Str(s)) if !s.is_empty() => Some(s.clone()),
                            _ => None,
                        };
                        Recipient {
                            kind: match r.get(&0x0C15) {
                                Some(Value::Int(i)) => *i,
                                _ => 1,
                            },
                            name: s(0x3001),
                            // PR_SMTP_ADDRESS, else PR_EMAIL_ADDRESS when it is SMTP.
                            address: s(0x39FE).or_else(|| s(0x3003).filter(|a| a.contains('@'))),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let attachments = m
            .attachment_table()
            .map(|t| t.rows_matrix().map(|r| u32::from(r.id())).collect())
            .unwrap_or_default();
        Props {
            tags,
            named: named.0.clone(),
            recipients,
            attachments,
        }
    }

    pub fn get(&self, tag: u16) -> Option<&Value> {
        self.tags.get(&tag)
    }

    /// A named property (property set's first 32 bits, LID).
    pub fn named(&self, set: u32, lid: u32) -> Option<&Value> {
        self.named.get(&(set, lid)).and_then(|id| self.tags.get(id))
    }

    pub fn str(&self, tag: u16) -> Option<String> {
        str_of(self.get(tag))
    }

    pub fn named_str(&self, set: u32, lid: u32) -> Option<String> {
        str_of(self.named(set, lid))
    }

    pub fn int(&self, tag: u16) -> Option<i64> {
        match self.get(tag) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn time(&self, tag: u16) -> Option<i64> {
        time_of(self.get(tag))
    }

    pub fn named_time(&self, set: u32, lid: u32) -> Option<i64> {
        time_of(self.named(set, lid))
    }

    pub fn named_bool(&self, set: u32, lid: u32) -> Option<bool> {
        match self.named(set, lid) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// PR_SUBJECT without the prefix marker MAPI may store in front (`\x01` and a length).
    pub fn subject(&self) -> Option<String> {
        let s = self.str(0x0037)?;
        Some(match s.strip_prefix('\u{1}') {
            Some(rest) => rest.chars().skip(1).collect(),
            None => s,
        })
    }

    /// PR_BODY.
    pub fn body(&self) -> Option<String> {
        self.str(0x1000)
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// FILETIME as Unix seconds, for a time property.
fn time_of(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Time(t)) if *t > 0 => Some(filetime_to_unix(*t)),
        _ => None,
    }
}

/// FILETIME (100 ns since 1601) → Unix seconds.
pub fn filetime_to_unix(t: i64) -> i64 {
    t / 10_000_000 - 11_644_473_600
}

/// Unix seconds → (year, month, day, hour, minute, second), UTC (proleptic Gregorian).
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}
