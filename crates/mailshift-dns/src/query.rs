//! Asking one server for one name and type and reading its answer as a `RecordSet`: the
//! zone's reads (to the primary) and the propagation check (to each authoritative server)
//! both go through here.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{RecordType as WireType, TSigner};
use mailshift_core::dns::{RecordSet, RecordType};

use crate::TsigKey;
use crate::rdata::{name, to_text, wire_type};
use crate::wire::{Transport, WireError, exchange};

/// Sends one query and returns the reply whatever its response code. `recursion` is on only
/// when asking a resolver (finding a zone's name servers); authoritative servers are asked
/// with it off, so an answer can only come from the zone itself.
pub(crate) async fn ask(
    server: SocketAddr,
    qname: &str,
    qtype: WireType,
    recursion: bool,
    key: Option<(&TsigKey, &TSigner)>,
    deadline: Duration,
) -> Result<Message, String> {
    let mut message = Message::query();
    message.metadata.recursion_desired = recursion;
    message.add_query(Query::query(name(qname)?, qtype));
    exchange(
        server,
        message,
        key.map(|(_, s)| s),
        Transport::Udp,
        deadline,
    )
    .await
    .map(|reply| reply.message)
    .map_err(|e| wire_error_text(server, key.map(|(k, _)| k), e))
}

/// What `server` holds for `name` and `rtype` as an authority: the set, `None` when the name
/// or the type does not exist there, an error when the server does not answer for the zone.
pub(crate) async fn read_set(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    key: Option<(&TsigKey, &TSigner)>,
    deadline: Duration,
) -> Result<Option<RecordSet>, String> {
    let reply = ask(server, name, wire_type(rtype), false, key, deadline).await?;
    let rcode = reply.metadata.response_code;
    match rcode {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        ResponseCode::Refused => {
            return Err(format!(
                "{server} refused to answer for {name} {rtype}: it does not serve that zone, \
                 or does not answer queries from this address"
            ));
        }
        other => {
            return Err(format!(
                "{server} answered {other} for {name} {rtype} (the server could not read its \
                 zone: see its log)"
            ));
        }
    }
    if !reply.metadata.authoritative {
        return Err(format!(
            "{server} is not authoritative for {name}: it answered from elsewhere (a \
             resolver's cache, a referral); ask the zone's own name servers"
        ));
    }
    let wanted = crate::rdata::name(name)?;
    let mut ttl = None;
    let mut data = Vec::new();
    for record in &reply.answers {
        if record.name != wanted {
            continue;
        }
        if let Some(text) = to_text(rtype, &record.data) {
            ttl = Some(ttl.map_or(record.ttl, |t: u32| t.min(record.ttl)));
            data.push(text);
        }
    }
    Ok(ttl.map(|ttl| RecordSet::new(name, rtype, ttl, data)))
}

/// The words people read for a failed exchange: the server, what went wrong, the fix.
pub(crate) fn wire_error_text(server: SocketAddr, key: Option<&TsigKey>, e: WireError) -> String {
    match e {
        WireError::Network(e) => format!("{server} did not answer: {e}"),
        WireError::BadReply(e) => format!("{server}: {e}"),
        WireError::Tsig(error) => tsig_error_text(server, key, error),
    }
}

fn tsig_error_text(server: SocketAddr, key: Option<&TsigKey>, error: TsigError) -> String {
    let (name, algorithm) = key.map_or(("?", "?"), |k| (k.name.as_str(), k.algorithm.as_str()));
    match error {
        TsigError::BadSig => format!(
            "{server} rejected the signature of TSIG key `{name}` (BADSIG): the secret differs \
             from the one in the server's `key \"{name}\"` block; copy it from there (base64)"
        ),
        TsigError::BadKey => format!(
            "{server} does not know TSIG key `{name}` with algorithm {algorithm} (BADKEY): \
             the key name and algorithm must be those of a `key` block in the server's \
             configuration"
        ),
        TsigError::BadTime => format!(
            "{server} rejected the time of the TSIG signature (BADTIME): this machine's clock \
             and the server's differ by more than 5 minutes; fix the clock (NTP)"
        ),
        other => format!("{server} rejected the TSIG signature of key `{name}`: {other:?}"),
    }
}
