//! One connection to the Dovecot behind the proxy: the one a client's commands go through,
//! and the proxy's own "side" connection per client, logged in as the master user for that
//! client's user, on which it looks across folders (who holds a Message-ID, the label index)
//! without disturbing what the client has selected.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::wire::{self, Tok};

pub(super) struct Backend {
    pub r: BufReader<OwnedReadHalf>,
    pub w: OwnedWriteHalf,
    next: u32,
}

/// What one of the proxy's own commands brought back.
pub(super) struct Answer {
    pub untagged: Vec<Vec<u8>>,
    pub ok: bool,
    pub text: String,
}

impl Backend {
    /// Connects and reads the greeting, which is returned.
    pub async fn connect(addr: SocketAddr) -> io::Result<(Backend, Vec<u8>)> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let (r, w) = tcp.into_split();
        let mut b = Backend {
            r: BufReader::new(r),
            w,
            next: 0,
        };
        let greeting = b.read().await?;
        Ok((b, greeting))
    }

    /// A side connection for `user`, through Dovecot's master-user login.
    pub async fn side(
        addr: SocketAddr,
        user: &str,
        master: &(String, String),
    ) -> io::Result<Backend> {
        let (mut b, _) = Backend::connect(addr).await?;
        let login = format!("{user}*{}", master.0);
        let a = b
            .run(&[
                Tok::atom("LOGIN"),
                Tok::string(login.as_bytes()),
                Tok::string(master.1.as_bytes()),
            ])
            .await?;
        if !a.ok {
            return Err(io::Error::other(format!(
                "master login for {user} refused: {}",
                a.text
            )));
        }
        Ok(b)
    }

    /// One response (a line and its literals).
    pub async fn read(&mut self) -> io::Result<Vec<u8>> {
        wire::read_unit::<_, OwnedWriteHalf>(&mut self.r, None)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "Dovecot hung up"))
    }

    pub fn tag(&mut self) -> String {
        self.next += 1;
        format!("gs{}", self.next)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes).await?;
        self.w.flush().await
    }

    /// Runs one command of the proxy's own (tag added) and collects its answer.
    pub async fn run(&mut self, args: &[Tok]) -> io::Result<Answer> {
        let tag = self.tag();
        let mut toks = vec![Tok::atom(&tag)];
        toks.extend_from_slice(args);
        self.send(&wire::command(&toks)).await?;
        let mut untagged = Vec::new();
        loop {
            let resp = self.read().await?;
            if let Some((t, status)) = wire::tagged(&resp)
                && t == tag.as_bytes()
            {
                return Ok(Answer {
                    untagged,
                    ok: status == "OK",
                    text: wire::tagged_text(&resp),
                });
            }
            untagged.push(resp);
        }
    }

    /// Runs a command that must succeed.
    pub async fn must(&mut self, args: &[Tok]) -> io::Result<Answer> {
        let a = self.run(args).await?;
        if a.ok {
            Ok(a)
        } else {
            let mut cmd = Vec::new();
            wire::write(args, true, &mut cmd);
            Err(io::Error::other(format!(
                "Dovecot refused `{}`: {}",
                String::from_utf8_lossy(&cmd),
                a.text
            )))
        }
    }

    /// Opens `mailbox` read-write and returns its UIDVALIDITY.
    pub async fn select(&mut self, mailbox: &str) -> io::Result<u32> {
        let a = self
            .must(&[Tok::atom("SELECT"), Tok::string(mailbox.as_bytes())])
            .await?;
        let mut validity = 0;
        for r in &a.untagged {
            let text = String::from_utf8_lossy(r);
            if let Some(rest) = text.split("[UIDVALIDITY ").nth(1) {
                validity = rest
                    .split(']')
                    .next()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
        Ok(validity)
    }

    /// UID FETCH on the open folder: per UID, its items by upper-cased name.
    pub async fn fetch(&mut self, set: &str, items: &str) -> io::Result<Vec<FetchRow>> {
        let a = self
            .must(&[Tok::atom("UID"), Tok::atom("FETCH"), Tok::atom(set), {
                let toks = wire::parse(items.as_bytes()).map_err(io::Error::other)?;
                toks.into_iter().next().unwrap_or_else(|| Tok::atom("UID"))
            }])
            .await?;
        Ok(a.untagged.iter().filter_map(|r| fetch_row(r)).collect())
    }

    /// UIDs of the open folder matching a search.
    pub async fn search(&mut self, criteria: &[Tok]) -> io::Result<Vec<u32>> {
        let mut args = vec![Tok::atom("UID"), Tok::atom("SEARCH")];
        args.extend_from_slice(criteria);
        let a = self.must(&args).await?;
        let mut out = Vec::new();
        for r in &a.untagged {
            if let Some(("SEARCH", rest)) =
                wire::untagged(r).as_ref().map(|(w, r)| (w.as_str(), *r))
            {
                out.extend(
                    String::from_utf8_lossy(rest)
                        .split_whitespace()
                        .filter_map(|n| n.parse::<u32>().ok()),
                );
            }
        }
        Ok(out)
    }

    /// Removes exactly these UIDs of the open folder.
    pub async fn expunge(&mut self, uids: &[u32]) -> io::Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.must(&[
            Tok::atom("UID"),
            Tok::atom("STORE"),
            Tok::atom(&set),
            Tok::atom("+FLAGS.SILENT"),
            Tok::List(vec![Tok::atom("\\Deleted")]),
        ])
        .await?;
        self.must(&[Tok::atom("UID"), Tok::atom("EXPUNGE"), Tok::atom(&set)])
            .await?;
        Ok(())
    }

    pub async fn logout(mut self) {
        let _ = self.run(&[Tok::atom("LOGOUT")]).await;
    }
}

/// One FETCH response: its sequence number and items (names upper-cased).
pub(super) struct FetchRow {
    pub seq: u32,
    pub items: HashMap<String, Tok>,
}

impl FetchRow {
    pub fn uid(&self) -> Option<u32> {
        self.num("UID").map(|n| n as u32)
    }

    pub fn num(&self, name: &str) -> Option<u64> {
        std::str::from_utf8(self.items.get(name)?.text()?)
            .ok()?
            .parse()
            .ok()
    }

    /// The text of the first item whose name starts with `prefix` (`BODY[HEADER`).
    pub fn text_of(&self, prefix: &str) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .and_then(|(_, v)| v.text())
    }
}

pub(super) fn fetch_row(resp: &[u8]) -> Option<FetchRow> {
    let (seq, word, rest) = wire::numbered(resp)?;
    if word != "FETCH" {
        return None;
    }
    let items = wire::fetch_items(rest)?
        .into_iter()
        .map(|(k, v)| (k.text_lossy().to_ascii_uppercase(), v))
        .collect();
    Some(FetchRow { seq, items })
}
