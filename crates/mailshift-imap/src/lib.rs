//! mailshift's mail engine: IMAP to IMAP transfer, exactly once and resumably. Name encoding
//! (`mutf7` for what names mean, `names` for how they travel on the wire), the folder mapping
//! (`folders`), one connection (`session`), the exactly-once copy of an account (`copy`) and
//! the records it keeps through its caller's [`journal::Journal`], the matching of messages a
//! destination already holds (`adopt`), and what `plan --refresh` says of a copy before it
//! runs (`preview`).
//!
//! A layer of its own: it knows no plan, no state file and no product error type. Its caller
//! gives it an [`session::Target`] per side (endpoint and login, secrets already read), a
//! [`folders::FolderRules`], [`copy::CopyOptions`] and a [`journal::Journal`]; it hands back
//! reports and errors carrying an [`ErrorKind`], and speaks to people only through
//! [`copy::Progress`]. (mailshift's side of that is `apply::imap_adapter` and
//! `apply::journal`; the product still names this crate `mailshift::transfer::imap`.)

pub mod adopt;
pub mod broker;
pub mod copy;
pub mod error;
pub mod files;
pub mod folders;
pub mod journal;
pub mod mutf7;
pub mod names;
pub mod pop3;
pub mod preview;
pub mod session;
pub mod sieve;
pub mod sizing;

pub use error::ErrorKind;
use session::{Imap, ImapError, Target};

/// "1 message", "2 messages": the engine's notes and errors count things this way.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Bytes held by every selectable folder of a mailbox (the sum of its messages' sizes): what a
/// destination with a per-account limit would have to take.
pub async fn mailbox_bytes(target: &Target) -> Result<u64, ImapError> {
    let mut imap = Imap::connect(target).await?;
    let mut total = 0u64;
    for folder in imap.list().await? {
        let unselectable = folder.attributes.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        });
        if unselectable {
            continue;
        }
        let info = imap.open(&folder.name, false).await?;
        if info.exists == 0 {
            continue;
        }
        total += imap
            .fetch_meta("1:*", None)
            .await?
            .iter()
            .map(|m| u64::from(m.size))
            .sum::<u64>();
    }
    imap.logout().await;
    Ok(total)
}
