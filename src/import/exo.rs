//! The Exchange Online IMAP migration CSV (`EmailAddress,UserName,Password[,UserRoot]`): the
//! mailboxes only; both servers come from the command line.

use super::builder::{Builder, Side};
use super::csv::{check_address, column_label, column_letter, duplicate_message, read_rows};
use super::server::{Server, ServerType};
use super::{ExoOptions, ImportError, Imported, quoted};

/// Imports an Exchange Online IMAP migration CSV. The file names the mailboxes only; the
/// servers come from `opts`.
pub fn exo_csv(
    input: &[u8],
    source_name: &str,
    opts: &ExoOptions,
) -> Result<Imported, ImportError> {
    const KNOWN: [&str; 4] = ["EmailAddress", "UserName", "Password", "UserRoot"];
    let rows = read_rows(input, b',', source_name)?;
    let Some(header) = rows.first() else {
        return Err(ImportError {
            file: source_name.to_string(),
            row: None,
            column: None,
            message: "the file is empty; it needs the header EmailAddress,UserName,Password \
                      and one row per mailbox"
                .into(),
        });
    };
    let err = |row: u64, col: Option<usize>, message: String| ImportError {
        file: source_name.to_string(),
        row: Some(row),
        column: col.map(|c| column_label(c, header.fields.get(c).map(|s| s.trim()))),
        message,
    };

    // Column index of each known name; headers are matched case-insensitively because
    // hand-made files vary ("emailaddress", "Username").
    let mut index: [Option<usize>; 4] = [None; 4];
    let width = header.fields.len()
        - header
            .fields
            .iter()
            .rev()
            .take_while(|s| s.trim().is_empty())
            .count();
    for (c, name) in header.fields[..width].iter().enumerate() {
        let name = name.trim();
        let Some(k) = KNOWN.iter().position(|k| k.eq_ignore_ascii_case(name)) else {
            return Err(err(
                header.number,
                Some(c),
                format!(
                    "unknown column {}; the header may name only {} (the first three are \
                     required)",
                    quoted(name),
                    KNOWN.join(", ")
                ),
            ));
        };
        if let Some(first) = index[k] {
            return Err(err(
                header.number,
                Some(c),
                format!(
                    "{} is already column {}; remove one of them",
                    KNOWN[k],
                    column_letter(first)
                ),
            ));
        }
        index[k] = Some(c);
    }
    let mut required = [0usize; 3];
    for k in 0..3 {
        required[k] = index[k].ok_or_else(|| {
            err(
                header.number,
                None,
                format!(
                    "the header has no {} column; the first row must be the header \
                     EmailAddress,UserName,Password",
                    KNOWN[k]
                ),
            )
        })?;
    }
    let [c_address, c_login, c_password] = required;

    let mut b = Builder::new("exo-csv", source_name);
    let source = Server {
        endpoint: opts.source.clone(),
        web_url: false,
    };
    let destination = Server {
        endpoint: opts.destination.clone(),
        web_url: false,
    };
    for row in &rows[1..] {
        let f = &row.fields;
        let n = row.number;
        let used = f.len() - f.iter().rev().take_while(|s| s.trim().is_empty()).count();
        if f.len() < width || used > width {
            return Err(err(
                n,
                None,
                format!(
                    "found {} columns, expected {width} as in the header; quote a value that \
                     contains `,` (\"like,this\")",
                    if f.len() < width { f.len() } else { used }
                ),
            ));
        }
        if let Some(c) = index[3]
            && !f[c].trim().is_empty()
        {
            return Err(err(
                n,
                Some(c),
                "UserRoot (an admin login reaching every mailbox under a root folder) is not \
                 supported: mailshift logs in to each mailbox itself; put the mailbox's own \
                 login and password in UserName and Password and leave UserRoot empty"
                    .into(),
            ));
        }
        let address = f[c_address].trim();
        check_address(address).map_err(|m| {
            err(
                n,
                Some(c_address),
                format!("{m}; write the mailbox's full address, e.g. alice@example.com"),
            )
        })?;
        let login = f[c_login].trim();
        if login.is_empty() {
            return Err(err(
                n,
                Some(c_login),
                "the user name is empty; write the source IMAP login".into(),
            ));
        }
        let from = b.platform(Side::Source, &source, ServerType::Imap);
        let to = b.platform(Side::Destination, &destination, ServerType::Imap);
        b.account(
            n,
            address,
            (from, Some(login.to_string()), &f[c_password]),
            (to, None, ""),
        )
        .map_err(|prev| err(n, Some(c_address), duplicate_message(address, prev)))?;
    }
    Ok(b.finish())
}
