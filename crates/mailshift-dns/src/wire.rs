//! One DNS exchange with one server: a query over UDP (again over TCP when the answer is
//! truncated) or an UPDATE over TCP, signed with TSIG when a key is given and the reply's
//! signature checked. No cache, no retries across servers: the callers ask the very server
//! whose answer they want.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// The UDP payload we offer (EDNS): the size DNS flag day 2020 settled on, small enough to
/// avoid fragmentation, large enough for a mail domain's records.
const UDP_PAYLOAD: u16 = 1232;

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// UDP first, TCP when the answer is truncated (queries).
    Udp,
    /// TCP only (updates: a lost UDP reply would leave us not knowing whether the update
    /// happened, and TCP has no size limit).
    Tcp,
}

/// Why an exchange gave no usable reply.
#[derive(Debug)]
pub(crate) enum WireError {
    /// No reply in time, or the connection failed.
    Network(String),
    /// The server refused the TSIG signature (its TSIG error, in an unsigned reply).
    Tsig(TsigError),
    /// A reply came but cannot be trusted or read.
    BadReply(String),
}

/// The server's reply, decoded (and its signature checked when the request was signed).
pub(crate) struct Reply {
    pub message: Message,
}

impl Reply {
    pub fn rcode(&self) -> ResponseCode {
        self.message.metadata.response_code
    }
}

/// Sends `message` to `server` and returns its reply. With `signer`, the message is signed
/// (TSIG, RFC 8945) and a reply is accepted only with a valid signature over it.
pub(crate) async fn exchange(
    server: SocketAddr,
    mut message: Message,
    signer: Option<&TSigner>,
    transport: Transport,
    deadline: Duration,
) -> Result<Reply, WireError> {
    if transport == Transport::Udp {
        message
            .edns
            .get_or_insert_with(Edns::new)
            .set_max_payload(UDP_PAYLOAD)
            .set_version(0);
    }
    let mut verifier = match signer {
        Some(signer) => message
            .finalize(signer, unix_now())
            .map_err(|e| WireError::BadReply(format!("cannot sign the request: {e}")))?,
        None => None,
    };
    let bytes = message
        .to_vec()
        .map_err(|e| WireError::BadReply(format!("cannot encode the request: {e}")))?;
    let id = message.metadata.id;

    let mut raw = match transport {
        Transport::Udp => udp(server, &bytes, id, deadline).await?,
        Transport::Tcp => tcp(server, &bytes, deadline).await?,
    };
    let mut reply = decode(&raw)?;
    if transport == Transport::Udp && reply.metadata.truncation {
        raw = tcp(server, &bytes, deadline).await?;
        reply = decode(&raw)?;
    }
    if reply.metadata.id != id {
        return Err(WireError::BadReply(format!(
            "the reply's id {} is not the request's {id}",
            reply.metadata.id
        )));
    }

    if let Some(verifier) = verifier.as_mut() {
        // A server that rejects the signature answers unsigned, with the reason in its TSIG
        // record's error field (RFC 8945 §5.2).
        if let Some(error) = reply.signature().and_then(|s| s.data.error) {
            return Err(WireError::Tsig(error));
        }
        if reply.signature().is_none() {
            if matches!(reply.metadata.response_code, ResponseCode::NotAuth) {
                return Err(WireError::Tsig(TsigError::BadKey));
            }
            return Err(WireError::BadReply(
                "the reply to a signed request is not signed (a server without the key, or \
                 something between us and it)"
                    .into(),
            ));
        }
        let checked = verifier.verify(&raw).map_err(|e| {
            WireError::BadReply(format!("the reply's TSIG signature does not verify: {e}"))
        })?;
        reply = checked.into_message();
    }
    Ok(Reply { message: reply })
}

fn decode(raw: &[u8]) -> Result<Message, WireError> {
    Message::from_vec(raw)
        .map_err(|e| WireError::BadReply(format!("cannot read the reply as a DNS message: {e}")))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One datagram out, the matching one back. Datagrams with another id (a late reply to an
/// earlier request on a reused port) are skipped. Sent again once if nothing came back in
/// half the time: UDP may drop it.
async fn udp(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    deadline: Duration,
) -> Result<Vec<u8>, WireError> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let net = |e: std::io::Error| WireError::Network(e.to_string());
    let socket = UdpSocket::bind(local).await.map_err(net)?;
    socket.connect(server).await.map_err(net)?;
    let mut buf = vec![0u8; 65535];
    for attempt in 0..2 {
        socket.send(bytes).await.map_err(net)?;
        let wait = async {
            loop {
                let n = socket.recv(&mut buf).await?;
                if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    return Ok::<usize, std::io::Error>(n);
                }
            }
        };
        match timeout(deadline / 2, wait).await {
            Ok(Ok(n)) => return Ok(buf[..n].to_vec()),
            Ok(Err(e)) => return Err(net(e)),
            Err(_) if attempt == 0 => continue,
            Err(_) => break,
        }
    }
    Err(WireError::Network(format!(
        "no answer over UDP within {} ms",
        deadline.as_millis()
    )))
}

/// One message over TCP, framed by its two-byte length (RFC 1035 §4.2.2).
async fn tcp(server: SocketAddr, bytes: &[u8], deadline: Duration) -> Result<Vec<u8>, WireError> {
    let run = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(bytes.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "request too long")
        })?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).await?;
        Ok::<Vec<u8>, std::io::Error>(reply)
    };
    match timeout(deadline, run).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(WireError::Network(format!("over TCP: {e}"))),
        Err(_) => Err(WireError::Network(format!(
            "no answer over TCP within {} ms",
            deadline.as_millis()
        ))),
    }
}
