//! Record data between the presentation form `RecordSet` holds (`10 mx1.example.net`,
//! `"v=spf1 ~all"`, `0 5 443 autodiscover.example.net`) and the wire form hickory encodes,
//! for the record types a cutover touches.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType as WireType};
use mailshift_core::dns::{RecordType, txt_presentation, txt_strings};

pub(crate) fn wire_type(rtype: RecordType) -> WireType {
    match rtype {
        RecordType::A => WireType::A,
        RecordType::Aaaa => WireType::AAAA,
        RecordType::Cname => WireType::CNAME,
        RecordType::Mx => WireType::MX,
        RecordType::Txt => WireType::TXT,
        RecordType::Srv => WireType::SRV,
        RecordType::Ns => WireType::NS,
    }
}

/// `example.com` (or `example.com.`) as an absolute name.
pub(crate) fn name(text: &str) -> Result<Name, String> {
    let text = text.trim().trim_end_matches('.');
    Name::from_ascii(format!("{text}.")).map_err(|e| format!("`{text}` is not a domain name: {e}"))
}

/// A name as `RecordSet` writes it: lower-case, no trailing dot.
pub(crate) fn name_text(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The presentation form of `data`, or `None` when it is not of `rtype` (a CNAME met while
/// asking for MX).
pub(crate) fn to_text(rtype: RecordType, data: &RData) -> Option<String> {
    Some(match (rtype, data) {
        (RecordType::A, RData::A(a)) => a.0.to_string(),
        (RecordType::Aaaa, RData::AAAA(a)) => a.0.to_string(),
        (RecordType::Cname, RData::CNAME(c)) => name_text(&c.0),
        (RecordType::Ns, RData::NS(n)) => name_text(&n.0),
        (RecordType::Mx, RData::MX(mx)) => format!("{} {}", mx.preference, name_text(&mx.exchange)),
        (RecordType::Srv, RData::SRV(srv)) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            name_text(&srv.target)
        ),
        (RecordType::Txt, RData::TXT(txt)) => {
            let strings: Vec<Vec<u8>> = txt.txt_data.iter().map(|s| s.to_vec()).collect();
            txt_presentation(&strings)
        }
        _ => return None,
    })
}

/// The wire form of one record's presentation data; the error says what is wrong with it.
pub(crate) fn from_text(rtype: RecordType, text: &str) -> Result<RData, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let bad = |what: &str| format!("{rtype} data `{text}` is not {what}");
    let number = |w: &str, what: &str| w.parse::<u16>().map_err(|_| bad(what));
    Ok(match rtype {
        RecordType::A => RData::A(A(text
            .trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| bad("an IPv4 address"))?)),
        RecordType::Aaaa => RData::AAAA(AAAA(
            text.trim()
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("an IPv6 address"))?,
        )),
        RecordType::Cname | RecordType::Ns => {
            let [target] = words[..] else {
                return Err(bad("one domain name"));
            };
            let target = name(target)?;
            if rtype == RecordType::Cname {
                RData::CNAME(CNAME(target))
            } else {
                RData::NS(NS(target))
            }
        }
        RecordType::Mx => {
            let [preference, exchange] = words[..] else {
                return Err(bad("`PREFERENCE EXCHANGE` (`10 mx1.example.net`)"));
            };
            RData::MX(MX::new(
                number(
                    preference,
                    "`PREFERENCE EXCHANGE` with a preference of 0-65535",
                )?,
                name(exchange)?,
            ))
        }
        RecordType::Srv => {
            let [priority, weight, port, target] = words[..] else {
                return Err(bad(
                    "`PRIORITY WEIGHT PORT TARGET` (`0 5 443 autodiscover.example.net`)",
                ));
            };
            let what = "`PRIORITY WEIGHT PORT TARGET` with numbers of 0-65535";
            RData::SRV(SRV::new(
                number(priority, what)?,
                number(weight, what)?,
                number(port, what)?,
                name(target)?,
            ))
        }
        RecordType::Txt => {
            let strings = txt_strings(text);
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailshift_core::dns::normalize_data;

    #[test]
    fn data_goes_to_the_wire_and_back_unchanged() {
        for (rtype, text) in [
            (RecordType::Mx, "10 mx1.mail.ovh.net"),
            (RecordType::Srv, "0 5 443 autodiscover.mail.ovh.net"),
            (RecordType::Txt, "\"v=spf1 include:mx.ovh.com ~all\""),
            (
                RecordType::Txt,
                "\"a \\\"quoted\\\" word\" \"caf\\195\\169\"",
            ),
            (RecordType::Cname, "autodiscover.outlook.com"),
            (RecordType::A, "192.0.2.1"),
            (RecordType::Aaaa, "2001:db8::1"),
            (RecordType::Ns, "ns1.example.net"),
        ] {
            let text = normalize_data(rtype, text);
            let wire = from_text(rtype, &text).unwrap();
            assert_eq!(to_text(rtype, &wire).as_deref(), Some(text.as_str()));
        }
    }

    #[test]
    fn bad_data_is_refused_with_the_expected_form() {
        let err = from_text(RecordType::Mx, "mx1.example.net").unwrap_err();
        assert!(err.contains("PREFERENCE EXCHANGE"), "{err}");
        let err = from_text(RecordType::Srv, "0 5 99999 x.example.net").unwrap_err();
        assert!(err.contains("0-65535"), "{err}");
        assert!(from_text(RecordType::A, "300.1.1.1").is_err());
    }
}
