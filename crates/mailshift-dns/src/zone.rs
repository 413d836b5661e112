//! The two zones this crate offers: [`Rfc2136Zone`] (read from the primary, written by
//! TSIG-signed RFC 2136 UPDATEs) and [`ManualZone`] (read the same way, written by a person).

use hickory_proto::op::{Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType as WireType, TSigner};
use mailshift_core::dns::{RecordSet, RecordType, Zone, normalize_name};
use mailshift_core::error::{ErrorKind, StepError};
use mailshift_core::plane::PlaneResult;

use crate::query::{read_set, wire_error_text};
use crate::rdata::{from_text, name, wire_type};
use crate::wire::{Transport, exchange};
use crate::{Rfc2136Config, TsigKey};

/// Seconds the server may disagree with our clock (RFC 8945 recommends 300).
const FUDGE: u16 = 300;

/// A zone changed through RFC 2136 dynamic updates at its primary server.
pub struct Rfc2136Zone {
    config: Rfc2136Config,
    apex: String,
    /// The key's signer, or why the key cannot sign (reported by every call, the plan's
    /// validation having missed it).
    signer: Result<Option<TSigner>, String>,
}

impl Rfc2136Zone {
    pub fn new(config: Rfc2136Config) -> Self {
        let signer = match &config.tsig {
            None => Ok(None),
            Some(key) => signer(key).map(Some),
        };
        Rfc2136Zone {
            apex: normalize_name(&config.zone),
            config,
            signer,
        }
    }

    /// Compare and swap: makes the zone hold `desired` for its name and type (`None` or an
    /// empty set: no records) only if it still holds `expected` (`None`: no records), in one
    /// UPDATE whose prerequisite the server checks. A zone that holds something else is a
    /// `Conflict` and is left as it is; one that already holds `desired` is success. For a
    /// rollback that must not undo a change made by hand since the cutover.
    pub async fn replace_if(
        &self,
        name: &str,
        rtype: RecordType,
        expected: Option<&RecordSet>,
        desired: Option<&RecordSet>,
    ) -> Result<(), StepError> {
        check_in_zone(&self.apex, name)?;
        let expected = expected.filter(|s| !s.data.is_empty());
        let desired = desired.filter(|s| !s.data.is_empty());
        self.update(name, rtype, expected, desired).await
    }

    fn key(&self) -> Result<Option<(&TsigKey, &TSigner)>, StepError> {
        match &self.signer {
            Ok(signer) => Ok(self.config.tsig.as_ref().zip(signer.as_ref())),
            Err(e) => Err(StepError::config(format!("zone {}: {e}", self.apex))),
        }
    }

    /// The place an error happened, as people read it.
    fn at(&self) -> String {
        format!("zone {} at {}", self.apex, self.config.server)
    }

    async fn read_here(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Option<RecordSet>, StepError> {
        check_in_zone(&self.apex, name)?;
        let key = self.key()?;
        read_set(self.config.server, name, rtype, key, self.config.timeout)
            .await
            .map_err(|e| read_error(&self.apex, e))
    }

    /// Makes the zone hold `desired` (`None`: no records) for `name` and `rtype`, given that
    /// it held `current` when read. One UPDATE: the prerequisite that the RRset is still
    /// `current` (RFC 2136 §2.4.2/§2.4.3), then delete the RRset, then add each record.
    async fn update(
        &self,
        name_text: &str,
        rtype: RecordType,
        current: Option<&RecordSet>,
        desired: Option<&RecordSet>,
    ) -> Result<(), StepError> {
        let key = self.key()?;
        let owner = name(name_text).map_err(StepError::config)?;
        let zone = name(&self.apex).map_err(StepError::config)?;
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone_query = Query::query(zone, WireType::SOA);
        zone_query.set_query_class(DNSClass::IN);
        message.add_zone(zone_query);

        match current {
            // "RRset exists (value dependent)": exactly these records, TTL 0, zone class.
            Some(current) => {
                for data in &current.data {
                    let rdata = from_text(rtype, data).map_err(|e| self.data_error(e))?;
                    message.add_pre_requisite(Record::from_rdata(owner.clone(), 0, rdata));
                }
            }
            // "RRset does not exist": class NONE, no data.
            None => {
                let mut absent = Record::update0(owner.clone(), 0, wire_type(rtype));
                absent.dns_class = DNSClass::NONE;
                message.add_pre_requisite(absent);
            }
        }
        // "Delete an RRset": class ANY, no data; then the new records, with the desired TTL.
        let mut delete = Record::update0(owner.clone(), 0, wire_type(rtype));
        delete.dns_class = DNSClass::ANY;
        message.add_update(delete);
        if let Some(desired) = desired {
            for data in &desired.data {
                let rdata = from_text(rtype, data).map_err(|e| self.data_error(e))?;
                message.add_update(Record::from_rdata(owner.clone(), desired.ttl, rdata));
            }
        }

        let reply = exchange(
            self.config.server,
            message,
            key.map(|(_, s)| s),
            Transport::Tcp,
            self.config.timeout,
        )
        .await
        .map_err(|e| {
            let tsig = matches!(e, crate::wire::WireError::Tsig(_));
            let network = matches!(e, crate::wire::WireError::Network(_));
            let text = format!(
                "{}: updating {name_text} {rtype}: {}",
                self.at(),
                wire_error_text(self.config.server, key.map(|(k, _)| k), e)
            );
            if tsig {
                StepError::new(ErrorKind::Auth, text)
            } else if network {
                StepError::new(ErrorKind::Network, text)
            } else {
                StepError::bug(text)
            }
        })?;

        let what = format!("{}: updating {name_text} {rtype}", self.at());
        match reply.rcode() {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused => Err(StepError::new(
                ErrorKind::Auth,
                match key {
                    Some((k, _)) => format!(
                        "{what}: refused: the key `{}` is not allowed to update {name_text} \
                         {rtype}; grant it in the zone's configuration (BIND: `update-policy \
                         {{ grant {} zonesub ANY; }};` or `allow-update {{ key {}; }};`)",
                        k.name, k.name, k.name
                    ),
                    None => format!(
                        "{what}: refused: the server accepts updates only when signed; give \
                         the zone's `dns` block the TSIG key the server allows to update it"
                    ),
                },
            )),
            ResponseCode::NotAuth => Err(StepError::config(format!(
                "{what}: the server is not authoritative for {} (NOTAUTH): `server` must be \
                 the zone's primary, the one that accepts updates",
                self.apex
            ))),
            ResponseCode::NotZone => Err(StepError::config(format!(
                "{what}: {name_text} is not inside zone {} as the server holds it (NOTZONE)",
                self.apex
            ))),
            ResponseCode::NotImp | ResponseCode::FormErr => Err(StepError::config(format!(
                "{what}: the server does not accept dynamic updates (RFC 2136) for this zone \
                 ({}); enable them there, or use `provider: manual`",
                reply.rcode()
            ))),
            ResponseCode::YXRRSet | ResponseCode::NXRRSet | ResponseCode::YXDomain => {
                // The zone changed between our read and our write: someone else wrote, or an
                // earlier attempt of ours went through unanswered. Only the second is fine.
                let now = self.read_here(name_text, rtype).await?;
                if now.as_ref() == desired {
                    Ok(())
                } else {
                    Err(StepError::new(
                        ErrorKind::Conflict,
                        format!(
                            "{what}: the records changed while mailshift wrote them (now {}); \
                             nothing was overwritten: look at who else changes this zone, \
                             then run again",
                            show(now.as_ref())
                        ),
                    ))
                }
            }
            ResponseCode::ServFail => Err(StepError::new(
                ErrorKind::Network,
                format!("{what}: the server failed (SERVFAIL); see its log"),
            )),
            other => Err(StepError::new(
                ErrorKind::Refused,
                format!("{what}: the server answered {other}"),
            )),
        }
    }

    fn data_error(&self, e: String) -> StepError {
        StepError::config(format!("zone {}: {e}", self.apex))
    }
}

impl Zone for Rfc2136Zone {
    fn apex(&self) -> &str {
        &self.apex
    }

    fn read<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Option<RecordSet>> {
        Box::pin(self.read_here(name, rtype))
    }

    fn write<'a>(&'a self, set: &'a RecordSet) -> PlaneResult<'a, ()> {
        Box::pin(async move {
            let current = self.read_here(&set.name, set.rtype).await?;
            if set.data.is_empty() {
                if current.is_none() {
                    return Ok(());
                }
                return self
                    .update(&set.name, set.rtype, current.as_ref(), None)
                    .await;
            }
            // Exactly what the zone holds, TTL included: nothing to send, so the zone's serial
            // does not move and the secondaries have nothing to transfer.
            if current.as_ref() == Some(set) {
                return Ok(());
            }
            self.update(&set.name, set.rtype, current.as_ref(), Some(set))
                .await
        })
    }

    fn remove<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, ()> {
        Box::pin(async move {
            let current = self.read_here(name, rtype).await?;
            if current.is_none() {
                return Ok(());
            }
            self.update(name, rtype, current.as_ref(), None).await
        })
    }
}

/// A zone a person changes: read like [`Rfc2136Zone`] (from `server`), never written.
pub struct ManualZone {
    reader: Rfc2136Zone,
}

impl ManualZone {
    pub fn new(config: Rfc2136Config) -> Self {
        ManualZone {
            reader: Rfc2136Zone::new(config),
        }
    }

    fn refuse(&self, change: String) -> StepError {
        StepError::config(format!(
            "zone {} is changed by hand (`provider: manual`): mailshift does not write it; \
             {change} in the zone, and the step goes on once the zone's name servers answer \
             it",
            self.reader.apex
        ))
    }
}

impl Zone for ManualZone {
    fn apex(&self) -> &str {
        &self.reader.apex
    }

    fn read<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Option<RecordSet>> {
        self.reader.read(name, rtype)
    }

    fn write<'a>(&'a self, set: &'a RecordSet) -> PlaneResult<'a, ()> {
        Box::pin(async move { Err(self.refuse(format!("set {}", show(Some(set))))) })
    }

    fn remove<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, ()> {
        Box::pin(async move { Err(self.refuse(format!("remove every {rtype} record of {name}"))) })
    }

    fn writable(&self) -> bool {
        false
    }
}

/// `example.com MX 3600 10 mx1.example.net, 20 mx2.example.net`, or `no records`.
fn show(set: Option<&RecordSet>) -> String {
    match set {
        None => "no records".into(),
        Some(s) => format!("{} {} {} {}", s.name, s.rtype, s.ttl, s.data.join(", ")),
    }
}

fn signer(key: &TsigKey) -> Result<TSigner, String> {
    key.validate()?;
    let algorithm = TsigAlgorithm::from_name(
        Name::from_ascii(key.algorithm.to_ascii_lowercase()).map_err(|e| e.to_string())?,
    );
    let key_name = name(&key.name)?;
    TSigner::new(key.secret.clone(), algorithm, key_name, FUDGE)
        .map_err(|e| format!("TSIG key `{}`: {e}", key.name))
}

fn check_in_zone(apex: &str, name: &str) -> Result<(), StepError> {
    let name = normalize_name(name);
    if name == apex || name.ends_with(&format!(".{apex}")) {
        Ok(())
    } else {
        Err(StepError::config(format!(
            "{name} is not inside zone {apex}: a record of another zone needs that zone's own \
             `dns` block"
        )))
    }
}

fn read_error(apex: &str, e: String) -> StepError {
    let kind = if e.contains("TSIG") {
        ErrorKind::Auth
    } else {
        ErrorKind::Network
    };
    StepError::new(kind, format!("zone {apex}: reading: {e}"))
}
