//! The server side of NTLM over HTTP ([MS-NLMP], [MS-NTHT]) as Exchange's IIS runs it, for a
//! simulator started NTLM-only: a challenge per TCP connection, the client's NTLMv2 proof
//! checked against the mailbox's password (the same NTOWFv2 the client computes), the
//! connection authenticated from then on. A challenge is used once: an AUTHENTICATE message
//! without a pending challenge on its connection (replayed, or sent on another connection)
//! is refused. Written apart from the client's module on purpose: a shared mistake would
//! otherwise pass unseen.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use tokio::net::TcpListener;

/// One accepted TCP connection: a number unique for the process, and the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub id: u64,
    pub peer: SocketAddr,
    /// Over TLS (channel bindings apply).
    pub tls: bool,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl ConnId {
    pub fn new(peer: SocketAddr, tls: bool) -> ConnId {
        ConnId {
            id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            peer,
            tls,
        }
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for ConnId {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        ConnId::new(*stream.remote_addr(), false)
    }
}

/// A successful NTLM login: which connection, from where, as which mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub connection: u64,
    pub peer: SocketAddr,
    pub mailbox: String,
}

/// What the simulator knows of NTLM on its connections.
#[derive(Default)]
pub struct Server {
    /// When true, only NTLM is accepted (401 `WWW-Authenticate: NTLM`, Basic refused).
    pub required: bool,
    /// The challenge sent on a connection and not answered yet: (server challenge, target
    /// info).
    pending: HashMap<u64, [u8; 8]>,
    /// Connections that completed the handshake, and as whom.
    authenticated: HashMap<u64, String>,
    pub logins: Vec<Login>,
    /// Every refusal, with why (for tests to read; never a password).
    pub refusals: Vec<String>,
    /// The next challenges close their connection (`Connection: close`): a client must
    /// start the handshake again on a new one.
    pub close_after_challenge: usize,
    /// Challenges sent.
    pub challenges: usize,
    /// The channel bindings of this server's TLS connections, when it speaks TLS.
    pub bindings: Option<[u8; 16]>,
    /// Refuse NTLM over TLS without the right channel bindings (Extended Protection).
    pub require_bindings: bool,
}

/// What to answer a request on an NTLM-only simulator.
pub enum Outcome {
    /// Authenticated as this mailbox address.
    Principal(String),
    /// 401 with this CHALLENGE_MESSAGE, closing the connection when true.
    Challenge(Vec<u8>, bool),
    /// 401 with a bare `WWW-Authenticate: NTLM`.
    Refused,
}

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// The flags the simulator answers with: Unicode, NTLM, always-sign, extended session
/// security, target info, 128- and 56-bit.
const FLAGS: u32 =
    0x0000_0001 | 0x0000_0200 | 0x0000_8000 | 0x0008_0000 | 0x0080_0000 | 0x2000_0000 | 0x8000_0000;

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn from_utf16(bytes: &[u8]) -> Option<String> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let Ok(mut mac) = <Hmac<Md5> as KeyInit>::new_from_slice(key) else {
        return [0; 16];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn field(b: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16_at(b, at)?);
    let offset = usize::try_from(u32_at(b, at + 4)?).ok()?;
    b.get(offset..offset.checked_add(len)?)
}

/// The target info the simulator sends: NetBIOS computer and domain names, and a timestamp
/// (so that clients take the path Windows servers make them take: no LM response).
fn target_info() -> Vec<u8> {
    let mut out = Vec::new();
    for (id, value) in [(1u16, utf16("EWSSIM")), (2, utf16("EWSSIM"))] {
        out.extend(id.to_le_bytes());
        out.extend(u16::try_from(value.len()).unwrap_or(0).to_le_bytes());
        out.extend(value);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let filetime = (now.as_secs() + 11_644_473_600) * 10_000_000;
    out.extend(7u16.to_le_bytes());
    out.extend(8u16.to_le_bytes());
    out.extend(filetime.to_le_bytes());
    out.extend([0, 0, 0, 0]);
    out
}

impl Server {
    /// Forgets every authenticated connection (a front end that lost track of them): the
    /// next request on each must authenticate again.
    pub fn forget_connections(&mut self) {
        self.authenticated.clear();
    }

    /// Whether this connection completed a handshake, and as whom.
    pub fn principal(&self, conn: &ConnId) -> Option<&String> {
        self.authenticated.get(&conn.id)
    }

    /// Handles an `Authorization: NTLM <token>` (decoded) on `conn`; `password_of` gives a
    /// mailbox's (address, password) from the user and domain the client sent.
    pub fn step(
        &mut self,
        conn: &ConnId,
        token: &[u8],
        password_of: impl Fn(&str, &str) -> Option<(String, String)>,
    ) -> Outcome {
        if token.get(..8) != Some(SIGNATURE) {
            self.refusals
                .push(format!("connection {}: not an NTLM message", conn.id));
            return Outcome::Refused;
        }
        match u32_at(token, 8) {
            Some(1) => {
                // A new handshake forgets what the connection was.
                self.authenticated.remove(&conn.id);
                let challenge = RandomState::new()
                    .hash_one((conn.id, std::time::SystemTime::now()))
                    .to_le_bytes();
                self.pending.insert(conn.id, challenge);
                self.challenges += 1;
                let close = self.close_after_challenge > 0;
                if close {
                    self.close_after_challenge -= 1;
                    // The connection ends with this answer: its challenge cannot be used.
                    self.pending.remove(&conn.id);
                }
                Outcome::Challenge(challenge_message(challenge), close)
            }
            Some(3) => {
                let Some(challenge) = self.pending.remove(&conn.id) else {
                    self.refusals.push(format!(
                        "connection {}: AUTHENTICATE without a pending challenge on this connection",
                        conn.id
                    ));
                    return Outcome::Refused;
                };
                let bindings = if conn.tls { self.bindings } else { None };
                match verify(token, challenge, password_of).and_then(|m| {
                    check_bindings(token, bindings, self.require_bindings).map(|()| m)
                }) {
                    Ok(mailbox) => {
                        self.authenticated.insert(conn.id, mailbox.clone());
                        self.logins.push(Login {
                            connection: conn.id,
                            peer: conn.peer,
                            mailbox: mailbox.clone(),
                        });
                        Outcome::Principal(mailbox)
                    }
                    Err(why) => {
                        self.refusals.push(format!("connection {}: {why}", conn.id));
                        Outcome::Refused
                    }
                }
            }
            _ => {
                self.refusals.push(format!(
                    "connection {}: unexpected NTLM message type",
                    conn.id
                ));
                Outcome::Refused
            }
        }
    }
}

fn challenge_message(challenge: [u8; 8]) -> Vec<u8> {
    let info = target_info();
    let name = utf16("EWSSIM");
    let header = 56u32;
    let mut out = Vec::new();
    out.extend_from_slice(SIGNATURE);
    out.extend(2u32.to_le_bytes());
    let name_len = u16::try_from(name.len()).unwrap_or(0);
    out.extend(name_len.to_le_bytes());
    out.extend(name_len.to_le_bytes());
    out.extend(header.to_le_bytes());
    out.extend(FLAGS.to_le_bytes());
    out.extend(challenge);
    out.extend([0; 8]);
    let info_len = u16::try_from(info.len()).unwrap_or(0);
    out.extend(info_len.to_le_bytes());
    out.extend(info_len.to_le_bytes());
    out.extend((header + u32::from(name_len)).to_le_bytes());
    // Version (only meaningful with NTLMSSP_NEGOTIATE_VERSION, which is not set): zeros.
    out.extend([0; 8]);
    out.extend(name);
    out.extend(info);
    out
}

/// RFC 5929's `tls-server-end-point` hash of a certificate (its signature's hash; SHA-256
/// for MD5, SHA-1 or anything not recognised), then the MD5 of the RFC 2744 structure with
/// only application data, as [MS-NLMP] §2.2.2.1 has MsvAvChannelBindings.
pub fn channel_bindings(cert: &[u8]) -> [u8; 16] {
    use sha2::{Sha256, Sha384, Sha512};
    let hash = match signature_oid(cert) {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        Some([.., 0x01, 0x01, 0x0c]) | Some([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]) => {
            Sha384::digest(cert).to_vec()
        }
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        Some([.., 0x01, 0x01, 0x0d]) | Some([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]) => {
            Sha512::digest(cert).to_vec()
        }
        _ => Sha256::digest(cert).to_vec(),
    };
    let mut data = b"tls-server-end-point:".to_vec();
    data.extend(hash);
    let mut gss = vec![0u8; 16];
    gss.extend(u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
    gss.extend(data);
    Md5::digest(&gss).into()
}

/// The signatureAlgorithm OID of a DER certificate (the element after tbsCertificate).
fn signature_oid(cert: &[u8]) -> Option<&[u8]> {
    fn element(b: &[u8], at: usize) -> Option<(u8, usize, usize)> {
        let tag = *b.get(at)?;
        let first = *b.get(at + 1)?;
        let (len, start) = if first < 0x80 {
            (usize::from(first), at + 2)
        } else {
            let n = usize::from(first & 0x7f);
            let mut len = 0usize;
            for i in 0..n.min(4) {
                len = (len << 8) | usize::from(*b.get(at + 2 + i)?);
            }
            (len, at + 2 + n)
        };
        Some((tag, start, start.checked_add(len)?))
    }
    let (_, body, _) = element(cert, 0)?;
    let (_, _, after_tbs) = element(cert, body)?;
    let (_, algorithm, _) = element(cert, after_tbs)?;
    let (tag, start, end) = element(cert, algorithm)?;
    (tag == 0x06).then(|| cert.get(start..end)).flatten()
}

/// The MsvAvChannelBindings of an AUTHENTICATE_MESSAGE's NTLMv2 response, checked against
/// the connection's: a wrong one is refused always, a missing one when required.
fn check_bindings(token: &[u8], expected: Option<[u8; 16]>, required: bool) -> Result<(), String> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let nt = field(token, 20).unwrap_or_default();
    let pairs = nt.get(16 + 28..).unwrap_or_default();
    let mut at = 0;
    let mut sent = None;
    while let (Some(id), Some(len)) = (u16_at(pairs, at), u16_at(pairs, at + 2)) {
        let end = at + 4 + usize::from(len);
        if id == 0 || end > pairs.len() {
            break;
        }
        if id == 10 {
            sent = pairs.get(at + 4..end);
        }
        at = end;
    }
    match sent {
        Some(b) if b == expected => Ok(()),
        Some(_) => Err("the channel bindings do not match this TLS connection".into()),
        None if required => Err("no channel bindings (Extended Protection requires them)".into()),
        None => Ok(()),
    }
}

/// Checks an AUTHENTICATE_MESSAGE's NTLMv2 proof; the mailbox address on success.
fn verify(
    token: &[u8],
    challenge: [u8; 8],
    password_of: impl Fn(&str, &str) -> Option<(String, String)>,
) -> Result<String, String> {
    let nt = field(token, 20).ok_or("the NT response points outside the message")?;
    let domain = field(token, 28)
        .and_then(from_utf16)
        .ok_or("unreadable domain")?;
    let user = field(token, 36)
        .and_then(from_utf16)
        .ok_or("unreadable user")?;
    let flags = u32_at(token, 60).ok_or("no flags")?;
    if flags & 1 == 0 {
        return Err("the client did not use Unicode".into());
    }
    // 16 bytes of proof, then at least the fixed 28 bytes of NTLMv2_CLIENT_CHALLENGE: shorter
    // is an NTLMv1 response, which this server refuses as Exchange set to NTLMv2 only does.
    if nt.len() < 16 + 28 || nt[16] != 1 || nt[17] != 1 {
        return Err(format!(
            "{user:?}: not an NTLMv2 response (LM and NTLMv1 are refused)"
        ));
    }
    let (address, password) =
        password_of(&user, &domain).ok_or_else(|| format!("no mailbox for {domain}\\{user}"))?;
    let hash: [u8; 16] = Md4::digest(utf16(&password)).into();
    let key = hmac_md5(
        &hash,
        &[&utf16(&format!("{}{domain}", user.to_uppercase()))],
    );
    let proof = hmac_md5(&key, &[&challenge, &nt[16..]]);
    if proof[..] != nt[..16] {
        return Err(format!(
            "{user:?}: wrong password (the NTLMv2 proof does not match)"
        ));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: u64) -> ConnId {
        ConnId {
            id,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            tls: false,
        }
    }

    /// The AUTHENTICATE_MESSAGE a client computes for `challenge` (§3.3.2), built here
    /// independently of mailshift's client.
    fn authenticate(challenge: &[u8], user: &str, domain: &str, password: &str) -> Vec<u8> {
        let server_challenge = &challenge[24..32];
        let info = field(challenge, 40).unwrap();
        let hash: [u8; 16] = Md4::digest(utf16(password)).into();
        let key = hmac_md5(
            &hash,
            &[&utf16(&format!("{}{domain}", user.to_uppercase()))],
        );
        let mut temp = vec![1, 1, 0, 0, 0, 0, 0, 0];
        temp.extend(0u64.to_le_bytes());
        temp.extend([7; 8]);
        temp.extend([0; 4]);
        temp.extend(info);
        temp.extend([0; 4]);
        let mut nt = hmac_md5(&key, &[server_challenge, &temp]).to_vec();
        nt.extend(temp);
        let fields = [
            vec![0u8; 24],
            nt,
            utf16(domain),
            utf16(user),
            Vec::new(),
            Vec::new(),
        ];
        let mut out = SIGNATURE.to_vec();
        out.extend(3u32.to_le_bytes());
        let mut at = 64u32;
        for f in &fields {
            let len = u16::try_from(f.len()).unwrap();
            out.extend(len.to_le_bytes());
            out.extend(len.to_le_bytes());
            out.extend(at.to_le_bytes());
            at += u32::from(len);
        }
        out.extend(FLAGS.to_le_bytes());
        for f in &fields {
            out.extend(f);
        }
        out
    }

    fn accounts(user: &str, domain: &str) -> Option<(String, String)> {
        let known = (domain.is_empty() && user == "jane@example.com")
            || (domain == "EXAMPLE" && user == "jane");
        known.then(|| ("jane@example.com".to_owned(), "pw".to_owned()))
    }

    fn challenge_on(server: &mut Server, c: &ConnId) -> Vec<u8> {
        let mut negotiate = SIGNATURE.to_vec();
        negotiate.extend(1u32.to_le_bytes());
        negotiate.extend([0; 20]);
        match server.step(c, &negotiate, accounts) {
            Outcome::Challenge(message, false) => message,
            _ => panic!("no challenge"),
        }
    }

    #[test]
    fn the_proof_is_checked_once_per_challenge_and_connection() {
        let mut server = Server::default();
        let (a, b) = (conn(1), conn(2));
        for (user, domain) in [("jane@example.com", ""), ("jane", "EXAMPLE")] {
            let challenge = challenge_on(&mut server, &a);
            let token = authenticate(&challenge, user, domain, "pw");
            assert!(matches!(
                server.step(&a, &token, accounts),
                Outcome::Principal(ref m) if m == "jane@example.com"
            ));
            assert_eq!(
                server.principal(&a).map(String::as_str),
                Some("jane@example.com")
            );
            // Replayed: the challenge was used.
            assert!(matches!(
                server.step(&a, &token, accounts),
                Outcome::Refused
            ));
        }
        // Answering a challenge on another connection than the one it was sent on.
        let challenge = challenge_on(&mut server, &a);
        let token = authenticate(&challenge, "jane@example.com", "", "pw");
        assert!(matches!(
            server.step(&b, &token, accounts),
            Outcome::Refused
        ));
        assert!(server.principal(&b).is_none());
        // A wrong password, and an unknown user.
        let challenge = challenge_on(&mut server, &b);
        let token = authenticate(&challenge, "jane@example.com", "", "nope");
        assert!(matches!(
            server.step(&b, &token, accounts),
            Outcome::Refused
        ));
        let challenge = challenge_on(&mut server, &b);
        let token = authenticate(&challenge, "joe", "EXAMPLE", "pw");
        assert!(matches!(
            server.step(&b, &token, accounts),
            Outcome::Refused
        ));
        assert_eq!(server.logins.len(), 2);
        let refusals = server.refusals.join("\n");
        assert!(
            refusals.contains("without a pending challenge"),
            "{refusals}"
        );
        assert!(refusals.contains("wrong password"), "{refusals}");
        assert!(
            refusals.contains("no mailbox for EXAMPLE\\joe"),
            "{refusals}"
        );
        assert!(!refusals.contains("nope"), "{refusals}");
    }

    #[test]
    fn channel_bindings_are_checked_on_tls_connections() {
        let mut server = Server {
            bindings: Some([5; 16]),
            ..Server::default()
        };
        let tls = ConnId {
            tls: true,
            ..conn(4)
        };
        // Not sent, not required: accepted (servers without Extended Protection).
        let challenge = challenge_on(&mut server, &tls);
        let token = authenticate(&challenge, "jane@example.com", "", "pw");
        assert!(matches!(
            server.step(&tls, &token, accounts),
            Outcome::Principal(_)
        ));
        server.require_bindings = true;
        let challenge = challenge_on(&mut server, &tls);
        let token = authenticate(&challenge, "jane@example.com", "", "pw");
        assert!(matches!(
            server.step(&tls, &token, accounts),
            Outcome::Refused
        ));
        assert!(server.refusals[0].contains("no channel bindings"));
        // Sent but for another channel: the AV pair before the end of the list.
        let mut challenge = challenge_on(&mut server, &tls);
        let info_at = usize::try_from(u32_at(&challenge, 44).unwrap()).unwrap();
        let info_len = usize::from(u16_at(&challenge, 40).unwrap());
        let mut info = challenge[info_at..info_at + info_len - 4].to_vec();
        info.extend([10, 0, 16, 0]);
        info.extend([6; 16]);
        info.extend([0; 4]);
        challenge.truncate(info_at);
        let len = u16::try_from(info.len()).unwrap();
        challenge[40..42].copy_from_slice(&len.to_le_bytes());
        challenge[42..44].copy_from_slice(&len.to_le_bytes());
        challenge.extend(info);
        let token = authenticate(&challenge, "jane@example.com", "", "pw");
        assert!(matches!(
            server.step(&tls, &token, accounts),
            Outcome::Refused
        ));
        assert!(
            server.refusals[1].contains("do not match"),
            "{:?}",
            server.refusals
        );
    }

    #[test]
    fn an_ntlmv1_response_is_refused() {
        let mut server = Server::default();
        let c = conn(3);
        let challenge = challenge_on(&mut server, &c);
        let mut token = authenticate(&challenge, "jane@example.com", "", "pw");
        // NtChallengeResponseFields: 24 bytes, the NTLMv1 size.
        token[20..22].copy_from_slice(&24u16.to_le_bytes());
        assert!(matches!(
            server.step(&c, &token, accounts),
            Outcome::Refused
        ));
        assert!(server.refusals[0].contains("not an NTLMv2 response"));
    }
}
