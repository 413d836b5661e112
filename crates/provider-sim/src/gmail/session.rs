//! One client connection of the Gmail proxy: each command is read whole, then passed to
//! Dovecot as it is, with mailbox names translated, or answered the way Gmail answers it
//! (see the module documentation of `gmail` for the model).

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::backend::{Backend, fetch_row};
use super::index::{Index, key, key_msgid};
use super::wire::{self, Tok};
use super::{
    ALL_MAIL, ARCHIVED, CAPABILITIES, OVERQUOTA, STARRED, Shared, VIRTUAL_ALL, VIRTUAL_PREFIX,
    VIRTUAL_STARRED, label_mailbox, special_use,
};

pub(super) struct Session {
    shared: Arc<Shared>,
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    be: Backend,
    user: Option<String>,
    /// The folder the client has open, by the client's name.
    selected: Option<String>,
    side: Option<Backend>,
}

/// A client name as Dovecot knows it.
fn to_backend(name: &[u8]) -> Vec<u8> {
    match name {
        n if n == ALL_MAIL.as_bytes() => VIRTUAL_ALL.as_bytes().to_vec(),
        n if n == STARRED.as_bytes() => VIRTUAL_STARRED.as_bytes().to_vec(),
        n => n.to_vec(),
    }
}

/// A Dovecot name as the client sees it; `None` for what Gmail does not show.
fn to_client(name: &[u8]) -> Option<Vec<u8>> {
    match name {
        n if n == VIRTUAL_ALL.as_bytes() => Some(ALL_MAIL.as_bytes().to_vec()),
        n if n == VIRTUAL_STARRED.as_bytes() => Some(STARRED.as_bytes().to_vec()),
        n if n == ARCHIVED.as_bytes() || n.starts_with(VIRTUAL_PREFIX.as_bytes()) => None,
        n => Some(n.to_vec()),
    }
}

fn rename(tok: &Tok) -> Tok {
    match tok.text() {
        Some(t) => Tok::string(&to_backend(t)),
        None => tok.clone(),
    }
}

fn upper(t: Option<&Tok>) -> String {
    t.map(|t| t.text_lossy().to_ascii_uppercase())
        .unwrap_or_default()
}

fn is_gm_item(t: &Tok) -> bool {
    ["X-GM-MSGID", "X-GM-LABELS", "X-GM-THRID"]
        .iter()
        .any(|n| t.is_atom(n))
}

/// The FETCH macros, spelled out (RFC 3501 §6.4.5).
fn expand_macro(t: &Tok) -> Vec<Tok> {
    let names: &[&str] = if t.is_atom("ALL") {
        &["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    } else if t.is_atom("FAST") {
        &["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    } else if t.is_atom("FULL") {
        &["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]
    } else {
        return vec![t.clone()];
    };
    names.iter().map(|n| Tok::atom(n)).collect()
}

const MID_ITEM: &str = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]";
const MID_REPLY: &str = "BODY[HEADER.FIELDS (MESSAGE-ID)]";

impl Session {
    pub async fn run(shared: Arc<Shared>, client: TcpStream) -> io::Result<()> {
        let _ = client.set_nodelay(true);
        let (r, w) = client.into_split();
        let (be, _greeting) = Backend::connect(shared.backend).await?;
        let mut s = Session {
            shared,
            r: BufReader::new(r),
            w,
            be,
            user: None,
            selected: None,
            side: None,
        };
        s.out(b"* OK Gimap ready for requests from 127.0.0.1 (mailshift provider-sim)\r\n")
            .await?;
        let result = s.serve().await;
        if let Some(side) = s.side.take() {
            side.logout().await;
        }
        result
    }

    async fn out(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.w.flush().await
    }

    async fn serve(&mut self) -> io::Result<()> {
        loop {
            let Some(raw) = wire::read_unit(&mut self.r, Some(&mut self.w)).await? else {
                return Ok(());
            };
            let toks = match wire::parse(&raw) {
                Ok(t) if t.len() >= 2 => t,
                _ => {
                    self.out(b"* BAD [CLIENTBUG] Could not parse command\r\n")
                        .await?;
                    self.flush().await?;
                    continue;
                }
            };
            self.log(&toks);
            let tag = toks[0].text_lossy();
            let cmd = upper(toks.get(1));
            let (uid, verb) = if cmd == "UID" {
                (true, upper(toks.get(2)))
            } else {
                (false, cmd.clone())
            };
            let logged_in = self.user.is_some();
            let reply = match verb.as_str() {
                "CAPABILITY" if logged_in => {
                    self.out(format!("* CAPABILITY {CAPABILITIES}\r\n").as_bytes())
                        .await?;
                    format!("{tag} OK Success\r\n").into_bytes()
                }
                "ID" => {
                    self.out(b"* ID (\"name\" \"GImap\" \"vendor\" \"Google, Inc.\" \"support-url\" \"https://support.google.com/mail\")\r\n").await?;
                    format!("{tag} OK Success\r\n").into_bytes()
                }
                "LOGIN" => self.login(&toks).await?,
                "AUTHENTICATE" => self.authenticate(&toks).await?,
                "LOGOUT" => {
                    let reply = self.relay(&toks).await?;
                    self.out(&reply).await?;
                    self.flush().await?;
                    return Ok(());
                }
                "SELECT" | "EXAMINE" => {
                    let mut t = toks.clone();
                    t[2] = rename(&t[2]);
                    let reply = self.relay(&t).await?;
                    self.selected = (wire::tagged(&reply).map(|(_, s)| s).as_deref() == Some("OK"))
                        .then(|| toks[2].text_lossy());
                    reply
                }
                "STATUS" | "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" if toks.len() > 2 => {
                    let mut t = toks.clone();
                    t[2] = rename(&t[2]);
                    self.relay(&t).await?
                }
                "RENAME" if toks.len() > 3 => {
                    let mut t = toks.clone();
                    t[2] = rename(&t[2]);
                    t[3] = rename(&t[3]);
                    self.relay(&t).await?
                }
                "COPY" | "MOVE" => {
                    let mut t = toks.clone();
                    let last = t.len() - 1;
                    t[last] = rename(&t[last]);
                    self.relay(&t).await?
                }
                "LIST" | "XLIST" if logged_in => self.list(&toks).await?,
                "APPEND" if logged_in => self.append(&toks).await?,
                "FETCH" if logged_in => self.fetch(&toks, uid).await?,
                "STORE"
                    if logged_in
                        && toks.get(if uid { 4 } else { 3 }).is_some_and(|t| {
                            t.text_lossy().to_ascii_uppercase().contains("X-GM-LABELS")
                        }) =>
                {
                    self.store_labels(&toks, uid).await?
                }
                "IDLE" => self.idle(&toks).await?,
                _ => self.relay(&toks).await?,
            };
            self.out(&reply).await?;
            self.flush().await?;
        }
    }

    /// Records the command for tests, passwords and SASL answers left out.
    fn log(&self, toks: &[Tok]) {
        let verb = upper(toks.get(1));
        let shown: Vec<Tok> = toks
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                _ if verb == "LOGIN" && i == 3 => Tok::atom("<password>"),
                _ if verb == "AUTHENTICATE" && i == 3 => Tok::atom("<sasl>"),
                Tok::Literal(b) => Tok::atom(&format!("{{{}}}", b.len())),
                other => other.clone(),
            })
            .collect();
        let mut line = Vec::new();
        wire::write(&shown, false, &mut line);
        self.shared.log(
            self.user.as_deref(),
            self.selected.as_deref(),
            String::from_utf8_lossy(&line).into_owned(),
        );
    }

    /// Sends `toks` to Dovecot, passing its untagged answers on (names translated, hidden
    /// folders dropped, FETCH data counted), and returns its tagged answer, not yet sent.
    async fn relay(&mut self, toks: &[Tok]) -> io::Result<Vec<u8>> {
        let tag = toks[0].text().unwrap_or_default().to_vec();
        self.be.send(&wire::command(toks)).await?;
        loop {
            let resp = self.be.read().await?;
            if let Some((t, _)) = wire::tagged(&resp)
                && t == tag.as_slice()
            {
                return Ok(resp);
            }
            if let Some(fixed) = self.fix_untagged(resp) {
                self.out(&fixed).await?;
            }
        }
    }

    /// An untagged answer of Dovecot's as Gmail would say it.
    fn fix_untagged(&self, resp: Vec<u8>) -> Option<Vec<u8>> {
        if let Some((_, word, _)) = wire::numbered(&resp) {
            if word == "FETCH" {
                self.shared
                    .volume
                    .fetch_add(resp.len() as u64, Ordering::Relaxed);
            }
            return Some(resp);
        }
        let Some((word, rest)) = wire::untagged(&resp) else {
            return Some(resp);
        };
        match word.as_str() {
            "LIST" | "LSUB" | "XLIST" => {
                let mut toks = wire::parse(rest).ok()?;
                let name = toks.get(2)?.text()?.to_vec();
                let visible = to_client(&name)?;
                if let Some(Tok::List(attrs)) = toks.get_mut(0)
                    && let Some(u) = special_use(&String::from_utf8_lossy(&visible))
                    && !attrs.iter().any(|a| a.is_atom(u))
                {
                    attrs.push(Tok::atom(u));
                }
                toks[2] = Tok::string(&visible);
                let mut out = format!("* {word} ").into_bytes();
                wire::write(&toks, false, &mut out);
                out.extend_from_slice(b"\r\n");
                Some(out)
            }
            "STATUS" => {
                let mut toks = wire::parse(rest).ok()?;
                let visible = to_client(toks.first()?.text()?)?;
                toks[0] = Tok::string(&visible);
                let mut out = b"* STATUS ".to_vec();
                wire::write(&toks, false, &mut out);
                out.extend_from_slice(b"\r\n");
                Some(out)
            }
            "CAPABILITY" if self.user.is_some() => {
                Some(format!("* CAPABILITY {CAPABILITIES}\r\n").into_bytes())
            }
            _ => Some(resp),
        }
    }

    fn over_quota(&self, tag: &str) -> Option<Vec<u8>> {
        let quota = (*self.shared.quota.lock().unwrap_or_else(|e| e.into_inner()))?;
        (self.shared.volume.load(Ordering::Relaxed) >= quota)
            .then(|| format!("{tag} NO [OVERQUOTA] {OVERQUOTA} (Failure)\r\n").into_bytes())
    }

    async fn side(&mut self) -> io::Result<&mut Backend> {
        if self.side.is_none() {
            let user = self
                .user
                .clone()
                .ok_or_else(|| io::Error::other("not logged in"))?;
            let side = Backend::side(self.shared.backend, &user, &self.shared.master).await?;
            self.side = Some(side);
        }
        Ok(self.side.as_mut().expect("set above"))
    }

    async fn logged_in(&mut self, tag: &str, user: String) -> io::Result<Vec<u8>> {
        self.user = Some(user.clone());
        let shared = self.shared.clone();
        shared.ensure_folders(self.side().await?, &user).await?;
        Ok(
            format!("{tag} OK [CAPABILITY {CAPABILITIES}] {user} authenticated (Success)\r\n")
                .into_bytes(),
        )
    }

    async fn login(&mut self, toks: &[Tok]) -> io::Result<Vec<u8>> {
        let reply = self.relay(toks).await?;
        match (wire::tagged(&reply), toks.get(2)) {
            (Some((_, s)), Some(user)) if s == "OK" => {
                self.logged_in(&toks[0].text_lossy(), user.text_lossy())
                    .await
            }
            _ => Ok(reply),
        }
    }

    /// SASL goes through as it is; the user is read from PLAIN's or XOAUTH2's answer.
    async fn authenticate(&mut self, toks: &[Tok]) -> io::Result<Vec<u8>> {
        let tag = toks[0].text().unwrap_or_default().to_vec();
        let mechanism = upper(toks.get(2));
        let mut user = toks.get(3).and_then(|t| sasl_user(&mechanism, t.text()?));
        self.be.send(&wire::command(toks)).await?;
        loop {
            let resp = self.be.read().await?;
            if resp.starts_with(b"+") {
                self.out(&resp).await?;
                self.flush().await?;
                let line = wire::read_unit(&mut self.r, None::<&mut OwnedWriteHalf>)
                    .await?
                    .ok_or_else(|| io::Error::other("client left during AUTHENTICATE"))?;
                user = user.or_else(|| sasl_user(&mechanism, line.trim_ascii_end()));
                self.be.send(&line).await?;
                continue;
            }
            if let Some((t, s)) = wire::tagged(&resp)
                && t == tag.as_slice()
            {
                return match (s.as_str(), user) {
                    ("OK", Some(u)) => self.logged_in(&toks[0].text_lossy(), u).await,
                    _ => Ok(resp),
                };
            }
            self.out(&resp).await?;
        }
    }

    /// IDLE until the client's DONE, Dovecot's news passed on meanwhile.
    async fn idle(&mut self, toks: &[Tok]) -> io::Result<Vec<u8>> {
        let tag = toks[0].text().unwrap_or_default().to_vec();
        self.be.send(&wire::command(toks)).await?;
        let mut done_sent = false;
        loop {
            let client_line = async {
                if done_sent {
                    std::future::pending().await
                } else {
                    wire::read_unit(&mut self.r, None::<&mut OwnedWriteHalf>).await
                }
            };
            tokio::select! {
                line = client_line => {
                    let line = line?.ok_or_else(|| io::Error::other("client left during IDLE"))?;
                    self.be.send(&line).await?;
                    done_sent = true;
                }
                resp = self.be.read() => {
                    let resp = resp?;
                    if let Some((t, _)) = wire::tagged(&resp) && t == tag.as_slice() {
                        return Ok(resp);
                    }
                    if let Some(fixed) = self.fix_untagged(resp) {
                        self.w.write_all(&fixed).await?;
                        self.w.flush().await?;
                    }
                }
            }
        }
    }

    /// LIST, with All Mail and Starred (Dovecot's virtual folders) where the pattern takes
    /// them, and their STATUS when asked for.
    async fn list(&mut self, toks: &[Tok]) -> io::Result<Vec<u8>> {
        let tag = toks[0].text_lossy();
        let mut i = 2;
        if matches!(toks.get(i), Some(Tok::List(_))) {
            i += 1;
        }
        let pattern = toks.get(i + 1).and_then(Tok::text).unwrap_or(b"").to_vec();
        let status_items =
            toks.iter()
                .position(|t| t.is_atom("RETURN"))
                .and_then(|p| match toks.get(p + 1) {
                    Some(Tok::List(opts)) => opts
                        .iter()
                        .position(|t| t.is_atom("STATUS"))
                        .and_then(|s| opts.get(s + 1).cloned()),
                    _ => None,
                });
        let reply = self.relay(toks).await?;
        if wire::tagged(&reply).map(|(_, s)| s).as_deref() != Some("OK") {
            return Ok(reply);
        }
        for (visible, backend) in [(ALL_MAIL, VIRTUAL_ALL), (STARRED, VIRTUAL_STARRED)] {
            if !wire::list_match(&pattern, visible.as_bytes(), b'/') {
                continue;
            }
            let attr = special_use(visible).unwrap_or_default();
            let mut line = format!("* LIST (\\HasNoChildren {attr}) \"/\" ").into_bytes();
            wire::write(&[Tok::string(visible.as_bytes())], false, &mut line);
            line.extend_from_slice(b"\r\n");
            self.out(&line).await?;
            if let Some(items) = &status_items {
                let a = self
                    .be
                    .run(&[
                        Tok::atom("STATUS"),
                        Tok::string(backend.as_bytes()),
                        items.clone(),
                    ])
                    .await?;
                for r in a.untagged {
                    if let Some(fixed) = self.fix_untagged(r) {
                        self.out(&fixed).await?;
                    }
                }
            }
        }
        Ok(format!("{tag} OK Success\r\n").into_bytes())
    }

    /// Runs a command of the proxy's own on the client's connection; the news Dovecot gives
    /// with it (EXPUNGE, EXISTS) goes on to the client.
    async fn internal(&mut self, args: &[Tok]) -> io::Result<super::backend::Answer> {
        let a = self.be.run(args).await?;
        for r in &a.untagged {
            if let Some((_, word, _)) = wire::numbered(r)
                && matches!(word.as_str(), "EXPUNGE" | "EXISTS" | "RECENT")
            {
                self.w.write_all(r).await?;
            }
        }
        Ok(a)
    }

    /// APPEND as Gmail does it: one message per Message-ID. Into a label the message already
    /// has elsewhere, it only adds that label; into a label it already has, the new copy
    /// replaces the old one (new UID, the old one gone); into All Mail, a message Gmail has
    /// changes nothing, and a new one is stored without a label.
    async fn append(&mut self, toks: &[Tok]) -> io::Result<Vec<u8>> {
        let tag = toks[0].text_lossy();
        if let Some(no) = self.over_quota(&tag) {
            return Ok(no);
        }
        let literals = toks.iter().filter(|t| matches!(t, Tok::Literal(_))).count();
        let (Some(mailbox), Some(Tok::Literal(body))) = (toks.get(2), toks.last()) else {
            return Ok(format!("{tag} BAD [CLIENTBUG] Invalid arguments\r\n").into_bytes());
        };
        if literals != 1 {
            // Gmail offers no MULTIAPPEND.
            return Ok(format!("{tag} BAD [CLIENTBUG] Invalid arguments\r\n").into_bytes());
        }
        self.shared
            .volume
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let target = mailbox.text_lossy();
        let mid = wire::message_id(wire::header_block(body));
        let index = match &mid {
            Some(id) => Some(Index::read_one(self.side().await?, id).await?),
            None => None,
        };
        let holders: Vec<(String, u32, u32)> = match (&mid, &index) {
            (Some(id), Some(ix)) => ix
                .holders(&key(Some(id), "", 0))
                .iter()
                .map(|c| (c.mailbox.clone(), c.real_uid, c.vuid))
                .collect(),
            _ => Vec::new(),
        };
        if target == ALL_MAIL {
            let validity = index.as_ref().map_or(0, |i| i.uidvalidity);
            if let Some(vuid) = holders.iter().map(|h| h.2).min() {
                return Ok(format!(
                    "{tag} OK [APPENDUID {validity} {vuid}] (Success) already in All Mail\r\n"
                )
                .into_bytes());
            }
            let mut t = toks.to_vec();
            t[2] = Tok::string(ARCHIVED.as_bytes());
            let reply = self.relay(&t).await?;
            if wire::tagged(&reply).map(|(_, s)| s).as_deref() != Some("OK") {
                return Ok(reply);
            }
            let Some(id) = mid else {
                return Ok(format!("{tag} OK (Success)\r\n").into_bytes());
            };
            let side = self.side().await?;
            let validity = side.select(VIRTUAL_ALL).await?;
            let found = side
                .search(&[
                    Tok::atom("HEADER"),
                    Tok::atom("Message-ID"),
                    Tok::string(id.as_bytes()),
                ])
                .await?;
            return Ok(match found.into_iter().min() {
                Some(v) => format!("{tag} OK [APPENDUID {validity} {v}] (Success)\r\n"),
                None => format!("{tag} OK (Success)\r\n"),
            }
            .into_bytes());
        }
        let mut t = toks.to_vec();
        t[2] = rename(&t[2]);
        let reply = self.relay(&t).await?;
        if wire::tagged(&reply).map(|(_, s)| s).as_deref() != Some("OK") {
            return Ok(reply);
        }
        // The old copy in this label goes (Gmail renumbers), and so does the message's place
        // in the hidden archive: it has a label now.
        for folder in [target.as_str(), ARCHIVED] {
            let old: Vec<u32> = holders
                .iter()
                .filter(|h| h.0 == folder)
                .map(|h| h.1)
                .collect();
            if !old.is_empty() {
                let side = self.side().await?;
                side.select(folder).await?;
                side.expunge(&old).await?;
            }
        }
        Ok(reply)
    }

    /// FETCH, with X-GM-MSGID, X-GM-THRID and X-GM-LABELS computed, and All Mail showing
    /// each Gmail message once.
    async fn fetch(&mut self, toks: &[Tok], uid: bool) -> io::Result<Vec<u8>> {
        let tag = toks[0].text_lossy();
        if let Some(no) = self.over_quota(&tag) {
            return Ok(no);
        }
        let at = if uid { 4 } else { 3 };
        let Some(items_tok) = toks.get(at) else {
            return self.relay(toks).await;
        };
        let mut items: Vec<Tok> = match items_tok {
            Tok::List(v) => v.iter().flat_map(expand_macro).collect(),
            other => expand_macro(other),
        };
        let wanted: Vec<String> = items
            .iter()
            .filter(|t| is_gm_item(t))
            .map(|t| t.text_lossy().to_ascii_uppercase())
            .collect();
        items.retain(|t| !is_gm_item(t));
        let in_all = self.selected.as_deref() == Some(ALL_MAIL);
        if wanted.is_empty() && !in_all {
            return self.relay(toks).await;
        }
        let asked_mid = items.iter().any(|t| t.is_atom(MID_ITEM));
        if !in_all && !asked_mid {
            items.push(Tok::atom(MID_ITEM));
        }
        if !items.iter().any(|t| t.is_atom("FLAGS")) {
            items.push(Tok::atom("FLAGS"));
        }
        if !items.iter().any(|t| t.is_atom("UID")) {
            items.push(Tok::atom("UID"));
        }
        let mut t = toks.to_vec();
        t[at] = Tok::List(items);
        let tag_bytes = tag.as_bytes().to_vec();
        self.be.send(&wire::command(&t)).await?;
        let mut rows = Vec::new();
        let done = loop {
            let resp = self.be.read().await?;
            if let Some((tg, _)) = wire::tagged(&resp)
                && tg == tag_bytes.as_slice()
            {
                break resp;
            }
            rows.push(resp);
        };
        let index = Index::read(self.side().await?).await?;
        let selected = self.selected.clone().unwrap_or_default();
        for resp in rows {
            self.shared
                .volume
                .fetch_add(resp.len() as u64, Ordering::Relaxed);
            let Some(row) = fetch_row(&resp) else {
                self.out(&resp).await?;
                continue;
            };
            let Some(u) = row.uid() else {
                self.out(&resp).await?;
                continue;
            };
            let Some((_, _, rest)) = wire::numbered(&resp) else {
                continue;
            };
            let mut pairs = wire::fetch_items(rest).unwrap_or_default();
            let flags: Vec<String> = match row.items.get("FLAGS") {
                Some(Tok::List(f)) => f.iter().map(Tok::text_lossy).collect(),
                _ => Vec::new(),
            };
            let k = if in_all {
                match index.by_vuid(u) {
                    Some(c) => {
                        if index.canonical(&c.key) != Some(u) {
                            continue;
                        }
                        c.key.clone()
                    }
                    None => key(None, &selected, u),
                }
            } else {
                let mid = row.text_of("BODY[HEADER.FIELDS").and_then(wire::message_id);
                key(mid.as_deref(), &selected, u)
            };
            if !asked_mid {
                pairs.retain(|(n, _)| !n.is_atom(MID_REPLY));
            }
            let mut labels = index.labels(&k, &flags);
            if index.holders(&k).is_empty()
                && let Some(l) = super::mailbox_label(&selected)
            {
                labels.insert(0, l);
            }
            let id = key_msgid(&k);
            for w in &wanted {
                let value = match w.as_str() {
                    "X-GM-LABELS" => Tok::List(labels.iter().map(|l| label_tok(l)).collect()),
                    _ => Tok::atom(&id.to_string()),
                };
                pairs.push((Tok::atom(w), value));
            }
            self.out(&wire::fetch_response(row.seq, &pairs)).await?;
        }
        Ok(done)
    }

    /// `STORE +X-GM-LABELS`, `-X-GM-LABELS` and `X-GM-LABELS`: a label added is a copy in
    /// its folder (created when new), one removed is that copy expunged; a message left
    /// without any label stays in All Mail (the hidden archive).
    async fn store_labels(&mut self, toks: &[Tok], uid: bool) -> io::Result<Vec<u8>> {
        let tag = toks[0].text_lossy();
        let at = if uid { 3 } else { 2 };
        let (Some(set), Some(op), Some(arg)) = (toks.get(at), toks.get(at + 1), toks.get(at + 2))
        else {
            return Ok(format!("{tag} BAD [CLIENTBUG] Invalid arguments\r\n").into_bytes());
        };
        let op = op.text_lossy().to_ascii_uppercase();
        let silent = op.ends_with(".SILENT");
        let mode = op.chars().next().unwrap_or('=');
        let labels: Vec<String> = match arg {
            Tok::List(l) => l.iter().map(Tok::text_lossy).collect(),
            one => vec![one.text_lossy()],
        };
        let selected = self.selected.clone().unwrap_or_default();
        let mut args = Vec::new();
        if uid {
            args.push(Tok::atom("UID"));
        }
        args.extend([
            Tok::atom("FETCH"),
            set.clone(),
            Tok::List(vec![
                Tok::atom("UID"),
                Tok::atom("FLAGS"),
                Tok::atom(MID_ITEM),
            ]),
        ]);
        let rows: Vec<_> = self
            .internal(&args)
            .await?
            .untagged
            .iter()
            .filter_map(|r| fetch_row(r))
            .collect();
        let index = Index::read(self.side().await?).await?;
        let mut replies = Vec::new();
        for row in rows {
            let Some(u) = row.uid() else { continue };
            let k = if selected == ALL_MAIL {
                index
                    .by_vuid(u)
                    .map_or_else(|| key(None, &selected, u), |c| c.key.clone())
            } else {
                let mid = row.text_of("BODY[HEADER.FIELDS").and_then(wire::message_id);
                key(mid.as_deref(), &selected, u)
            };
            let holders: Vec<(String, u32)> = index
                .holders(&k)
                .iter()
                .map(|c| (c.mailbox.clone(), c.real_uid))
                .collect();
            let have: BTreeSet<String> = holders
                .iter()
                .map(|h| h.0.clone())
                .filter(|m| m != ARCHIVED)
                .collect();
            let named: BTreeSet<String> = labels
                .iter()
                .filter(|l| !l.eq_ignore_ascii_case("\\Starred"))
                .map(|l| label_mailbox(l))
                .collect();
            let star = labels.iter().any(|l| l.eq_ignore_ascii_case("\\Starred"));
            let want: BTreeSet<String> = match mode {
                '+' => have.union(&named).cloned().collect(),
                '-' => have.difference(&named).cloned().collect(),
                _ => named.clone(),
            };
            let uid_set = u.to_string();
            let copy_into = |folder: &str| {
                [
                    Tok::atom("UID"),
                    Tok::atom("COPY"),
                    Tok::atom(&uid_set),
                    Tok::string(&to_backend(folder.as_bytes())),
                ]
            };
            for folder in want.difference(&have) {
                self.internal(&[Tok::atom("CREATE"), Tok::string(folder.as_bytes())])
                    .await?;
                self.internal(&copy_into(folder)).await?;
            }
            let archived = holders.iter().any(|h| h.0 == ARCHIVED);
            if want.is_empty() && !archived {
                self.internal(&copy_into(ARCHIVED)).await?;
            }
            let mut gone: Vec<&str> = have.difference(&want).map(String::as_str).collect();
            if !want.is_empty() && archived {
                gone.push(ARCHIVED);
            }
            for folder in gone {
                let uids: Vec<u32> = holders
                    .iter()
                    .filter(|h| h.0 == folder)
                    .map(|h| h.1)
                    .collect();
                let side = self.side().await?;
                side.select(folder).await?;
                side.expunge(&uids).await?;
            }
            if star || mode == '=' {
                let flag_op = match (mode, star) {
                    ('-', true) => Some("-FLAGS.SILENT"),
                    (_, true) => Some("+FLAGS.SILENT"),
                    ('=', false) => Some("-FLAGS.SILENT"),
                    _ => None,
                };
                if let Some(flag_op) = flag_op {
                    self.internal(&[
                        Tok::atom("UID"),
                        Tok::atom("STORE"),
                        Tok::atom(&uid_set),
                        Tok::atom(flag_op),
                        Tok::List(vec![Tok::atom("\\Flagged")]),
                    ])
                    .await?;
                }
            }
            if !silent {
                let mut now: Vec<Tok> = want
                    .iter()
                    .filter_map(|m| super::mailbox_label(m))
                    .map(|l| label_tok(&l))
                    .collect();
                if star && mode != '-' {
                    now.push(Tok::atom("\\Starred"));
                }
                replies.push(wire::fetch_response(
                    row.seq,
                    &[
                        (Tok::atom("UID"), Tok::atom(&uid_set)),
                        (Tok::atom("X-GM-LABELS"), Tok::List(now)),
                    ],
                ));
            }
        }
        for r in replies {
            self.out(&r).await?;
        }
        Ok(format!("{tag} OK Success\r\n").into_bytes())
    }
}

/// A label as X-GM-LABELS writes it: system labels as atoms, user labels as quoted
/// strings (never literals: clients parse labels as flags or quoted strings).
fn label_tok(label: &str) -> Tok {
    if label.starts_with('\\') {
        Tok::atom(label)
    } else {
        Tok::Quoted(label.as_bytes().to_vec())
    }
}

/// The user named in a SASL PLAIN or XOAUTH2 initial response (base64).
fn sasl_user(mechanism: &str, b64: &[u8]) -> Option<String> {
    let raw = wire::base64_decode(b64);
    match mechanism {
        "PLAIN" => raw
            .split(|&b| b == 0)
            .nth(1)
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .filter(|u| !u.is_empty()),
        "XOAUTH2" => String::from_utf8_lossy(&raw)
            .split('\x01')
            .find_map(|p| p.strip_prefix("user=").map(str::to_string)),
        _ => None,
    }
}
