//! The OVH Mail Migrator (OMM) "project mode" CSV: 10 columns separated by `;`, one row per
//! mailbox with both servers and both passwords.

use super::builder::{Builder, Side};
use super::csv::{check_address, column_label, duplicate_message, read_rows};
use super::server::{Server, ServerType, parse_pop3_server, parse_server};
use super::{ImportError, Imported, OmmOptions, quoted};

const OMM_COLUMNS: [&str; 10] = [
    "Source Type",
    "Source Server",
    "Source Login",
    "Source Password",
    "Destination Type",
    "Destination URL",
    "Destination Mail",
    "Destination Password",
    "Source Admin",
    "Destination Admin",
];

/// Imports an OVH Mail Migrator project CSV. `source_name` names the input in messages.
pub fn omm_csv(
    input: &[u8],
    source_name: &str,
    opts: &OmmOptions,
) -> Result<Imported, ImportError> {
    let err = |row: u64, col: Option<usize>, message: String| ImportError {
        file: source_name.to_string(),
        row: Some(row),
        column: col.map(|c| column_label(c, OMM_COLUMNS.get(c).copied())),
        message,
    };
    let rows = read_rows(input, b';', source_name)?;
    let mut b = Builder::new("omm-csv", source_name);
    for (index, row) in rows.iter().enumerate() {
        // The template's header names its first column "Source Type(IMAP/Exchange/POP)";
        // localized templates differ, but all say "type" there and no data row does.
        if index == 0 && row.fields[0].to_lowercase().contains("type") {
            continue;
        }
        let f = &row.fields;
        let n = row.number;
        let used = f.len() - f.iter().rev().take_while(|s| s.trim().is_empty()).count();
        if f.len() < 10 || used > 10 {
            return Err(err(
                n,
                None,
                format!(
                    "found {} columns, expected 10 ({}); separate columns with `;` and quote \
                     a value that contains `;` (\"like;this\")",
                    if f.len() < 10 { f.len() } else { used },
                    OMM_COLUMNS.join("; ")
                ),
            ));
        }
        let cell = |c: usize| f[c].trim();

        let source_type = cell(0);
        let source_kind = match source_type.to_ascii_lowercase().as_str() {
            "imap" => ServerType::Imap,
            "exchange" => ServerType::Exchange,
            "pop" | "pop3" => ServerType::Pop3,
            _ => {
                return Err(err(
                    n,
                    Some(0),
                    format!(
                        "unknown source type {}; write IMAP, Exchange or POP",
                        quoted(source_type)
                    ),
                ));
            }
        };
        let dest_type = cell(4);
        let dest_kind = match dest_type.to_ascii_lowercase().as_str() {
            "imap" => ServerType::Imap,
            "exchange" => ServerType::Exchange,
            _ => {
                return Err(err(
                    n,
                    Some(4),
                    format!(
                        "unknown destination type {}; write IMAP or Exchange",
                        quoted(dest_type)
                    ),
                ));
            }
        };

        if cell(1).is_empty() {
            return Err(err(
                n,
                Some(1),
                "the source server is empty; write its host name, e.g. imap.example.com".into(),
            ));
        }
        let source = if source_kind == ServerType::Pop3 {
            parse_pop3_server(cell(1))
        } else {
            parse_server(cell(1))
        }
        .map_err(|m| err(n, Some(1), m))?;
        // A server to connect to, or the OVHcloud service whose server the API names.
        let destination = if cell(5).is_empty() {
            match (&opts.dest_fallback, &opts.dest_ovh) {
                (Some(ep), _) => Ok(Server {
                    endpoint: ep.clone(),
                    web_url: false,
                }),
                (None, Some(ovh)) => Err(ovh),
                (None, None) => {
                    return Err(err(
                        n,
                        Some(5),
                        "the destination URL is empty: OMM guesses OVHcloud servers, the import \
                         needs the IMAP host; write it (ex3.mail.ovh.net for Exchange, \
                         pro1.mail.ovh.net for Email Pro, ssl0.ovh.net for MX Plan) or pass \
                         --dest-host, or name the OVHcloud service with --dest-ovh (its \
                         server is then read from the API at each run)"
                            .into(),
                    ));
                }
            }
        } else {
            Ok(parse_server(cell(5)).map_err(|m| err(n, Some(5), m))?)
        };

        let address = cell(6);
        check_address(address).map_err(|m| {
            err(
                n,
                Some(6),
                format!("{m}; write the full destination address, e.g. alice@example.com"),
            )
        })?;
        let login = cell(2);
        if login.is_empty() {
            return Err(err(
                n,
                Some(2),
                "the source login is empty; write the login, usually the full address".into(),
            ));
        }
        for c in [8, 9] {
            if !cell(c).is_empty() {
                return Err(err(
                    n,
                    Some(c),
                    "admin (delegation) logins are not supported: mailshift logs in to each \
                     mailbox itself; put the mailbox's own login and password in the row and \
                     leave this column empty"
                        .into(),
                ));
            }
        }

        let from = b.platform(Side::Source, &source, source_kind);
        let to = match &destination {
            Ok(server) => b.platform(Side::Destination, server, dest_kind),
            Err(ovh) => b.ovh_platform(ovh),
        };
        b.account(
            n,
            address,
            (from, Some(login.to_string()), &f[3]),
            (to, None, &f[7]),
        )
        .map_err(|prev| err(n, Some(6), duplicate_message(address, prev)))?;
    }
    Ok(b.finish())
}
