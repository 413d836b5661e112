//! The propagation check: what each authoritative server of a zone answers, asked directly
//! (recursion off, no cache in the way), and where those servers are (the zone's NS records).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType as WireType};
use mailshift_core::dns::{RecordSet, RecordType, normalize_name};
use tokio::task::JoinSet;

use crate::query::{ask, read_set};
use crate::rdata::name_text;

/// How long one server has to answer one question when the caller does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One server's answer: the set it serves (`None`: it has none), or why it gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub server: SocketAddr,
    pub result: Result<Option<RecordSet>, String>,
}

/// Asks every server in `servers`, at once, for `name` and `rtype`; one answer per server, in
/// the order given. A server that is not authoritative for the name answers an error.
pub async fn ask_each(servers: &[SocketAddr], name: &str, rtype: RecordType) -> Vec<Answer> {
    ask_each_with_timeout(servers, name, rtype, DEFAULT_TIMEOUT).await
}

/// [`ask_each`] with its own time limit per server.
pub async fn ask_each_with_timeout(
    servers: &[SocketAddr],
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Vec<Answer> {
    let mut tasks = JoinSet::new();
    for (i, &server) in servers.iter().enumerate() {
        let name = name.to_string();
        tasks.spawn(async move { (i, read_set(server, &name, rtype, None, timeout).await) });
    }
    let mut results: Vec<Option<Result<Option<RecordSet>, String>>> = vec![None; servers.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, result)) = done {
            results[i] = Some(result);
        }
    }
    servers
        .iter()
        .zip(results)
        .map(|(&server, result)| Answer {
            server,
            result: result.unwrap_or_else(|| Err(format!("asking {server} failed (a bug)"))),
        })
        .collect()
}

/// The addresses of the zone's authoritative servers: its NS records as `resolver` (the
/// system's first `nameserver` of /etc/resolv.conf when `None`) answers them, each name
/// server's addresses from the answer's glue or asked of the same resolver, on port 53.
pub async fn authoritative_servers(
    apex: &str,
    resolver: Option<SocketAddr>,
) -> Result<Vec<SocketAddr>, String> {
    authoritative_servers_on_port(apex, resolver, 53).await
}

/// [`authoritative_servers`] with the servers listening on `port`: NS records carry no port,
/// so a zone served elsewhere than 53 (the tests' servers on loopback) says it here.
pub async fn authoritative_servers_on_port(
    apex: &str,
    resolver: Option<SocketAddr>,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let apex = normalize_name(apex);
    let resolver = match resolver {
        Some(r) => r,
        None => system_resolver()?,
    };
    let reply = ask(resolver, &apex, WireType::NS, true, None, DEFAULT_TIMEOUT)
        .await
        .map_err(|e| format!("finding the name servers of {apex}: {e}"))?;
    if reply.metadata.response_code != ResponseCode::NoError {
        return Err(format!(
            "finding the name servers of {apex}: {resolver} answered {}; is the zone's name \
             right and delegated?",
            reply.metadata.response_code
        ));
    }
    let ns_names: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(name_text(&ns.0)),
            _ => None,
        })
        .collect();
    if ns_names.is_empty() {
        return Err(format!(
            "finding the name servers of {apex}: {resolver} knows no NS records for it; is \
             the zone's name right and delegated?"
        ));
    }

    let mut servers = Vec::new();
    for ns in &ns_names {
        let mut addresses = glue(&reply.additionals, ns);
        if addresses.is_empty() {
            for qtype in [WireType::A, WireType::AAAA] {
                let reply = ask(resolver, ns, qtype, true, None, DEFAULT_TIMEOUT)
                    .await
                    .map_err(|e| format!("finding the address of {ns} (NS of {apex}): {e}"))?;
                addresses.extend(glue(&reply.answers, ns));
            }
        }
        if addresses.is_empty() {
            return Err(format!(
                "{ns}, a name server of {apex}, has no address at {resolver}: fix its A/AAAA \
                 records (or the zone's NS records)"
            ));
        }
        servers.extend(addresses.into_iter().map(|ip| SocketAddr::new(ip, port)));
    }
    servers.sort();
    servers.dedup();
    Ok(servers)
}

/// The addresses of `host` among `records`.
fn glue(records: &[hickory_proto::rr::Record], host: &str) -> Vec<IpAddr> {
    records
        .iter()
        .filter(|r| name_text(&r.name) == host)
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// The first `nameserver` of /etc/resolv.conf, on port 53.
fn system_resolver() -> Result<SocketAddr, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| {
        format!("cannot read /etc/resolv.conf to find a resolver ({e}); name one in the plan")
    })?;
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .find_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .ok_or_else(|| "/etc/resolv.conf names no nameserver; name a resolver in the plan".into())
}
