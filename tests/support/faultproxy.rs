//! A TCP proxy that breaks connections on purpose: tests put it between a client and a real
//! server (Dovecot) to cut a stream mid-literal, refuse connections, slow or stall a link,
//! and then check that the client notices, reports and recovers.
//!
//! The fault plan is shared and can change while connections are live; every fault that
//! fires is logged (`fired()`) so a test can prove the failure it provoked really happened
//! rather than passing because nothing went wrong.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Short enough that a pump notices a cut or `Drop` within a blink; long enough not to spin.
const POLL: Duration = Duration::from_millis(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CHUNK: usize = 16 * 1024;
/// Bytes kept from earlier chunks so a pattern split across two reads is still seen.
const MAX_PATTERN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: commands, APPEND literals.
    ToServer,
    /// Server to client: greeting, responses, FETCH literals.
    ToClient,
}

/// One rule of the fault plan. Byte counts are per connection and per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward exactly `bytes` bytes in `direction`, then close both sides.
    CutAfterBytes {
        direction: Direction,
        bytes: u64,
        once: bool,
    },
    /// Once `pattern` has gone by in `direction`, forward `extra_bytes` more, then close both
    /// sides: `b"BODY[] {"` with some extra bytes cuts inside a FETCH literal.
    CutOnPattern {
        direction: Direction,
        pattern: Vec<u8>,
        extra_bytes: usize,
        once: bool,
    },
    /// Forward a number of bytes drawn per connection from `min_bytes..=max_bytes` in
    /// `direction`, then close both sides: a flaky link that drops every few hundred KB (or
    /// MB). The draw depends only on `seed`, the connection's number and the direction, so a
    /// failing run can be replayed.
    CutRandom {
        direction: Direction,
        min_bytes: u64,
        max_bytes: u64,
        seed: u64,
    },
    /// Accept the next `times` connections and close them at once, without reaching the
    /// target.
    Refuse { times: u32 },
    /// Close about `percent` % of the connections at once, chosen by `seed` and the
    /// connection's number (reproducible), for as long as the rule is armed.
    RefuseShare { percent: u8, seed: u64 },
    /// Sleep this long before forwarding each chunk, both directions.
    Delay { per_chunk_ms: u64 },
    /// Forward `after_bytes` bytes in `direction`, then forward nothing more in that
    /// direction while keeping the connection open, until it is cut (`cut_all`, the other
    /// side closing, or the proxy dropped): for client timeouts.
    Stall {
        direction: Direction,
        after_bytes: u64,
        once: bool,
    },
}

impl Fault {
    fn once(&self) -> bool {
        match self {
            Fault::CutAfterBytes { once, .. }
            | Fault::CutOnPattern { once, .. }
            | Fault::Stall { once, .. } => *once,
            Fault::Refuse { .. }
            | Fault::RefuseShare { .. }
            | Fault::CutRandom { .. }
            | Fault::Delay { .. } => false,
        }
    }
}

/// The changeable plan and what happened so far, behind one lock.
#[derive(Default)]
struct Faults {
    /// Armed rules with an id, so a pump's pending cut can tell whether its rule survived a
    /// `set`/`clear` or was disarmed by another connection.
    rules: Vec<(u64, Fault)>,
    next_rule: u64,
    fired: Vec<String>,
    accepted: usize,
    live: Vec<Arc<Conn>>,
    /// The most connections forwarded at once so far.
    peak: usize,
}

struct Shared {
    target: SocketAddr,
    faults: Mutex<Faults>,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Faults> {
        // A panicking pump must not take the whole proxy (and every later assertion) down.
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_threads(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(self: &Arc<Self>, name: String, f: impl FnOnce() + Send + 'static) {
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .expect("spawning a fault proxy thread");
        let mut threads = self.lock_threads();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

/// Both sockets of one proxied connection.
struct Conn {
    id: usize,
    client: TcpStream,
    server: TcpStream,
    dead: AtomicBool,
}

impl Conn {
    /// Abrupt close of both sides: whatever a peer is reading or writing fails now.
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
}

pub struct FaultProxy {
    shared: Arc<Shared>,
    port: u16,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `target`, faultless
    /// until a rule is set.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the fault proxy port");
        let port = listener.local_addr().unwrap().port();
        // Non-blocking so the accept loop can see `stopping` without a wake-up connection.
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            target,
            faults: Mutex::new(Faults::default()),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("faultproxy-{port}-accept"))
                .spawn(move || accept_loop(&shared, listener))
                .expect("spawning the fault proxy")
        };
        FaultProxy {
            shared,
            port,
            acceptor: Some(acceptor),
        }
    }

    /// Forwards to Dovecot (or anything else) listening on this loopback port.
    pub fn to_port(port: u16) -> FaultProxy {
        FaultProxy::start((Ipv4Addr::LOCALHOST, port).into())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replaces the whole plan with this one rule.
    pub fn set(&self, fault: Fault) {
        let mut faults = self.shared.lock();
        faults.rules.clear();
        add_rule(&mut faults, fault);
    }

    /// Adds a rule to the plan; when several could fire on the same chunk, the earliest byte
    /// position wins.
    pub fn add(&self, fault: Fault) {
        add_rule(&mut self.shared.lock(), fault);
    }

    /// Removes every rule. Connections already stalled stay stalled.
    pub fn clear(&self) {
        self.shared.lock().rules.clear();
    }

    /// The rules still armed (`once` rules that fired and spent `Refuse` rules are gone).
    pub fn armed(&self) -> Vec<Fault> {
        self.shared
            .lock()
            .rules
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Connections accepted so far, refused ones included.
    pub fn connections(&self) -> usize {
        self.shared.lock().accepted
    }

    /// Connections being forwarded right now.
    pub fn live(&self) -> usize {
        self.shared.lock().live.iter().filter(|c| !c.dead()).count()
    }

    /// The most connections forwarded at once so far. A connection counts from the moment
    /// the target accepted it until either side closed it: the count is the server's view.
    pub fn peak(&self) -> usize {
        self.shared.lock().peak
    }

    /// Closes every live connection at once; returns how many.
    pub fn cut_all(&self) -> usize {
        let live = std::mem::take(&mut self.shared.lock().live);
        let live: Vec<_> = live.into_iter().filter(|c| !c.dead()).collect();
        for conn in &live {
            conn.kill();
        }
        let ids: Vec<usize> = live.iter().map(|c| c.id).collect();
        self.shared
            .lock()
            .fired
            .push(format!("cut_all: connections {ids:?}"));
        live.len()
    }

    /// One line per fault fired, in order, each naming the connection (`conn N`, counted
    /// from 1 in accept order) and the rule.
    pub fn fired(&self) -> Vec<String> {
        self.shared.lock().fired.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let live = std::mem::take(&mut self.shared.lock().live);
        for conn in live {
            conn.kill();
        }
        // Pumps poll `stopping` at least every POLL and their sockets are shut down, so
        // these joins are quick; a test never outlives its proxy's threads. Repeated because
        // a connection thread may start its second pump while the first batch is joined.
        loop {
            let threads = std::mem::take(&mut *self.shared.lock_threads());
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

fn add_rule(faults: &mut Faults, fault: Fault) {
    if let Fault::CutOnPattern { pattern, .. } = &fault {
        assert!(
            !pattern.is_empty() && pattern.len() <= MAX_PATTERN,
            "CutOnPattern needs a pattern of 1 to {MAX_PATTERN} bytes"
        );
    }
    faults.next_rule += 1;
    let id = faults.next_rule;
    faults.rules.push((id, fault));
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                shared.lock().fired.push(format!("accept failed: {e}"));
                std::thread::sleep(POLL);
                continue;
            }
        };
        // Accepted sockets inherit non-blocking mode on some platforms; pumps want blocking
        // reads with a timeout.
        let _ = client.set_nonblocking(false);
        let id = {
            let mut faults = shared.lock();
            faults.accepted += 1;
            let id = faults.accepted;
            let shared_out = faults.rules.iter().find_map(|(_, f)| match f {
                Fault::RefuseShare { percent, seed }
                    if draw(*seed, id as u64, 0) % 100 < u64::from(*percent) =>
                {
                    Some(f.clone())
                }
                _ => None,
            });
            if let Some(rule) = shared_out {
                faults.fired.push(format!("conn {id}: {rule:?}"));
                drop(faults);
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let refuse = faults
                .rules
                .iter()
                .position(|(_, f)| matches!(f, Fault::Refuse { times } if *times > 0));
            if let Some(i) = refuse {
                let Fault::Refuse { times } = &mut faults.rules[i].1 else {
                    unreachable!()
                };
                *times -= 1;
                let left = *times;
                if left == 0 {
                    faults.rules.remove(i);
                }
                faults
                    .fired
                    .push(format!("conn {id}: Refuse ({left} more to refuse)"));
                drop(faults);
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            id
        };
        let shared2 = shared.clone();
        // Connecting can take a while (or time out): not on the accept thread.
        shared.spawn(format!("faultproxy-conn-{id}"), move || {
            connect_and_pump(shared2, id, client)
        });
    }
}

fn connect_and_pump(shared: Arc<Shared>, id: usize, client: TcpStream) {
    let server = match TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            shared.lock().fired.push(format!(
                "conn {id}: target {} unreachable: {e}",
                shared.target
            ));
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let setup = || -> std::io::Result<Conn> {
        // Cut positions are exact only if bytes are not held back for coalescing.
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        client.set_read_timeout(Some(POLL))?;
        server.set_read_timeout(Some(POLL))?;
        Ok(Conn {
            id,
            client: client.try_clone()?,
            server: server.try_clone()?,
            dead: AtomicBool::new(false),
        })
    };
    let conn = match setup() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            shared.lock().fired.push(format!("conn {id}: setup: {e}"));
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return;
        }
    };
    {
        let mut faults = shared.lock();
        faults.live.retain(|c| !c.dead());
        faults.live.push(conn.clone());
        faults.peak = faults.peak.max(faults.live.len());
    }
    if shared.stopping.load(Ordering::SeqCst) {
        conn.kill();
        return;
    }
    {
        let (shared, conn) = (shared.clone(), conn.clone());
        let (from, to) = (server.try_clone(), client.try_clone());
        shared
            .clone()
            .spawn(format!("faultproxy-conn-{id}-down"), move || {
                if let (Ok(from), Ok(to)) = (from, to) {
                    pump(&shared, &conn, Direction::ToClient, from, to);
                }
                conn.kill();
            });
    }
    // This thread carries the other direction: the pair is this thread and the one above.
    pump(&shared, &conn, Direction::ToServer, client, server);
    conn.kill();
}

/// What the plan says about one chunk.
enum Verdict {
    Forward,
    /// Forward this many bytes of the chunk, then close both sides.
    Cut(usize),
    /// Forward this many bytes of the chunk, then nothing more.
    Stall(usize),
}

/// Where a `CutOnPattern` rule will cut, once its pattern has gone by: the stream offset in
/// this direction.
struct Pending {
    rule: u64,
    at: u64,
}

fn pump(
    shared: &Shared,
    conn: &Conn,
    direction: Direction,
    mut from: TcpStream,
    mut to: TcpStream,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    let mut tail: Vec<u8> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        if conn.dead() || shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let chunk = &buf[..n];
        let (delay, verdict) = judge(
            shared,
            conn.id,
            direction,
            total,
            &tail,
            chunk,
            &mut pending,
        );
        if delay > 0 && !sleep_unless_cut(shared, conn, Duration::from_millis(delay)) {
            return;
        }
        let forward = match verdict {
            Verdict::Forward => n,
            Verdict::Cut(k) | Verdict::Stall(k) => k,
        };
        if to.write_all(&chunk[..forward]).is_err() {
            return;
        }
        match verdict {
            Verdict::Forward => {}
            Verdict::Cut(_) => {
                conn.kill();
                return;
            }
            Verdict::Stall(_) => {
                // Hold the connection open, reading nothing more in this direction.
                while sleep_unless_cut(shared, conn, POLL) {}
                return;
            }
        }
        total += n as u64;
        tail.extend_from_slice(chunk);
        if tail.len() > MAX_PATTERN {
            tail.drain(..tail.len() - MAX_PATTERN);
        }
    }
}

/// A reproducible pseudo-random number for (seed, connection, salt): splitmix64, enough to
/// spread cut points and refusals without a dependency.
fn draw(seed: u64, conn: u64, salt: u64) -> u64 {
    let mut z = seed
        .wrapping_add(conn.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(salt.wrapping_mul(0xd1b5_4a32_d192_ed69));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sleeps `d` in short steps; false if the connection died or the proxy stopped meanwhile.
fn sleep_unless_cut(shared: &Shared, conn: &Conn, d: Duration) -> bool {
    let mut left = d;
    while !left.is_zero() {
        if conn.dead() || shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        let step = left.min(POLL);
        std::thread::sleep(step);
        left -= step;
    }
    !(conn.dead() || shared.stopping.load(Ordering::SeqCst))
}

/// Applies the plan to one chunk that follows `total` bytes (the last of which are `tail`)
/// in `direction`: the delay before forwarding it, and whether to cut or stall inside it.
/// A fault that fires is logged, and disarmed if it is `once`.
fn judge(
    shared: &Shared,
    conn: usize,
    direction: Direction,
    total: u64,
    tail: &[u8],
    chunk: &[u8],
    pending: &mut Vec<Pending>,
) -> (u64, Verdict) {
    let mut faults = shared.lock();
    let end = total + chunk.len() as u64;
    let mut delay = 0;
    // (stream offset, rule index, is a stall)
    let mut earliest: Option<(u64, usize, bool)> = None;
    let mut consider = |at: u64, index: usize, stall: bool| {
        // A threshold already passed (the rule came late) fires at the start of this chunk.
        let at = at.max(total);
        if at <= end && earliest.is_none_or(|(e, _, _)| at < e) {
            earliest = Some((at, index, stall));
        }
    };
    pending.retain(|p| faults.rules.iter().any(|(id, _)| *id == p.rule));
    for (index, (id, fault)) in faults.rules.iter().enumerate() {
        match fault {
            Fault::Delay { per_chunk_ms } => delay += per_chunk_ms,
            Fault::CutAfterBytes {
                direction: d,
                bytes,
                ..
            } if *d == direction => consider(*bytes, index, false),
            Fault::Stall {
                direction: d,
                after_bytes,
                ..
            } if *d == direction => consider(*after_bytes, index, true),
            Fault::CutRandom {
                direction: d,
                min_bytes,
                max_bytes,
                seed,
            } if *d == direction => {
                let span = max_bytes.saturating_sub(*min_bytes) + 1;
                let salt = match direction {
                    Direction::ToServer => 1,
                    Direction::ToClient => 2,
                };
                consider(
                    min_bytes + draw(*seed, conn as u64, salt) % span,
                    index,
                    false,
                )
            }
            Fault::CutOnPattern {
                direction: d,
                pattern,
                extra_bytes,
                ..
            } if *d == direction => {
                if !pending.iter().any(|p| p.rule == *id) {
                    let mut window = tail.to_vec();
                    window.extend_from_slice(chunk);
                    // Only matches that end in this chunk: those ending in `tail` were seen
                    // (or predate the rule).
                    let found = window
                        .windows(pattern.len())
                        .enumerate()
                        .map(|(i, _)| i + pattern.len())
                        .find(|&e| e > tail.len() && window[e - pattern.len()..e] == pattern[..]);
                    if let Some(e) = found {
                        let pattern_end = total - tail.len() as u64 + e as u64;
                        pending.push(Pending {
                            rule: *id,
                            at: pattern_end + *extra_bytes as u64,
                        });
                    }
                }
                if let Some(p) = pending.iter().find(|p| p.rule == *id) {
                    consider(p.at, index, false);
                }
            }
            _ => {}
        }
    }
    let Some((at, index, stall)) = earliest else {
        return (delay, Verdict::Forward);
    };
    let (id, fault) = faults.rules[index].clone();
    if fault.once() {
        faults.rules.remove(index);
    }
    pending.retain(|p| p.rule != id);
    faults.fired.push(format!(
        "conn {conn}: {fault:?} fired after {at} bytes {direction:?}"
    ));
    let k = (at - total) as usize;
    (
        delay,
        if stall {
            Verdict::Stall(k)
        } else {
            Verdict::Cut(k)
        },
    )
}
