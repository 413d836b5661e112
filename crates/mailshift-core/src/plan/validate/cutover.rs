//! The cutover's rules: a domain's `dns` zone (provider, server, key, name servers), its
//! `records`, and the `cutover` settings, plan-wide and per domain. A cutover that could not
//! run (no records known for the platform, no server to update) is refused here, before any
//! step starts.

use std::collections::HashMap;

use super::{Validator, idx, is_domain, join, key};
use crate::cutover::{absolute_name, desired};
use crate::plan::model::{Cutover, DnsProvider, DnsRecord, DnsRecordType, Domain, ProviderKind};
use crate::plan::node::PathSeg;

const TSIG_ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// `host:port` with a port: the form of `server` and `nameservers`.
pub(crate) fn host_port(s: &str) -> bool {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return addr.port() != 0;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok_and(|p| p != 0)
                && (is_domain(&host.to_ascii_lowercase()) || host == "localhost")
        }
        None => false,
    }
}

impl Validator<'_> {
    pub(super) fn cutover(&mut self) {
        if let Some(c) = &self.plan.cutover {
            self.cutover_settings(&[key("cutover")], c);
        }
        let mut zones: HashMap<String, usize> = HashMap::new();
        for (i, d) in self.plan.domains.iter().enumerate() {
            let base = [key("domains"), idx(i)];
            if let Some(c) = &d.cutover {
                self.cutover_settings(&join(&base, &[key("cutover")]), c);
            }
            if d.dns.is_none() {
                if d.cutover.is_some() || d.records.is_some() {
                    let what = if d.records.is_some() {
                        "records"
                    } else {
                        "cutover"
                    };
                    self.error(
                        &join(&base, &[key(what)]),
                        format!("`{what}` needs the domain's `dns` zone"),
                        "add `dns: {provider: ovh | rfc2136 | manual}` to say where the records are written",
                    );
                }
                continue;
            }
            let name = d.name.to_ascii_lowercase();
            if let Some(first) = zones.insert(name.clone(), i) {
                self.error(
                    &join(&base, &[key("dns")]),
                    format!("domain `{}` has a `dns` zone twice", d.name),
                    format!(
                        "a domain is cut over once, to one platform: keep `dns` on the entry of the platform mail moves to (also at `domains[{first}]`)"
                    ),
                );
            }
            self.dns_zone(&base, d);
            match &d.records {
                Some(records) => self.records(&base, d, records),
                None => {
                    if let Err(why) = desired(self.plan, d) {
                        self.error(
                            &base,
                            format!("the records domain `{}` needs cannot be known: {why}", d.name),
                            "list them in the domain's `records:` (MX, the SPF TXT, autodiscover, DKIM), e.g. `records: [{name: \"@\", type: MX, values: [\"10 mx1.example.net.\"]}]`",
                        );
                    }
                }
            }
            let settings = d.cutover_settings(self.plan);
            if settings.force == Some(true) {
                self.warn(
                    &join(&base, &[key("cutover"), key("force")]),
                    format!(
                        "the cutover of `{}` is forced: its records switch even if an account failed its last sync or misses messages",
                        d.name
                    ),
                    "mail may reach the destination before its history does; remove `force` once the accounts are whole",
                );
            }
        }
    }

    fn cutover_settings(&mut self, base: &[PathSeg], c: &Cutover) {
        if let Some(e) = c.at.as_ref().and_then(|t| t.error()) {
            self.error(
                &join(base, &[key("at")]),
                e,
                "write the time with its offset, e.g. `2026-12-05T22:00:00+01:00` or `2026-12-05T21:00:00Z`",
            );
        }
        if let Some(e) = c.lower_ttl_ahead.as_ref().and_then(|t| t.error()) {
            self.error(
                &join(base, &[key("lower_ttl_ahead")]),
                e,
                "write a duration such as `2d` or `12h`",
            );
        }
        if c.low_ttl == Some(0) {
            self.error(
                &join(base, &[key("low_ttl")]),
                "a TTL of 0 makes every resolver ask the servers for each message",
                "use a short TTL such as `300` (five minutes)",
            );
        }
    }

    fn dns_zone(&mut self, base: &[PathSeg], d: &Domain) {
        let Some(z) = &d.dns else { return };
        let zb = join(base, &[key("dns")]);
        let domain = d.name.to_ascii_lowercase();
        let apex = z.zone.as_deref().unwrap_or(&domain).to_ascii_lowercase();
        let apex = apex.trim_end_matches('.');
        if !is_domain(apex) {
            self.error(
                &join(&zb, &[key("zone")]),
                format!("`{apex}` is not a zone name"),
                "write the zone's apex, e.g. `example.com`",
            );
        } else if domain != apex && !domain.ends_with(&format!(".{apex}")) {
            self.error(
                &join(&zb, &[key("zone")]),
                format!("domain `{}` is not in zone `{apex}`", d.name),
                "the zone is the domain itself or one of its parents",
            );
        }
        let only = |field: &str, provider: DnsProvider| {
            format!(
                "`{field}` is for `provider: {}`; remove it",
                provider.as_str()
            )
        };
        if z.provider != DnsProvider::Ovh && z.credentials.is_some() {
            self.error(
                &join(&zb, &[key("credentials")]),
                only("credentials", DnsProvider::Ovh),
                "an RFC 2136 zone signs with `tsig`; a manual zone needs nothing",
            );
        }
        if z.provider == DnsProvider::Ovh && z.server.is_some() {
            self.error(
                &join(&zb, &[key("server")]),
                "`server` is for `provider: rfc2136` (the primary that takes updates) and `manual` (the server read)",
                "an OVHcloud zone is reached through its API",
            );
        }
        if z.provider != DnsProvider::Rfc2136 && z.tsig.is_some() {
            self.error(
                &join(&zb, &[key("tsig")]),
                only("tsig", DnsProvider::Rfc2136),
                "only RFC 2136 updates are signed",
            );
        }
        match z.provider {
            DnsProvider::Ovh => self.ovh_credentials(&zb, d),
            DnsProvider::Rfc2136 => match &z.server {
                None => self.error(
                    &zb,
                    "an `rfc2136` zone needs the `server` that takes its updates",
                    "add `server: host:port`, the zone's primary, e.g. `ns1.example.com:53`",
                ),
                Some(s) if !host_port(s) => self.error(
                    &join(&zb, &[key("server")]),
                    format!("`{s}` is not `host:port`"),
                    "write the primary server with its port, e.g. `ns1.example.com:53` or `127.0.0.1:5353`",
                ),
                Some(_) => {}
            },
            DnsProvider::Manual => {
                if let Some(s) = &z.server
                    && !host_port(s)
                {
                    self.error(
                        &join(&zb, &[key("server")]),
                        format!("`{s}` is not `host:port`"),
                        "write the server to read the zone from with its port, e.g. `ns1.example.com:53`",
                    );
                }
            }
        }
        if let Some(alg) = z.tsig.as_ref().and_then(|t| t.algorithm.as_deref())
            && !TSIG_ALGORITHMS.contains(&alg.to_ascii_lowercase().as_str())
        {
            self.error(
                &join(&zb, &[key("tsig"), key("algorithm")]),
                format!("unknown TSIG algorithm `{alg}`"),
                "use `hmac-sha256` (the default), `hmac-sha384` or `hmac-sha512`",
            );
        }
        for (j, ns) in z.nameservers.iter().enumerate() {
            if !host_port(ns) {
                self.error(
                    &join(&zb, &[key("nameservers"), idx(j)]),
                    format!("`{ns}` is not `host:port`"),
                    "write each authoritative server with its port, e.g. `ns1.example.com:53`",
                );
            }
        }
        if let Some(e) = z.timeout.as_ref().and_then(|t| t.error()) {
            self.error(
                &join(&zb, &[key("timeout")]),
                e,
                "write a duration such as `5s` or `500ms`",
            );
        }
    }

    fn ovh_credentials(&mut self, zb: &[PathSeg], d: &Domain) {
        let z = d.dns.as_ref().expect("called with a zone");
        let ovh: Vec<&str> = self
            .plan
            .providers
            .iter()
            .filter(|(_, p)| p.kind == ProviderKind::Ovh)
            .map(|(n, _)| n.as_str())
            .collect();
        match &z.credentials {
            Some(name) if !self.plan.providers.contains_key(name) => {
                let help = match super::did_you_mean(name, ovh.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "name an entry of `providers`".to_string(),
                };
                self.error(
                    &join(zb, &[key("credentials")]),
                    format!("unknown provider `{name}`"),
                    help,
                );
            }
            Some(_) => {}
            None => {
                let platform = self
                    .plan
                    .platforms
                    .get(&d.platform)
                    .and_then(|p| p.provider.as_deref());
                if platform.is_none() && ovh.len() != 1 {
                    self.error(
                        zb,
                        "an `ovh` zone needs the API credentials that sign its calls",
                        "add `credentials: NAME`, an entry of `providers` whose consumer key may write `/domain/zone`",
                    );
                }
            }
        }
    }

    fn records(&mut self, base: &[PathSeg], d: &Domain, records: &[DnsRecord]) {
        let rb = join(base, &[key("records")]);
        if records.is_empty() {
            self.error(
                &rb,
                "`records` is empty: the cutover would switch nothing",
                "list the records the destination needs, or remove `records` to take the platform's published ones",
            );
        }
        let apex = d
            .dns
            .as_ref()
            .and_then(|z| z.zone.clone())
            .unwrap_or_else(|| d.name.clone())
            .to_ascii_lowercase();
        let apex = apex.trim_end_matches('.');
        let mut cnames: HashMap<String, usize> = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (j, r) in records.iter().enumerate() {
            let path = join(&rb, &[idx(j)]);
            let name = absolute_name(&r.name, &d.name);
            if name != apex && !name.ends_with(&format!(".{apex}")) {
                self.error(
                    &join(&path, &[key("name")]),
                    format!("`{name}` is not in zone `{apex}`"),
                    "a cutover writes its own zone only: use a name relative to the domain (`@`, `autodiscover`)",
                );
            }
            if r.values.is_empty() {
                self.error(
                    &join(&path, &[key("values")]),
                    "a record set with no value",
                    "give at least one value; to remove a record, leave it to the destination's records",
                );
            }
            for (k, v) in r.values.iter().enumerate() {
                if let Some(why) = bad_value(r.rtype, v) {
                    self.error(&join(&path, &[key("values"), idx(k)]), why.0, why.1);
                }
            }
            if r.rtype == DnsRecordType::Cname {
                if r.values.len() > 1 {
                    self.error(
                        &join(&path, &[key("values")]),
                        "a CNAME has exactly one target",
                        "keep one value",
                    );
                }
                if let Some(other) = names.get(&name) {
                    self.error(
                        &path,
                        format!("`{name}` has a CNAME and other records"),
                        format!("a name with a CNAME has no other record (RFC 1034 §3.6.2); see `records[{other}]`"),
                    );
                }
                cnames.insert(name, j);
            } else {
                if let Some(other) = cnames.get(&name) {
                    self.error(
                        &path,
                        format!("`{name}` has a CNAME and other records"),
                        format!("a name with a CNAME has no other record (RFC 1034 §3.6.2); see `records[{other}]`"),
                    );
                }
                names.insert(name, j);
            }
        }
    }
}

/// Why a record's value is not of its type's form, and the fix.
fn bad_value(rtype: DnsRecordType, v: &str) -> Option<(String, String)> {
    let words: Vec<&str> = v.split_whitespace().collect();
    let host_ok = |h: &str| is_domain(&h.trim_end_matches('.').to_ascii_lowercase());
    match rtype {
        DnsRecordType::Mx => {
            let ok = words.len() == 2 && words[0].parse::<u16>().is_ok() && host_ok(words[1]);
            (!ok).then(|| {
                (
                    format!("`{v}` is not an MX record"),
                    "write the preference and the host, e.g. `10 mx1.mail.ovh.net.`".to_string(),
                )
            })
        }
        DnsRecordType::Srv => {
            let ok = words.len() == 4
                && words[..3].iter().all(|w| w.parse::<u16>().is_ok())
                && host_ok(words[3]);
            (!ok).then(|| {
                (
                    format!("`{v}` is not an SRV record"),
                    "write priority, weight, port and target, e.g. `0 0 443 mailconfig.ovh.net.`"
                        .to_string(),
                )
            })
        }
        DnsRecordType::Cname => {
            let ok = words.len() == 1 && host_ok(words[0]);
            (!ok).then(|| {
                (
                    format!("`{v}` is not a host name"),
                    "write the target host, e.g. `autodiscover.outlook.com.`".to_string(),
                )
            })
        }
        DnsRecordType::Txt => (v.trim().is_empty() || v.len() > 4000).then(|| {
            (
                "a TXT value must be between 1 and 4000 characters".to_string(),
                "write the record's text, e.g. `v=spf1 include:mx.ovh.com ~all`".to_string(),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::load::{Format, load_str};

    const HEAD: &str = "version: 1
platforms:
  old: {type: imap, imap: {host: old.example.net}}
  g: {type: gmail}
  plain: {type: imap, imap: {host: new.example.net}}
";

    /// Every diagnostic of `domains`, as `path: message` lines.
    fn problems(domains: &str) -> Vec<String> {
        let text = format!("{HEAD}{domains}");
        let diagnostics = match load_str(&text, Format::Yaml, Path::new("p.yaml"), Path::new(".")) {
            Ok(l) => l.warnings,
            Err(e) => e.diagnostics().to_vec(),
        };
        diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }

    #[test]
    fn a_gmail_domain_takes_the_published_records() {
        let p = problems(
            "domains:
  - {name: example.com, platform: g, mode: authoritative, dns: {provider: manual}}
",
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn every_mistake_is_named_at_its_place() {
        let p = problems(
            "cutover: {at: 'tomorrow', low_ttl: 0}
domains:
  - name: example.com
    platform: plain
    mode: authoritative
    dns: {provider: rfc2136, zone: example.org, tsig: {name: k, algorithm: md5, secret: {env: K}}, nameservers: ['ns1']}
    records:
      - {name: '@', type: MX, values: ['mx.new.example.net']}
      - {name: autodiscover, type: CNAME, values: ['a.example.net.']}
      - {name: autodiscover, type: TXT, values: ['x']}
  - {name: other.com, platform: plain, mode: authoritative, dns: {provider: manual}}
  - {name: third.com, platform: g, mode: authoritative, dns: {provider: ovh, tsig: {name: k, secret: {env: K}}}}
",
        );
        let has = |path: &str, text: &str| {
            assert!(
                p.iter().any(|l| l.starts_with(path) && l.contains(text)),
                "no `{text}` at {path} in {p:#?}"
            )
        };
        has("cutover.at:", "not an RFC 3339 time");
        has("cutover.low_ttl:", "TTL of 0");
        has("domains[0].dns:", "needs the `server`");
        has("domains[0].dns.zone:", "not in zone");
        has("domains[0].dns.tsig.algorithm:", "unknown TSIG algorithm");
        has("domains[0].dns.nameservers[0]:", "not `host:port`");
        has("domains[0].records[0].values[0]:", "not an MX record");
        has("domains[0].records[2]:", "a CNAME and other records");
        has(
            "domains[1]:",
            "knows no published records for a `imap` platform",
        );
    }

    #[test]
    fn an_ovh_zone_and_an_ovh_destination_without_records_are_accepted() {
        // The records come from the platform's DNS diagnosis when the cutover runs; an IMAP
        // destination in the same zone kind still needs its records listed.
        let text = "version: 1
providers:
  ovh: {type: ovh, endpoint: ovh-eu, application_key: {env: A}, application_secret: {env: B}, consumer_key: {env: C}}
platforms:
  pro: {type: ovh-email-pro, provider: ovh, service: emailpro-x}
  plain: {type: imap, imap: {host: new.example.net}}
domains:
  - {name: example.com, platform: pro, mode: authoritative, dns: {provider: ovh}}
  - {name: other.com, platform: plain, mode: authoritative, dns: {provider: ovh}}
";
        let diagnostics = match load_str(text, Format::Yaml, Path::new("p.yaml"), Path::new(".")) {
            Ok(l) => l.warnings,
            Err(e) => e.diagnostics().to_vec(),
        };
        let p: Vec<String> = diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        assert!(!p.iter().any(|l| l.starts_with("domains[0]")), "{p:?}");
        assert!(
            p.iter().any(|l| l.starts_with("domains[1]:")
                && l.contains("knows no published records for a `imap` platform")),
            "{p:?}"
        );
    }

    #[test]
    fn a_forced_cutover_is_said_loudly() {
        let p = problems(
            "domains:
  - {name: example.com, platform: g, mode: authoritative, dns: {provider: manual}, cutover: {at: '2026-12-05T22:00:00+01:00', force: true}}
",
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("domains[0].cutover.force:") && l.contains("forced")),
            "{p:?}"
        );
    }
}
