//! The simulated zones' authoritative name servers: two DNS responders on loopback (UDP and
//! TCP on one port each), standing for OVHcloud's `dnsNN.ovh.net` and `nsNN.ovh.net`, that
//! answer every simulated zone as of its last refresh. A propagation check can so query
//! "OVHcloud's name servers" directly in the demo and the tests.
//!
//! A test can hold one server back (`SimHandle::hold_name_server`): it keeps answering the
//! zones as they were when held, like a secondary that has not transferred the new serial
//! yet, until released.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use super::SimError;
use super::http::Shared;
use super::zone::{NAME_SERVERS, Served, rdata, served_type};

/// Largest UDP answer to a query without EDNS (RFC 1035 §4.2.1); a longer one is truncated
/// so the client retries over TCP.
const UDP_LIMIT: usize = 512;

/// One running responder.
#[derive(Debug, Clone)]
pub struct NameServer {
    /// Its host name in the zones' NS records (`dns200.ovh.net`).
    pub name: String,
    /// Where it answers, UDP and TCP.
    pub addr: SocketAddr,
}

/// Starts both responders; they stop when `stop` is dropped.
pub(super) async fn start(
    shared: Arc<Shared>,
    stop: &watch::Sender<()>,
) -> Result<Vec<NameServer>, SimError> {
    let mut servers = Vec::new();
    for (index, name) in NAME_SERVERS.iter().enumerate() {
        let (udp, tcp) = bind_pair().await?;
        let addr = udp
            .local_addr()
            .map_err(|e| SimError::Io(format!("cannot read the DNS address: {e}")))?;
        tokio::spawn(serve_udp(shared.clone(), index, udp, stop.subscribe()));
        tokio::spawn(serve_tcp(shared.clone(), index, tcp, stop.subscribe()));
        servers.push(NameServer {
            name: (*name).to_string(),
            addr,
        });
    }
    Ok(servers)
}

/// A UDP socket and a TCP listener on the same free loopback port.
async fn bind_pair() -> Result<(UdpSocket, TcpListener), SimError> {
    let mut last = String::new();
    // The UDP port is free by construction; the same TCP port may not be: try a few.
    for _ in 0..20 {
        let udp = UdpSocket::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| SimError::Io(format!("cannot open a DNS UDP socket: {e}")))?;
        let addr = udp
            .local_addr()
            .map_err(|e| SimError::Io(format!("cannot read the DNS address: {e}")))?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(SimError::Io(format!(
        "cannot listen for DNS over TCP next to UDP: {last}"
    )))
}

async fn serve_udp(
    shared: Arc<Shared>,
    index: usize,
    socket: UdpSocket,
    mut stop: watch::Receiver<()>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let Some(request) = Message::from_vec(&buf[..len]).ok() else {
            continue;
        };
        let response = respond(&shared, index, &request);
        let Ok(mut bytes) = response.to_vec() else {
            continue;
        };
        let limit = request
            .edns
            .as_ref()
            .map_or(UDP_LIMIT, |e| usize::from(e.max_payload()).max(UDP_LIMIT));
        if bytes.len() > limit {
            match response.truncate().to_vec() {
                Ok(b) => bytes = b,
                Err(_) => continue,
            }
        }
        let _ = socket.send_to(&bytes, peer).await;
    }
}

async fn serve_tcp(
    shared: Arc<Shared>,
    index: usize,
    listener: TcpListener,
    mut stop: watch::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut stop = stop;
            tokio::select! {
                _ = serve_connection(&shared, index, stream) => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Answers length-prefixed queries (RFC 1035 §4.2.2) until the client closes.
async fn serve_connection(shared: &Shared, index: usize, mut stream: TcpStream) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let Ok(request) = Message::from_vec(&buf) else {
            return;
        };
        let Ok(bytes) = respond(shared, index, &request).to_vec() else {
            return;
        };
        let Ok(n) = u16::try_from(bytes.len()) else {
            return;
        };
        if stream.write_all(&n.to_be_bytes()).await.is_err()
            || stream.write_all(&bytes).await.is_err()
        {
            return;
        }
    }
}

fn respond(shared: &Shared, index: usize, request: &Message) -> Message {
    let st = shared.lock();
    match st.dns_held.get(index).and_then(Option::as_ref) {
        Some(held) => answer(held, request),
        None => {
            let live: Vec<Served> = st.zones.iter().map(|z| z.served.clone()).collect();
            answer(&live, request)
        }
    }
}

fn name(text: &str) -> Option<Name> {
    Name::from_ascii(format!("{}.", text.trim_end_matches('.'))).ok()
}

/// The authoritative answer of `zones` to one query: the records of the name and type
/// (a CNAME in their place when the name has one), NODATA or NXDOMAIN with the zone's SOA,
/// REFUSED for a name outside every zone.
pub(super) fn answer(zones: &[Served], request: &Message) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return response;
    }
    let qname = query
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let zone = zones
        .iter()
        .filter(|z| qname == z.name || qname.ends_with(&format!(".{}", z.name)))
        .max_by_key(|z| z.name.len());
    let Some(zone) = zone else {
        response.metadata.response_code = ResponseCode::Refused;
        return response;
    };
    response.metadata.authoritative = true;
    let sub = qname
        .strip_suffix(&zone.name)
        .unwrap_or("")
        .trim_end_matches('.');
    let ttl = |t: u32| if t == 0 { zone.default_ttl } else { t };
    let owner = query.name().clone();
    let records = |rtype: RecordType| -> Vec<Record> {
        zone.records
            .iter()
            .filter(|r| r.sub == sub && served_type(&r.field_type) == Some(rtype))
            .filter_map(|r| {
                let data = rdata(&r.field_type, &r.target).ok()?;
                Some(Record::from_rdata(owner.clone(), ttl(r.ttl), data))
            })
            .collect()
    };
    let soa = || -> Option<Record> {
        let data = SOA::new(
            name(NAME_SERVERS[0])?,
            name("tech.ovh.net")?,
            zone.serial,
            86400,
            3600,
            3600000,
            zone.default_ttl.min(3600),
        );
        Some(Record::from_rdata(
            name(&zone.name)?,
            zone.default_ttl,
            RData::SOA(data),
        ))
    };
    let qtype = query.query_type();
    let mut answers = match qtype {
        RecordType::SOA if sub.is_empty() => soa().into_iter().collect(),
        RecordType::NS if sub.is_empty() => {
            let mut ns = records(RecordType::NS);
            if ns.is_empty() {
                ns = NAME_SERVERS
                    .iter()
                    .filter_map(|n| {
                        Some(Record::from_rdata(
                            owner.clone(),
                            zone.default_ttl,
                            RData::NS(NS(name(n)?)),
                        ))
                    })
                    .collect();
            }
            ns
        }
        t => records(t),
    };
    if answers.is_empty() && qtype != RecordType::CNAME {
        answers = records(RecordType::CNAME);
    }
    if answers.is_empty() {
        let exists = sub.is_empty()
            || zone
                .records
                .iter()
                .any(|r| r.sub == sub || r.sub.ends_with(&format!(".{sub}")));
        if !exists {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        response.authorities.extend(soa());
    } else {
        response.answers = answers;
    }
    response
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;

    use super::super::zone::ZRec;
    use super::*;

    fn zone() -> Vec<Served> {
        let rec = |id, sub: &str, ft: &str, target: &str, ttl| ZRec {
            id,
            sub: sub.into(),
            field_type: ft.into(),
            target: target.into(),
            ttl,
        };
        vec![Served {
            name: "example.com".into(),
            default_ttl: 3600,
            serial: 7,
            records: vec![
                rec(1, "", "MX", "1 mx1.mail.ovh.net.", 0),
                rec(2, "", "MX", "5 mx2.mail.ovh.net.", 60),
                rec(3, "", "SPF", "\"v=spf1 include:mx.ovh.com ~all\"", 0),
                rec(4, "autodiscover", "CNAME", "autodiscover.mail.ovh.net.", 0),
                rec(
                    5,
                    "_autodiscover._tcp",
                    "SRV",
                    "0 0 443 mailconfig.ovh.net.",
                    0,
                ),
            ],
        }]
    }

    fn ask(q: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(q).unwrap(), t));
        let bytes = answer(&zone(), &m).to_vec().unwrap();
        Message::from_vec(&bytes).unwrap()
    }

    fn data(m: &Message) -> Vec<String> {
        let mut v: Vec<String> = m
            .answers
            .iter()
            .map(|r| format!("{} {} {}", r.ttl, r.record_type(), r.data))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn answers_records_cnames_nodata_nxdomain_and_refuses_other_zones() {
        let m = ask("Example.com.", RecordType::MX);
        assert!(m.metadata.authoritative);
        assert_eq!(
            data(&m),
            ["3600 MX 1 mx1.mail.ovh.net.", "60 MX 5 mx2.mail.ovh.net."]
        );
        assert_eq!(
            data(&ask("example.com.", RecordType::TXT)),
            ["3600 TXT v=spf1 include:mx.ovh.com ~all"]
        );
        assert_eq!(
            data(&ask("autodiscover.example.com.", RecordType::A)),
            ["3600 CNAME autodiscover.mail.ovh.net."]
        );
        assert_eq!(
            data(&ask("_autodiscover._tcp.example.com.", RecordType::SRV)),
            ["3600 SRV 0 0 443 mailconfig.ovh.net."]
        );
        let m = ask("example.com.", RecordType::SOA);
        assert_eq!(m.answers.len(), 1);
        let m = ask("example.com.", RecordType::NS);
        assert_eq!(m.answers.len(), 2);
        let m = ask("example.com.", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        // `_tcp` has no record of its own but a name below it: an empty non-terminal.
        let m = ask("_tcp.example.com.", RecordType::TXT);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let m = ask("nothing.example.com.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = ask("example.org.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
    }
}
