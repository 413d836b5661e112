//! A stand-in for Exchange Web Services built from Microsoft's published definitions
//! (`src/schema/`, provenance in its README), for mailshift's tests and demo; not part of the
//! `mailshift` binary.
//!
//! - `check`: judges a SOAP request or answer against the vendored WSDL and XSDs;
//! - `http`: serves `POST /EWS/Exchange.asmx` and autodiscover, refusing (and recording) any
//!   request the checker faults, and checking its own answers the same way;
//! - `state` and `ops`: mailboxes with folders, items kept as the XML trees the client sent,
//!   change keys, sync states and inbox rules, and the operations on them;
//! - [`EwsSim`]: starts a server and is the tests' seeding and inspection API (no HTTP).
//!
//! Not modelled (a request that needs them gets a clean error or a recorded violation, not
//! a made-up answer): MIME content of contacts and calendar items
//! (ErrorUnsupportedMimeConversion), FindItem's CalendarView, relative ("second Tuesday")
//! recurrence patterns, NTLM's MIC (NTLM itself is, with channel bindings: see
//! [`EwsSim::require_ntlm`]), folder permissions and delegate access (`t:Mailbox` in a
//! DistinguishedFolderId is ignored), SyncFolderItems' Ignore list, moves and copies of
//! items (MoveItem, CopyItem are not implemented), and mail (no message store beyond items
//! kept as given). Time zones: only those `zones` publishes (the ones tests use), each
//! with its current rule.

pub mod check;
mod http;
mod ntlm;
mod occurrence;
mod ops;
pub mod schema;
mod soap;
mod state;
pub mod xml;
mod zones;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

use http::Shared;
pub use ntlm::Login as NtlmLogin;
use ops::Shape;

/// A running simulator. Dropping it stops the server.
pub struct EwsSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A certificate chain and its private key, PEM files: the simulator then speaks HTTPS.
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

fn server_config(tls: &Tls) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_pem)
        .and_then(|i| i.collect())
        .map_err(|e| format!("EWS simulator: cannot read {}: {e}", tls.cert_pem.display()))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_pem)
        .map_err(|e| format!("EWS simulator: cannot read {}: {e}", tls.key_pem.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("EWS simulator: TLS setup: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("EWS simulator: the certificate and key do not make a TLS server: {e}"))?;
    Ok(Arc::new(config))
}

/// The NTLM channel bindings a client on this certificate's TLS connections computes.
fn leaf_bindings(tls: &Tls) -> Result<[u8; 16], String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let leaf = CertificateDer::from_pem_file(&tls.cert_pem)
        .map_err(|e| format!("EWS simulator: cannot read {}: {e}", tls.cert_pem.display()))?;
    Ok(ntlm::channel_bindings(&leaf))
}

async fn launch(
    addr: SocketAddr,
    tls: Option<Tls>,
) -> Result<(Arc<Shared>, SocketAddr, oneshot::Sender<()>), String> {
    // Parse the schema before the first request, not during it.
    schema::published();
    let bindings = tls.as_ref().map(leaf_bindings).transpose()?;
    let tls = tls.as_ref().map(server_config).transpose()?;
    let shared = Arc::new(Shared::new());
    shared.ntlm().bindings = bindings;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("EWS simulator: cannot listen on {addr}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("EWS simulator: cannot read the listening address: {e}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    shared.lock().ews_url = format!("{scheme}://{addr}/EWS/Exchange.asmx");
    let (stop, stopped) = oneshot::channel::<()>();
    let app = http::router(shared.clone());
    match tls {
        None => {
            tokio::spawn(async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                // Each connection gets its own id: NTLM authenticates connections.
                let app = app.into_make_service_with_connect_info::<ntlm::ConnId>();
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    eprintln!("EWS simulator: server error: {e}");
                }
            });
        }
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            tokio::spawn(async move {
                let mut stopped = stopped;
                loop {
                    let accepted = tokio::select! {
                        _ = &mut stopped => break,
                        a = listener.accept() => a,
                    };
                    let Ok((tcp, peer)) = accepted else { continue };
                    let acceptor = acceptor.clone();
                    let app = app
                        .clone()
                        .layer(axum::Extension(axum::extract::ConnectInfo(
                            ntlm::ConnId::new(peer, true),
                        )));
                    tokio::spawn(async move {
                        // A client that refuses the certificate ends its handshake here.
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
    }
    Ok((shared, addr, stop))
}

impl EwsSim {
    /// Starts a simulator on a free loopback port, on the current tokio runtime.
    pub async fn start() -> Result<EwsSim, String> {
        EwsSim::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr`, on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr) -> Result<EwsSim, String> {
        EwsSim::start_with(addr, None).await
    }

    /// Starts a simulator on `addr`, speaking HTTPS with `tls` when given.
    pub async fn start_with(addr: SocketAddr, tls: Option<Tls>) -> Result<EwsSim, String> {
        let (shared, addr, stop) = launch(addr, tls).await?;
        Ok(EwsSim {
            shared,
            addr,
            stop: Some(stop),
            thread: None,
        })
    }

    /// Starts a simulator on its own thread and runtime, for tests without one.
    pub fn spawn() -> Result<EwsSim, String> {
        EwsSim::spawn_with(None)
    }

    /// As [`EwsSim::spawn`], speaking HTTPS with `tls` when given.
    pub fn spawn_with(tls: Option<Tls>) -> Result<EwsSim, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ews-simulator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("EWS simulator: cannot start a runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match launch(SocketAddr::from(([127, 0, 0, 1], 0)), tls).await {
                        Ok((shared, addr, stop_server)) => {
                            let (stop, stopped) = oneshot::channel::<()>();
                            let _ = tx.send(Ok((shared, addr, stop)));
                            let _ = stopped.await;
                            let _ = stop_server.send(());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| format!("EWS simulator: cannot start a thread: {e}"))?;
        let (shared, addr, stop) = rx
            .recv()
            .map_err(|_| "EWS simulator: the thread ended before starting".to_owned())??;
        Ok(EwsSim {
            shared,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/EWS/Exchange.asmx` (https with TLS): the plan's `ews.url`.
    pub fn url(&self) -> String {
        self.shared.lock().ews_url.clone()
    }

    /// `http://127.0.0.1:PORT/autodiscover/autodiscover.xml` (https with TLS).
    pub fn autodiscover_url(&self) -> String {
        self.url()
            .replace("/EWS/Exchange.asmx", "/autodiscover/autodiscover.xml")
    }

    // ---- seeding ----

    /// A mailbox with its distinguished folders (msgfolderroot, inbox, contacts, calendar,
    /// tasks); Basic auth as `address` / `password`.
    pub fn add_mailbox(&self, address: &str, password: &str) {
        self.shared.lock().add_mailbox(address, password);
    }

    /// `Authorization: Bearer TOKEN` authenticates `principal`: a mailbox address, or an
    /// application that must then impersonate (see [`EwsSim::allow_impersonation`]).
    pub fn add_token(&self, token: &str, principal: &str) {
        self.shared
            .lock()
            .tokens
            .insert(token.to_owned(), principal.to_owned());
    }

    /// Lets `principal` (a mailbox address or a token's principal) act as any mailbox
    /// with `ExchangeImpersonation`.
    pub fn allow_impersonation(&self, principal: &str) {
        self.shared
            .lock()
            .impersonators
            .insert(principal.to_lowercase());
    }

    /// Creates a folder under `parent` (a folder id or a distinguished id such as
    /// `msgfolderroot`); `class` is `IPF.Contact`, `IPF.Appointment`, `IPF.Task`, ….
    /// Returns the folder id.
    pub fn create_folder(
        &self,
        mailbox: &str,
        parent: &str,
        name: &str,
        class: &str,
    ) -> Result<String, String> {
        self.shared
            .lock()
            .create_folder(mailbox, parent, name, class)
            .map_err(|(code, m)| format!("{code}: {m}"))
    }

    /// Stores an item given as XML (`<t:Contact>…</t:Contact>`; the `t:` prefix is bound
    /// to the EWS types namespace) in `folder` (id or distinguished id). Returns its ItemId.
    pub fn insert_item(
        &self,
        mailbox: &str,
        folder: &str,
        item_xml: &str,
    ) -> Result<String, String> {
        let node = state::parse_item(item_xml).map_err(|e| format!("insert_item: {e}"))?;
        self.shared
            .lock()
            .insert_item(mailbox, folder, node)
            .map_err(|(code, m)| format!("{code}: {m}"))
    }

    /// Marks the mailbox as used with Outlook: it has a client-side rules blob, which
    /// GetInboxRules reports and UpdateInboxRules must remove (RemoveOutlookRuleBlob).
    pub fn set_outlook_rule_blob(&self, mailbox: &str, present: bool) {
        if let Some(mb) = self.shared.lock().mailbox_mut(mailbox) {
            mb.outlook_rule_blob = present;
        }
    }

    /// Makes every item sync state given out so far invalid, as Exchange does with expired
    /// ones: SyncFolderItems from one answers ErrorInvalidSyncStateData.
    pub fn invalidate_sync_states(&self, mailbox: &str) {
        if let Some(mb) = self.shared.lock().mailbox_mut(mailbox) {
            mb.sync_epoch += 1;
        }
    }

    // ---- inspection ----

    /// The SyncState of every SyncFolderItems so far, in order (None: a sync from the start,
    /// which is a full listing).
    pub fn item_sync_states(&self) -> Vec<Option<String>> {
        self.shared.lock().item_syncs.clone()
    }

    /// The items of a folder as XML (all stored fields, ItemId, extended properties,
    /// attachments listed), in creation order. Occurrences stored apart from their series
    /// are not listed.
    pub fn items(&self, mailbox: &str, folder: &str) -> Vec<String> {
        let st = self.shared.lock();
        let Some(mb) = st.mailbox(mailbox) else {
            return Vec::new();
        };
        let Some(f) = mb.folder(folder) else {
            return Vec::new();
        };
        mb.items
            .iter()
            .filter(|i| i.folder == f.id && i.master.is_none())
            .map(|i| ops::inspect(mb, i, &Shape::everything()))
            .collect()
    }

    /// One item as XML, by id.
    pub fn item(&self, mailbox: &str, id: &str) -> Option<String> {
        let st = self.shared.lock();
        let mb = st.mailbox(mailbox)?;
        let i = mb.item(id)?;
        Some(ops::inspect(mb, i, &Shape::everything()))
    }

    /// The inbox rules of a mailbox as XML (`t:Rule`, RuleId included), in stored order.
    pub fn rules(&self, mailbox: &str) -> Vec<String> {
        let st = self.shared.lock();
        st.mailbox(mailbox)
            .map(|mb| mb.rules.iter().map(ops::node_xml).collect())
            .unwrap_or_default()
    }

    /// The folders of a mailbox: (id, display name, folder class).
    pub fn folders(&self, mailbox: &str) -> Vec<(String, String, String)> {
        let st = self.shared.lock();
        st.mailbox(mailbox)
            .map(|mb| {
                mb.folders
                    .iter()
                    .map(|f| (f.id.clone(), f.name.clone(), f.class.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Requests received per operation (refused ones included).
    pub fn requests(&self) -> BTreeMap<String, usize> {
        self.shared.lock().requests.clone()
    }

    pub fn request_count(&self, operation: &str) -> usize {
        self.shared
            .lock()
            .requests
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests outside the published schema (refused with ErrorSchemaValidation), missing
    /// headers, and answers of the simulator that drift from the schema. Must be empty at
    /// the end of every test.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Returns the violations recorded so far and forgets them: for a test that provokes
    /// one on purpose and goes on.
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().violations)
    }

    /// (operation, mode) of every calendar CreateItem / UpdateItem / DeleteItem: the value
    /// of SendMeetingInvitations / SendMeetingInvitationsOrCancellations /
    /// SendMeetingCancellations, None when absent.
    pub fn invitation_modes(&self) -> Vec<(String, Option<String>)> {
        self.shared.lock().invitation_modes.clone()
    }

    /// How many calendar writes could have sent mail: any mode but SendToNone (absent
    /// counts, since Exchange's default for absent varies by operation).
    pub fn invitations_sent(&self) -> usize {
        self.shared
            .lock()
            .invitation_modes
            .iter()
            .filter(|(_, m)| m.as_deref() != Some("SendToNone"))
            .count()
    }

    // ---- faults ----

    /// The next `n` authenticated, schema-valid requests fail with ErrorServerBusy and
    /// `BackOffMilliseconds` = `backoff_ms` in the fault's MessageXml.
    pub fn fail_next_busy(&self, n: usize, backoff_ms: u64) {
        let mut st = self.shared.lock();
        st.busy_next = n;
        st.busy_backoff_ms = backoff_ms;
    }

    /// The next `n` authenticated, schema-valid requests get a bare HTTP `status` (503 or
    /// 429 as a front end or Exchange Online sends them), with `Retry-After` when given;
    /// nothing is carried out.
    pub fn fail_next_status(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        let mut st = self.shared.lock();
        st.status_next = n;
        st.status_code = status;
        st.status_retry_after = retry_after_secs;
    }

    /// The next `n` requests are carried out, but the connection breaks mid-response.
    pub fn cut_next(&self, n: usize) {
        self.shared.lock().cut_next = n;
    }

    /// At most `limit` requests in flight per mailbox; more get ErrorServerBusy.
    pub fn set_concurrency_limit(&self, limit: Option<usize>) {
        self.shared.lock().concurrency_limit = limit;
    }

    /// While held, requests wait (holding their concurrency slot) until released.
    pub fn hold_requests(&self, hold: bool) {
        self.shared.hold.send_replace(hold);
    }

    /// Requests in flight for a mailbox.
    pub fn in_flight(&self, mailbox: &str) -> usize {
        self.shared
            .lock()
            .in_flight
            .get(&mailbox.to_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// NTLM only (true): every request must come on a connection that completed an NTLMv2
    /// handshake as a mailbox (user `ADDRESS` with an empty domain, or `DOMAIN\\LOCALPART`);
    /// 401s offer `NTLM` and `Negotiate`, never Basic; Basic and Bearer are refused.
    pub fn require_ntlm(&self, on: bool) {
        self.shared.ntlm().required = on;
    }

    /// NTLM over HTTPS must carry the connection's channel bindings (Extended Protection,
    /// Exchange 2019 CU14's default); without this, bindings are checked only when sent.
    pub fn require_channel_bindings(&self, on: bool) {
        self.shared.ntlm().require_bindings = on;
    }

    /// The NTLM handshakes that succeeded, in order: which connection, as which mailbox.
    pub fn ntlm_logins(&self) -> Vec<NtlmLogin> {
        self.shared.ntlm().logins.clone()
    }

    /// Why NTLM attempts were refused (wrong password, no pending challenge, Basic sent).
    pub fn ntlm_refusals(&self) -> Vec<String> {
        self.shared.ntlm().refusals.clone()
    }

    /// The next `n` NTLM challenges close their connection: the handshake is lost midway.
    pub fn ntlm_close_after_challenge(&self, n: usize) {
        self.shared.ntlm().close_after_challenge = n;
    }

    /// Forgets which connections authenticated with NTLM: their next request gets a 401.
    pub fn ntlm_forget_connections(&self) {
        self.shared.ntlm().forget_connections();
    }

    /// NTLM challenges sent so far.
    pub fn ntlm_challenges(&self) -> usize {
        self.shared.ntlm().challenges
    }

    /// Stops the server (and its thread, for a spawned one).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.shared.hold.send_replace(false);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EwsSim {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl std::fmt::Debug for EwsSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsSim").field("addr", &self.addr).finish()
    }
}

#[cfg(test)]
mod tests;
