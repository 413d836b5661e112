//! A stand-in for the OVHcloud REST API, for end-to-end tests and the demo: the real API
//! cannot be reached from them, and a mock that accepts anything would prove nothing.
//!
//! It serves `/1.0` on a loopback port and behaves like the real one where the migration
//! depends on it:
//! - every call must be an operation of the vendored schema (`api-schema/`), with known
//!   parameters and well-typed writable body fields; anything else is refused and recorded
//!   as a violation (`schema`);
//! - authentication with application keys, consumer keys, access rules and signatures
//!   checked from the API's published description, independently of any client (`auth`);
//! - Exchange, Email Pro, new MX Plan (`service`) and legacy MX Plan (`legacy`) objects
//!   changed by asynchronous tasks that take time, with busy objects, address conflicts and
//!   authoritative-domain rules;
//! - optionally a real Dovecot whose logins follow renames and password changes (`dovecot`);
//! - DNS zones (`/domain/zone`: records, refresh) and their two authoritative name servers
//!   on loopback, answering each zone as last refreshed (`zone`, `nameserver`);
//! - fault injection, a request log and a control API under `/_sim/` (`control`).
//!
//! The world it simulates comes from a file (`world`); the `ovh-sim` binary runs it as a
//! process, [`Simulator::start`] and [`SimHandle::spawn`] in a test. This crate depends on
//! no mailshift crate: it is a test double, never part of the product.

mod auth;
mod control;
mod dovecot;
mod http;
mod legacy;
mod nameserver;
mod reply;
mod schema;
mod service;
mod state;
pub mod world;
mod zone;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;

pub use control::{Fault, FaultReply, RequestRecord, Violation};
pub use nameserver::NameServer;
pub use world::World;

use http::Shared;
use state::State;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The world file is unreadable or inconsistent.
    World(String),
    /// The simulator cannot run: no port, no runtime.
    Io(String),
    /// A fault rule that cannot apply.
    Fault(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::World(m) => write!(f, "invalid simulator world: {m}"),
            SimError::Io(m) => write!(f, "OVHcloud simulator: {m}"),
            SimError::Fault(m) => write!(f, "invalid fault: {m}"),
        }
    }
}

impl std::error::Error for SimError {}

pub struct Simulator;

impl Simulator {
    /// Starts a simulator on a free loopback port, on the current tokio runtime.
    pub async fn start(world: World) -> Result<SimHandle, SimError> {
        Simulator::start_on(world, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr`, on the current tokio runtime.
    pub async fn start_on(world: World, addr: SocketAddr) -> Result<SimHandle, SimError> {
        let (shared, addr, stop) = launch(world, addr).await?;
        Ok(SimHandle {
            shared,
            addr,
            stop: Some(stop),
            thread: None,
        })
    }
}

async fn launch(
    world: World,
    addr: SocketAddr,
) -> Result<(Arc<Shared>, SocketAddr, oneshot::Sender<()>), SimError> {
    let state = State::from_world(&world)?;
    // Parse the schema before the first call, not during it.
    schema::Schema::global();
    let shared = Arc::new(Shared::new(state));
    // Dropped when the HTTP server stops, which stops the name servers with it.
    let (dns_stop, _) = tokio::sync::watch::channel(());
    let servers = nameserver::start(shared.clone(), &dns_stop).await?;
    shared.lock().dns_servers = servers;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| SimError::Io(format!("cannot listen on {addr}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SimError::Io(format!("cannot read the listening address: {e}")))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = http::router(shared.clone());
    tokio::spawn(async move {
        // A dropped handle stops the server too: `stopped` then resolves with an error.
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            eprintln!("OVHcloud simulator: server error: {e}");
        }
        drop(dns_stop);
    });
    Ok((shared, addr, stop))
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimHandle {
    /// Starts a simulator on its own thread and runtime, for tests without one.
    pub fn spawn(world: World) -> Result<SimHandle, SimError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ovh-simulator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(SimError::Io(format!("cannot start a runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match launch(world, SocketAddr::from(([127, 0, 0, 1], 0))).await {
                        Ok((shared, addr, stop_server)) => {
                            let (stop, stopped) = oneshot::channel::<()>();
                            let _ = tx.send(Ok((shared, addr, stop)));
                            // Serve until the handle says stop or goes away; leaving drops the
                            // runtime, which ends the server and any task timers.
                            let _ = stopped.await;
                            let _ = stop_server.send(());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| SimError::Io(format!("cannot start a thread: {e}")))?;
        let (shared, addr, stop) = rx
            .recv()
            .map_err(|_| SimError::Io("the simulator thread ended before starting".into()))??;
        Ok(SimHandle {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/1.0`: the endpoint to give the client.
    pub fn base_url(&self) -> String {
        format!("http://{}/1.0", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every API call received so far (control calls excepted).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// The calls that were writes (`POST`, `PUT`, `DELETE` outside `/auth`), answered or not.
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.write)
            .cloned()
            .collect()
    }

    /// Calls outside the published schema, and answers of the simulator that drift from it.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().violations.clone()
    }

    /// The zones' two authoritative name servers (`dns200.ovh.net`, `ns200.ovh.net`) and
    /// where each answers, UDP and TCP.
    pub fn name_servers(&self) -> Vec<NameServer> {
        self.shared.lock().dns_servers.clone()
    }

    /// Holds name server `index` (0 or 1) at the zones it answers now, as a secondary that
    /// has not caught up yet: later refreshes reach it only after
    /// [`release_name_server`](Self::release_name_server).
    pub fn hold_name_server(&self, index: usize) -> Result<(), SimError> {
        self.shared
            .lock()
            .hold_name_server(index, true)
            .map_err(SimError::Fault)
    }

    pub fn release_name_server(&self, index: usize) -> Result<(), SimError> {
        self.shared
            .lock()
            .hold_name_server(index, false)
            .map_err(SimError::Fault)
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    pub fn inject(&self, fault: Fault) -> Result<(), SimError> {
        control::add_fault(&mut self.shared.lock(), fault).map_err(SimError::Fault)
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// With `manual_tasks`, moves every unfinished task one step (`todo` → `doing` → `done`);
    /// returns how many moved.
    pub fn advance_tasks(&self) -> usize {
        self.shared.lock().advance_all()
    }

    /// The current world, in the world file's shape.
    pub fn world(&self) -> World {
        self.shared.lock().to_world()
    }

    pub fn world_json(&self) -> Value {
        serde_json::to_value(self.world()).unwrap_or(Value::Null)
    }

    /// Stops the server (and its thread, for a spawned one).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::world::Account;
    use super::{SimHandle, World};

    /// One Email Pro service with two accounts on two authoritative domains.
    fn world() -> World {
        World::from_yaml(
            "pro:\n\
             - service: pro-1\n  \
               domains: [{name: example.com}, {name: other.example}]\n  \
               accounts: [{email: john@example.com, password: pw}, {email: jane@example.com, password: pw}]\n  \
               placeholders: 2\n",
        )
        .unwrap()
    }

    #[test]
    fn inconsistent_worlds_are_refused() {
        let mut w = world();
        w.pro[0]
            .accounts
            .push(Account::new("x@unattached.example", "pw"));
        let e = SimHandle::spawn(w).unwrap_err();
        assert!(
            e.to_string()
                .contains("unattached.example is not one of its domains"),
            "{e}"
        );
        let mut w = world();
        w.pro[0].accounts[0].send_as = vec!["ghost@example.com".into()];
        let e = SimHandle::spawn(w).unwrap_err();
        assert!(e.to_string().contains("delegate ghost@example.com"), "{e}");
        let mut w = world();
        let mut other = w.pro[0].clone();
        other.service = "pro-2".into();
        other.domains.truncate(1);
        other.accounts.clear();
        other.placeholders = 0;
        w.pro.push(other);
        let e = SimHandle::spawn(w).unwrap_err();
        assert!(
            e.to_string().contains("holds example.com as authoritative"),
            "{e}"
        );
    }
}
