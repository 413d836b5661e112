//! NTLMv2 authentication messages for EWS over HTTP, built from the published specification
//! ([MS-NLMP]: the NEGOTIATE, CHALLENGE and AUTHENTICATE messages of §2.2.1, the NTLMv2
//! response of §3.3.2) as [MS-NTHT] carries them (`Authorization: NTLM <base64>`). Only
//! NTLMv2: LM and NTLMv1 responses are never computed (the LmChallengeResponse is the LMv2
//! one, or zeros when the server sends a timestamp, as §3.1.5.1.2 asks).
//!
//! Over HTTPS the response carries channel bindings (`MsvAvChannelBindings`, §2.2.2.1: the
//! MD5 of an RFC 2744 `gss_channel_bindings_struct` whose application data is RFC 5929's
//! `tls-server-end-point`), which an Exchange with Extended Protection (the default from
//! Exchange 2019 CU14) requires, and which servers without it ignore.
//!
//! What is left out, and why: no key exchange (`NTLMSSP_NEGOTIATE_KEY_EXCH`) and no MIC (a
//! SHOULD of §3.1.5.1.2): HTTP uses NTLM to authenticate the connection only, never to sign
//! or seal, so the session key serves nothing here.
//! MD4 and HMAC-MD5 come from RustCrypto's `md4`, `md-5` and `hmac` (the `digest` 0.11 family
//! already in the tree).

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;

/// Flags (§2.2.2.5) this client asks for: Unicode strings, the NTLM family (NTLMv2 is what
/// the response is, whatever the flags say), extended session security, the server's target
/// information (the AV pairs the NTLMv2 response must echo), 128- and 56-bit.
pub const UNICODE: u32 = 0x0000_0001;
pub const REQUEST_TARGET: u32 = 0x0000_0004;
pub const NTLM: u32 = 0x0000_0200;
pub const ALWAYS_SIGN: u32 = 0x0000_8000;
pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
pub const TARGET_INFO: u32 = 0x0080_0000;
pub const VERSION: u32 = 0x0200_0000;
pub const N128: u32 = 0x2000_0000;
pub const KEY_EXCH: u32 = 0x4000_0000;
pub const N56: u32 = 0x8000_0000;

const CLIENT_FLAGS: u32 =
    UNICODE | REQUEST_TARGET | NTLM | ALWAYS_SIGN | EXTENDED_SESSIONSECURITY | N128 | N56;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// AV pair ids (§2.2.2.1) the client reads.
const AV_EOL: u16 = 0;
const AV_TIMESTAMP: u16 = 7;
const AV_CHANNEL_BINDINGS: u16 = 10;

/// Who logs in: `DOMAIN\user`, or a UPN (`user@domain`) with an empty domain, which
/// Windows resolves itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub domain: String,
}

impl Identity {
    pub fn parse(login: &str) -> Identity {
        match login.split_once('\\') {
            Some((domain, user)) => Identity {
                user: user.to_owned(),
                domain: domain.to_owned(),
            },
            None => Identity {
                user: login.to_owned(),
                domain: String::new(),
            },
        }
    }
}

/// What the client needs from a CHALLENGE_MESSAGE (§2.2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    /// The AV pairs as sent (echoed in the NTLMv2 response).
    pub target_info: Vec<u8>,
    /// MsvAvTimestamp, when the server sent one.
    pub timestamp: Option<u64>,
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // A 16-byte key always fits HMAC: new_from_slice accepts any length.
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2 (§3.3.2): HMAC_MD5(MD4(UNICODE(password)), UNICODE(Uppercase(user) || domain)).
/// Also ResponseKeyNT and ResponseKeyLM.
pub fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let hash: [u8; 16] = Md4::digest(utf16(password)).into();
    let who = format!("{}{domain}", user.to_uppercase());
    hmac_md5(&hash, &[&utf16(&who)])
}

/// The NEGOTIATE_MESSAGE (§2.2.1.1): flags only, no domain or workstation supplied.
pub fn negotiate() -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    // DomainNameFields and WorkstationFields: empty, offset at the end of the header.
    for _ in 0..2 {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&32u32.to_le_bytes());
    }
    out
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A field's (length, offset) pair (§2.2.1: Len, MaxLen, BufferOffset) and its bytes.
fn field(b: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16_at(b, at)?);
    let offset = usize::try_from(u32_at(b, at + 4)?).ok()?;
    if len == 0 {
        return Some(&[]);
    }
    b.get(offset..offset.checked_add(len)?)
}

impl Challenge {
    /// Reads a CHALLENGE_MESSAGE; None when it is not one (wrong signature, type, or a field
    /// pointing outside it).
    pub fn parse(b: &[u8]) -> Option<Challenge> {
        if b.get(..8)? != SIGNATURE || u32_at(b, 8)? != 2 {
            return None;
        }
        let flags = u32_at(b, 20)?;
        let server_challenge: [u8; 8] = b.get(24..32)?.try_into().ok()?;
        let target_info = if b.len() >= 48 {
            field(b, 40)?.to_vec()
        } else {
            Vec::new()
        };
        let mut timestamp = None;
        let mut at = 0;
        while let (Some(id), Some(len)) = (u16_at(&target_info, at), u16_at(&target_info, at + 2)) {
            let value = target_info.get(at + 4..at + 4 + usize::from(len))?;
            if id == AV_EOL {
                break;
            }
            if id == AV_TIMESTAMP && value.len() == 8 {
                timestamp = Some(u64::from_le_bytes(value.try_into().ok()?));
            }
            at += 4 + usize::from(len);
        }
        Some(Challenge {
            flags,
            server_challenge,
            target_info,
            timestamp,
        })
    }
}

/// The pieces of an NTLMv2 answer (§3.3.2), apart so that tests can check each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responses {
    pub nt_proof: [u8; 16],
    /// NTProofStr followed by the client challenge structure (`temp`).
    pub nt: Vec<u8>,
    pub lm: Vec<u8>,
    pub session_base_key: [u8; 16],
}

/// ComputeResponse for NTLMv2 (§3.3.2). `time` is FILETIME (100 ns since 1601) and is the
/// server's MsvAvTimestamp when it sent one.
pub fn responses(
    key: &[u8; 16],
    challenge: &Challenge,
    client_challenge: [u8; 8],
    time: u64,
) -> Responses {
    let mut temp = Vec::with_capacity(28 + challenge.target_info.len() + 4);
    temp.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    temp.extend_from_slice(&time.to_le_bytes());
    temp.extend_from_slice(&client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(&challenge.target_info);
    temp.extend_from_slice(&[0; 4]);
    let nt_proof = hmac_md5(key, &[&challenge.server_challenge, &temp]);
    let mut nt = nt_proof.to_vec();
    nt.extend_from_slice(&temp);
    // With a server timestamp the client sends no LM response (zeros), §3.1.5.1.2.
    let lm = if challenge.timestamp.is_some() {
        vec![0; 24]
    } else {
        let mut lm = hmac_md5(key, &[&challenge.server_challenge, &client_challenge]).to_vec();
        lm.extend_from_slice(&client_challenge);
        lm
    };
    Responses {
        nt_proof,
        nt,
        lm,
        session_base_key: hmac_md5(key, &[&nt_proof]),
    }
}

/// The AUTHENTICATE_MESSAGE (§2.2.1.3) with these responses: no Version, no MIC, no
/// encrypted session key; strings in UTF-16 (Unicode is the only form this client offers).
pub fn authenticate_message(
    challenge: &Challenge,
    who: &Identity,
    workstation: &str,
    r: &Responses,
) -> Vec<u8> {
    let flags = challenge.flags & (CLIENT_FLAGS | TARGET_INFO) | UNICODE | NTLM;
    let domain = utf16(&who.domain);
    let user = utf16(&who.user);
    let host = utf16(workstation);
    let header = 64usize;
    // Payload order as in the specification's example: domain, user, workstation, LM, NT.
    let payload: [&[u8]; 6] = [&r.lm, &r.nt, &domain, &user, &host, &[]];
    let order = [2usize, 3, 4, 0, 1, 5];
    let mut offsets = [0usize; 6];
    let mut at = header;
    for i in order {
        offsets[i] = at;
        at += payload[i].len();
    }
    let mut out = Vec::with_capacity(at);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&3u32.to_le_bytes());
    for (bytes, offset) in payload.iter().zip(offsets) {
        // Lengths fit u16: names and target info are far below 64 KiB (the server's AV pairs
        // are themselves counted in a u16).
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&u32::try_from(offset).unwrap_or(0).to_le_bytes());
    }
    out.extend_from_slice(&flags.to_le_bytes());
    for i in order {
        out.extend_from_slice(payload[i]);
    }
    out
}

/// Now as FILETIME (100 ns ticks since 1601-01-01 UTC).
pub fn filetime_now() -> u64 {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (since_unix.as_secs() + 11_644_473_600) * 10_000_000
        + u64::from(since_unix.subsec_nanos() / 100)
}

/// The hash RFC 5929's `tls-server-end-point` takes of a certificate: its signature's hash,
/// SHA-256 when that is MD5 or SHA-1 (or unknown). Read from the certificate's
/// signatureAlgorithm (DER: SEQUENCE { tbsCertificate, signatureAlgorithm, signature }).
pub fn server_end_point(cert_der: &[u8]) -> Vec<u8> {
    use sha2::{Sha256, Sha384, Sha512};
    // OIDs (DER contents) of the RSA and ECDSA signatures with SHA-384 and SHA-512.
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    let oid = signature_oid(cert_der).unwrap_or_default();
    if SHA384.contains(&oid) {
        Sha384::digest(cert_der).to_vec()
    } else if SHA512.contains(&oid) {
        Sha512::digest(cert_der).to_vec()
    } else {
        Sha256::digest(cert_der).to_vec()
    }
}

/// One DER element at `at`: (tag, contents range, end).
fn der(b: &[u8], at: usize) -> Option<(u8, std::ops::Range<usize>, usize)> {
    let tag = *b.get(at)?;
    let first = *b.get(at + 1)?;
    let (len, start) = if first < 0x80 {
        (usize::from(first), at + 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(at + 2 + i)?);
        }
        (len, at + 2 + n)
    };
    let end = start.checked_add(len)?;
    (end <= b.len()).then_some((tag, start..end, end))
}

fn signature_oid(cert: &[u8]) -> Option<&[u8]> {
    let (_, outer, _) = der(cert, 0)?;
    let (_, _, after_tbs) = der(cert, outer.start)?;
    let (_, algorithm, _) = der(cert, after_tbs)?;
    let (tag, oid, _) = der(cert, algorithm.start)?;
    (tag == 0x06).then(|| &cert[oid])
}

/// `MsvAvChannelBindings` for a TLS connection to a server with this certificate: the MD5 of
/// a `gss_channel_bindings_struct` with no addresses and `tls-server-end-point:HASH` as its
/// application data (each field a little-endian length, or type, then bytes).
pub fn channel_bindings(cert_der: &[u8]) -> [u8; 16] {
    let mut data = b"tls-server-end-point:".to_vec();
    data.extend(server_end_point(cert_der));
    let mut gss = vec![0u8; 16];
    gss.extend(u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
    gss.extend(data);
    Md5::digest(&gss).into()
}

/// The server's AV pairs with channel bindings added before the end-of-list pair.
fn with_bindings(target_info: &[u8], bindings: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target_info.len() + 20);
    let mut at = 0;
    while let (Some(id), Some(len)) = (u16_at(target_info, at), u16_at(target_info, at + 2)) {
        let end = at + 4 + usize::from(len);
        if id == AV_EOL || end > target_info.len() {
            break;
        }
        if id != AV_CHANNEL_BINDINGS {
            out.extend_from_slice(&target_info[at..end]);
        }
        at = end;
    }
    out.extend(AV_CHANNEL_BINDINGS.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(bindings);
    out.extend([0, 0, 0, 0]);
    out
}

/// The AUTHENTICATE_MESSAGE answering `challenge` (base64 of a CHALLENGE_MESSAGE's bytes
/// decoded by the caller) for `login` / `password`, with a fresh random client challenge,
/// bound to the TLS channel when `bindings` is given (see [`channel_bindings`]).
pub fn answer(
    challenge: &Challenge,
    login: &str,
    password: &str,
    bindings: Option<&[u8; 16]>,
) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let who = Identity::parse(login);
    let key = ntowf_v2(password, &who.user, &who.domain);
    let mut client_challenge = [0u8; 8];
    if ring::rand::SystemRandom::new()
        .fill(&mut client_challenge)
        .is_err()
    {
        // The OS random source failing is not recoverable; a fixed challenge would still
        // authenticate but weakens it, so mix in the clock instead of giving up.
        client_challenge = filetime_now().to_le_bytes();
    }
    let time = challenge.timestamp.unwrap_or_else(filetime_now);
    let bound;
    let challenge = match bindings {
        Some(b) => {
            bound = Challenge {
                target_info: with_bindings(&challenge.target_info, b),
                ..challenge.clone()
            };
            &bound
        }
        None => challenge,
    };
    let r = responses(&key, challenge, client_challenge, time);
    authenticate_message(challenge, &who, "", &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn md4_matches_rfc_1320() {
        // RFC 1320 §A.5's test suite.
        let cases = [
            ("", "31d6cfe0d16ae931b73c59d7e0c089c0"),
            ("a", "bde52cb31de33e46245e05fbdbd6fb24"),
            ("abc", "a448017aaf21d8525fc10ae87aa6729d"),
            ("message digest", "d9130a8164549fe818874806e1c7014b"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "e33b4ddc9c38f2199c3e7b164fcc0536",
            ),
        ];
        for (input, want) in cases {
            let got: [u8; 16] = Md4::digest(input.as_bytes()).into();
            let got: String = got.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, want, "MD4({input:?})");
        }
    }

    /// The common values of [MS-NLMP] §4.2.1 and the NTLMv2 results of §4.2.4.
    fn example_challenge() -> Challenge {
        // §4.2.4: AV pairs MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server", EOL.
        let mut target_info = vec![0x02, 0x00, 0x0c, 0x00];
        target_info.extend(utf16("Domain"));
        target_info.extend([0x01, 0x00, 0x0c, 0x00]);
        target_info.extend(utf16("Server"));
        target_info.extend([0, 0, 0, 0]);
        Challenge {
            flags: 0xe28a_8233,
            server_challenge: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            target_info,
            timestamp: None,
        }
    }

    #[test]
    fn ntlmv2_matches_the_specification_example() {
        let key = ntowf_v2("Password", "User", "Domain");
        assert_eq!(
            key.to_vec(),
            hex("0c 86 8a 40 3b fd 7a 93 a3 00 1e f2 2e f0 2e 3f"),
            "§4.2.4.1.1 NTOWFv2"
        );
        let r = responses(&key, &example_challenge(), [0xaa; 8], 0);
        assert_eq!(
            r.lm,
            hex("86 c3 50 97 ac 9c ec 10 25 54 76 4a 57 cc cc 19 aa aa aa aa aa aa aa aa"),
            "§4.2.4.2.1 LMv2 response"
        );
        assert_eq!(
            r.nt_proof.to_vec(),
            hex("68 cd 0a b8 51 e5 1c 96 aa bc 92 7b eb ef 6a 1c"),
            "§4.2.4.2.2 NTProofStr"
        );
        assert_eq!(
            r.session_base_key.to_vec(),
            hex("8d e4 0c ca db c1 4a 82 f1 5c b0 ad 0d e9 5c a3"),
            "§4.2.4.1.2 session base key"
        );
        // The NTLMv2 client challenge (temp): header, time 0, client challenge, the AV pairs.
        let mut temp = hex(
            "01 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 aa aa aa aa aa aa aa aa 00 00 00 00",
        );
        temp.extend(example_challenge().target_info);
        temp.extend([0, 0, 0, 0]);
        assert_eq!(&r.nt[16..], temp.as_slice());
    }

    #[test]
    fn channel_bindings_follow_rfc_5929_and_sit_before_the_end_of_the_list() {
        // A minimal DER certificate shape: SEQUENCE { SEQUENCE {} (tbs), SEQUENCE { OID } }.
        let cert = |oid: &[u8]| {
            let mut alg = vec![0x06, u8::try_from(oid.len()).unwrap()];
            alg.extend(oid);
            let mut body = vec![0x30, 0x00, 0x30, u8::try_from(alg.len()).unwrap()];
            body.extend(alg);
            let mut c = vec![0x30, u8::try_from(body.len()).unwrap()];
            c.extend(body);
            c
        };
        let sha256_ecdsa = cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        let sha384_ecdsa = cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        let sha1_rsa = cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        assert_eq!(server_end_point(&sha256_ecdsa).len(), 32);
        assert_eq!(server_end_point(&sha384_ecdsa).len(), 48);
        assert_eq!(
            server_end_point(&sha1_rsa).len(),
            32,
            "SHA-1 becomes SHA-256"
        );
        assert_eq!(server_end_point(b"not DER").len(), 32);
        // The structure hashed: 16 zero bytes (no addresses), the data's length, the data.
        let mut gss = vec![0u8; 16];
        gss.extend(53u32.to_le_bytes());
        gss.extend(b"tls-server-end-point:");
        gss.extend(server_end_point(&sha256_ecdsa));
        let want: [u8; 16] = Md5::digest(&gss).into();
        assert_eq!(channel_bindings(&sha256_ecdsa), want);

        let info = example_challenge().target_info;
        let bound = with_bindings(&info, &[7; 16]);
        assert_eq!(&bound[..info.len() - 4], &info[..info.len() - 4]);
        assert_eq!(&bound[info.len() - 4..info.len()], &[0x0a, 0, 16, 0]);
        assert_eq!(&bound[info.len()..info.len() + 16], &[7; 16]);
        assert_eq!(&bound[info.len() + 16..], &[0, 0, 0, 0]);
    }

    #[test]
    fn the_messages_have_the_published_layout() {
        let n = negotiate();
        assert_eq!(&n[..8], b"NTLMSSP\0");
        assert_eq!(u32_at(&n, 8), Some(1));
        assert_eq!(u32_at(&n, 12), Some(CLIENT_FLAGS));
        assert_eq!(n.len(), 32);

        // A CHALLENGE_MESSAGE as §2.2.1.2 lays it out, with a timestamp pair.
        let mut info = vec![0x07, 0x00, 0x08, 0x00];
        info.extend(0x01d0_0000_0000_0000u64.to_le_bytes());
        info.extend([0, 0, 0, 0]);
        let mut c = b"NTLMSSP\0".to_vec();
        c.extend(2u32.to_le_bytes());
        c.extend([0, 0, 0, 0, 56, 0, 0, 0]); // empty TargetName
        c.extend((CLIENT_FLAGS | TARGET_INFO).to_le_bytes());
        c.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        c.extend([0; 8]);
        let len = u16::try_from(info.len()).unwrap();
        c.extend(len.to_le_bytes());
        c.extend(len.to_le_bytes());
        c.extend(56u32.to_le_bytes());
        c.extend([0; 8]); // Version
        c.extend(&info);
        let parsed = Challenge::parse(&c).unwrap();
        assert_eq!(parsed.server_challenge, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(parsed.target_info, info);
        assert_eq!(parsed.timestamp, Some(0x01d0_0000_0000_0000));
        assert_eq!(Challenge::parse(&n), None, "a NEGOTIATE is not a CHALLENGE");
        assert_eq!(Challenge::parse(&c[..30]), None, "truncated");

        let who = Identity::parse("CORP\\alice");
        assert_eq!(who.domain, "CORP");
        assert_eq!(Identity::parse("alice@corp.example").domain, "");
        let key = ntowf_v2("pw", &who.user, &who.domain);
        let r = responses(&key, &parsed, [9; 8], parsed.timestamp.unwrap());
        assert_eq!(
            r.lm,
            vec![0; 24],
            "no LM response when the server sent a time"
        );
        let a = authenticate_message(&parsed, &who, "", &r);
        assert_eq!(&a[..8], b"NTLMSSP\0");
        assert_eq!(u32_at(&a, 8), Some(3));
        assert_eq!(field(&a, 12), Some(r.lm.as_slice()));
        assert_eq!(field(&a, 20), Some(r.nt.as_slice()));
        assert_eq!(field(&a, 28), Some(utf16("CORP").as_slice()));
        assert_eq!(field(&a, 36), Some(utf16("alice").as_slice()));
        assert_eq!(field(&a, 44), Some(&[][..]));
        assert_eq!(u32_at(&a, 60).unwrap() & KEY_EXCH, 0);
        // The payload starts right after the 64-byte header, domain first.
        assert_eq!(u32_at(&a, 32), Some(64));
    }
}
