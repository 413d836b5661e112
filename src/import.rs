//! Imports of other tools' migration lists into a plan.
//!
//! Two formats: the OVH Mail Migrator (OMM) "project mode" CSV (10 columns, `;`) and the
//! Exchange Online IMAP migration CSV (`EmailAddress,UserName,Password[,UserRoot]`). Both
//! become a [`Plan`] built from the typed model, so the rendered YAML or TOML is always
//! well-formed. Passwords never reach the plan: each becomes an `{env: NAME}` reference,
//! and the values are handed back separately (as redacted [`Secret`]s) for the caller to
//! write to a secrets file if asked.
//!
//! Everything here is pure (bytes in, plan out) and must not panic on any input: the CLI
//! does the I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::plan::model::{
    Account, Credentials, ImapEndpoint, ManualSteps, MigrationOptions, Plan, Platform,
    PlatformKind, Security,
};
use crate::plan::secret::{EnvRef, Secret, SecretRef};

/// Where editors find the plan's JSON Schema; written on the first line of YAML output.
pub const SCHEMA_URL: &str =
    "https://raw.githubusercontent.com/mailshift/mailshift/main/schema/plan.schema.json";

/// A bad input: which file, row (1-based, header included, as a spreadsheet numbers it)
/// and column, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub row: Option<u64>,
    /// Spreadsheet letter and, when known, the column's name, e.g. `G (Destination Mail)`.
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ImportError {}

/// An environment variable the imported plan reads a password from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    /// Safe to print: whose password it is and where it came from, never the value.
    pub description: String,
    /// The file held a value for it (else the user must set it themselves).
    pub in_file: bool,
}

/// The result of an import: the plan, plus what the user needs to run it.
#[derive(Debug, Clone)]
pub struct Imported {
    pub plan: Plan,
    pub env_vars: Vec<EnvVar>,
    /// Values found in the file, by variable name, in row order.
    pub secrets: Vec<(String, Secret)>,
    /// Things the user should check, written as comments at the top of the plan.
    pub notes: Vec<String>,
    /// `mailshift import` subcommand that produced it, e.g. `omm-csv`.
    pub command: &'static str,
    pub source_name: String,
    /// Data rows read (header and blank rows excluded).
    pub rows: usize,
}

/// Settings for the OMM import that the file may leave out.
#[derive(Debug, Clone, Default)]
pub struct OmmOptions {
    /// IMAP server for rows whose destination URL is empty (OMM autodetects OVHcloud
    /// servers; mailshift needs to be told).
    pub dest_fallback: Option<ImapEndpoint>,
}

/// Settings for the Exchange Online import: its CSV names no server at all.
#[derive(Debug, Clone)]
pub struct ExoOptions {
    pub source: ImapEndpoint,
    pub destination: ImapEndpoint,
}

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
            "pop" | "pop3" => {
                return Err(err(
                    n,
                    Some(0),
                    "POP sources are not supported: mailshift reads the source over IMAP; \
                     if the server also offers IMAP, write IMAP here and its IMAP server in \
                     column B"
                        .into(),
                ));
            }
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
        let source = parse_server(cell(1)).map_err(|m| err(n, Some(1), m))?;
        let destination = if cell(5).is_empty() {
            match &opts.dest_fallback {
                Some(ep) => Server {
                    endpoint: ep.clone(),
                    web_url: false,
                },
                None => {
                    return Err(err(
                        n,
                        Some(5),
                        "the destination URL is empty: OMM guesses OVHcloud servers, mailshift \
                         needs the IMAP host; write it (ex3.mail.ovh.net for Exchange, \
                         pro1.mail.ovh.net for Email Pro, ssl0.ovh.net for MX Plan) or pass \
                         --dest-host"
                            .into(),
                    ));
                }
            }
        } else {
            parse_server(cell(5)).map_err(|m| err(n, Some(5), m))?
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
        let to = b.platform(Side::Destination, &destination, dest_kind);
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

/// An IMAP endpoint from command-line settings: `host` or `host:port`, the explicit port
/// winning, security defaulting to what the port implies (143: `starttls`, else `tls`).
pub fn endpoint(
    host: &str,
    port: Option<u16>,
    security: Option<Security>,
) -> Result<ImapEndpoint, String> {
    let server = parse_server(host.trim())?;
    let mut ep = server.endpoint;
    if let Some(p) = port {
        if p == 0 {
            return Err("port 0 is not a port; use e.g. 993 (TLS) or 143 (STARTTLS)".into());
        }
        ep.port = Some(p);
    }
    let port = ep.port;
    if let Some(s) = security {
        ep.security = s;
    } else if port == Some(143) {
        ep.security = Security::Starttls;
    }
    // Keep the file short: write the port only when it is not the security's default.
    if ep.port == Some(default_port(ep.security)) {
        ep.port = None;
    }
    Ok(ep)
}

/// The plan as YAML: schema line, provenance and notes as comments, then the document.
pub fn to_yaml(imported: &Imported) -> Result<String, ImportError> {
    let body = serde_saphyr::to_string(&imported.plan).map_err(|e| render_error(imported, e))?;
    let mut out = format!("# yaml-language-server: $schema={SCHEMA_URL}\n");
    out.push_str(&header_comment(imported));
    out.push_str(&body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The plan as TOML, with the same provenance comments as the YAML.
pub fn to_toml(imported: &Imported) -> Result<String, ImportError> {
    let body = toml::to_string(&imported.plan).map_err(|e| render_error(imported, e))?;
    Ok(format!("{}{body}", header_comment(imported)))
}

/// The found passwords as `NAME='value'` lines, for `set -a; . FILE; set +a`.
pub fn secrets_file_text(imported: &Imported) -> String {
    let mut out = format!(
        "# Passwords imported from {}; load with `set -a; . ./FILE; set +a`. Delete this file \
         when the migration is done.\n",
        comment_safe(&imported.source_name)
    );
    for (name, secret) in &imported.secrets {
        // Single quotes keep every byte literal in sh; a quote inside is closed, escaped, reopened.
        let value = secret.expose().replace('\'', r"'\''");
        out.push_str(&format!("{name}='{value}'\n"));
    }
    out
}

fn render_error(imported: &Imported, e: impl fmt::Display) -> ImportError {
    ImportError {
        file: imported.source_name.clone(),
        row: None,
        column: None,
        message: format!("cannot write the plan: {e} (a bug: please report it)"),
    }
}

fn header_comment(imported: &Imported) -> String {
    let accounts = imported.plan.accounts.len();
    let mut out = format!(
        "# Imported by `mailshift import {}` from {} ({} {}, {} {}).\n",
        imported.command,
        comment_safe(&imported.source_name),
        imported.rows,
        plural(imported.rows, "row", "rows"),
        accounts,
        plural(accounts, "account", "accounts"),
    );
    out.push_str(
        "# Passwords are not in this file: each is read from the environment variable it names.\n",
    );
    for note in &imported.notes {
        out.push_str(&format!("# Note: {}\n", comment_safe(note)));
    }
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// A comment ends at a line break; the file name is the user's and may hold one.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", comment_safe(s))
}

fn duplicate_message(address: &str, prev: u64) -> String {
    format!(
        "{} is already the destination address on row {prev}; each address may appear once: \
         remove or merge one of the rows",
        quoted(address)
    )
}

/// Spreadsheet column letters: A..Z, AA..
fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

fn column_label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => {
            format!("{} ({})", column_letter(index), comment_safe(name))
        }
        _ => column_letter(index),
    }
}

fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("the address is empty".into());
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(format!("{} has no `@`", quoted(address)));
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(format!("{} is not an address", quoted(address)));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{} contains a space", quoted(address)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading rows

struct Row {
    /// Line number, which is the spreadsheet row since no field may span lines.
    number: u64,
    /// Decoded, untrimmed: passwords keep their spaces.
    fields: Vec<String>,
}

fn read_rows(input: &[u8], delimiter: u8, file: &str) -> Result<Vec<Row>, ImportError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    check_quotes(input, delimiter).map_err(|(row, col)| ImportError {
        file: file.to_string(),
        row: Some(row),
        column: Some(column_letter(col)),
        message: "this quoted value has no closing quote `\"` on its line; close it, and \
                  write a quote inside a quoted value as two quotes (\"\")"
            .into(),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut rows = Vec::new();
    let mut lines = LineCounter {
        input,
        offset: 0,
        line: 1,
    };
    for record in reader.byte_records() {
        let record = record.map_err(|e| ImportError {
            file: file.to_string(),
            row: None,
            column: None,
            message: format!("cannot read the CSV: {e}"),
        })?;
        let number = lines.line_at(record.position().map_or(0, |p| p.byte()));
        let mut fields = Vec::with_capacity(record.len());
        for (c, field) in record.iter().enumerate() {
            let text = std::str::from_utf8(field).map_err(|_| ImportError {
                file: file.to_string(),
                row: Some(number),
                column: Some(column_letter(c)),
                message: "this value is not UTF-8 text; save the file as \"CSV UTF-8\"".into(),
            })?;
            fields.push(text.to_string());
        }
        // Spreadsheets export blank lines and rows of bare separators at the end.
        if fields.iter().all(|s| s.trim().is_empty()) {
            continue;
        }
        rows.push(Row { number, fields });
    }
    Ok(rows)
}

/// Line numbers by byte offset. csv's own `Position::line` lags by one after a CRLF (it
/// counts the `\n` as part of the next record), so rows are counted here, with `\r\n`,
/// `\n` and a lone `\r` each ending a line, as spreadsheets read them.
struct LineCounter<'a> {
    input: &'a [u8],
    offset: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The line of the first byte at or after `offset` that is not a line break (a record
    /// starts there: csv skips blank lines). Offsets must not decrease between calls.
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut target = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.input.len());
        while target < self.input.len() && matches!(self.input[target], b'\r' | b'\n') {
            target += 1;
        }
        while self.offset < target {
            if ends_line(self.input, self.offset) {
                self.line += 1;
            }
            self.offset += 1;
        }
        self.line
    }
}

/// Whether the byte at `i` ends a line (`\n`, or a `\r` not followed by `\n`).
fn ends_line(input: &[u8], i: usize) -> bool {
    match input[i] {
        b'\n' => true,
        b'\r' => input.get(i + 1) != Some(&b'\n'),
        _ => false,
    }
}

/// Finds a quoted field left open at a line break or at the end of the input, as
/// `(line, column index)` of its opening quote. The csv crate accepts both silently and
/// would swallow the following rows into one value; no column here holds a line break.
/// Follows csv-core's rules: a quote opens a field only at its start, `""` inside is a quote.
fn check_quotes(input: &[u8], delimiter: u8) -> Result<(), (u64, usize)> {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let (mut line, mut column) = (1u64, 0usize);
    let mut opened = (1u64, 0usize);
    for (i, &byte) in input.iter().enumerate() {
        let end_of_line = byte == b'\n' || byte == b'\r';
        match state {
            State::Quoted if end_of_line => return Err(opened),
            State::Quoted => {
                if byte == b'"' {
                    state = State::QuoteInQuoted;
                }
            }
            State::FieldStart if byte == b'"' => {
                opened = (line, column);
                state = State::Quoted;
            }
            State::QuoteInQuoted if byte == b'"' => state = State::Quoted,
            _ if byte == delimiter => {
                column += 1;
                state = State::FieldStart;
            }
            _ if end_of_line => {
                column = 0;
                state = State::FieldStart;
            }
            _ => state = State::Unquoted,
        }
        if ends_line(input, i) {
            line += 1;
        }
    }
    if state == State::Quoted {
        return Err(opened);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Servers

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerType {
    Imap,
    Exchange,
}

struct Server {
    endpoint: ImapEndpoint,
    /// The file gave a web address (OMM's Exchange rows give the EWS URL).
    web_url: bool,
}

fn default_port(security: Security) -> u16 {
    match security {
        Security::Tls => 993,
        Security::Starttls | Security::None => 143,
    }
}

/// Reads a server cell: `host`, `host:port`, or a URL (`imaps://`, `imap://`, `https://`).
fn parse_server(text: &str) -> Result<Server, String> {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, text),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{} looks like an address; this column is the server's host name, e.g. \
             imap.example.com",
            quoted(text)
        ));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:993`.
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{} has an unclosed `[`", quoted(text)))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("{} is not a host name", quoted(text))),
        }
    } else {
        match authority.split_once(':') {
            Some((host, p)) => (host, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host || (host.contains(':') && !authority.starts_with('[')) {
        return Err(format!(
            "{} is not a host name; write e.g. imap.example.com or imap.example.com:993",
            quoted(text)
        ));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => Some(p),
            _ => return Err(format!("{} has a bad port number", quoted(text))),
        },
    };
    let (security, port, web_url) = match scheme.as_deref() {
        None => (
            if port == Some(143) {
                Security::Starttls
            } else {
                Security::Tls
            },
            port,
            false,
        ),
        Some("imaps") => (Security::Tls, port, false),
        Some("imap") => (Security::Starttls, port, false),
        // A web URL's port is the web server's, not IMAP's.
        Some("https" | "http") => (Security::Tls, None, true),
        Some(other) => {
            return Err(format!(
                "{} has the scheme {}; write a host name, or an imaps://, imap:// or https:// \
                 URL",
                quoted(text),
                quoted(other)
            ));
        }
    };
    let port = port.filter(|&p| p != default_port(security));
    Ok(Server {
        endpoint: ImapEndpoint {
            host: host.to_lowercase(),
            port,
            security,
            ca_file: None,
            insecure_skip_verify: false,
            allow_plaintext: false,
            timeout: None,
        },
        web_url,
    })
}

/// The OVHcloud product a host belongs to, from OVHcloud's published server names.
fn ovh_product(host: &str) -> Option<PlatformKind> {
    let prefix = host
        .strip_suffix(".mail.ovh.net")
        .or_else(|| host.strip_suffix(".mail.ovh.ca"));
    match prefix {
        Some(p) if p.starts_with("ex") => Some(PlatformKind::OvhExchange),
        Some(p) if p.starts_with("pro") => Some(PlatformKind::OvhEmailPro),
        _ if matches!(host, "ssl0.ovh.net" | "ssl0.ovh.ca") => Some(PlatformKind::OvhMxPlan),
        _ => None,
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

// ---------------------------------------------------------------------------------------
// Building the plan

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Side {
    Source,
    Destination,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

struct Builder {
    command: &'static str,
    source_name: String,
    platforms: BTreeMap<String, Platform>,
    by_endpoint: HashMap<(Side, String, u16, u8), String>,
    notes: BTreeMap<String, BTreeSet<String>>,
    accounts: Vec<Account>,
    /// Lower-cased address → row, to name both rows of a duplicate.
    addresses: HashMap<String, u64>,
    env_names: HashSet<String>,
    env_vars: Vec<EnvVar>,
    secrets: Vec<(String, Secret)>,
}

impl Builder {
    fn new(command: &'static str, source_name: &str) -> Self {
        Builder {
            command,
            source_name: source_name.to_string(),
            platforms: BTreeMap::new(),
            by_endpoint: HashMap::new(),
            notes: BTreeMap::new(),
            accounts: Vec::new(),
            addresses: HashMap::new(),
            env_names: HashSet::new(),
            env_vars: Vec::new(),
            secrets: Vec::new(),
        }
    }

    /// The platform's name for this side and endpoint, added on first sight. Names are
    /// `side-host`, plus the port or security only when two endpoints share a host, so
    /// re-importing an edited file keeps the names the user may have referred to.
    fn platform(&mut self, side: Side, server: &Server, declared: ServerType) -> String {
        let ep = &server.endpoint;
        let security = match ep.security {
            Security::Tls => 0,
            Security::Starttls => 1,
            Security::None => 2,
        };
        let key = (side, ep.host.clone(), ep.effective_port(), security);
        let name = match self.by_endpoint.get(&key) {
            Some(name) => name.clone(),
            None => {
                let base = format!("{}-{}", side.as_str(), slug(&ep.host));
                let mut candidates = vec![base.clone(), format!("{base}-{}", ep.effective_port())];
                let sec = match ep.security {
                    Security::Tls => "tls",
                    Security::Starttls => "starttls",
                    Security::None => "plain",
                };
                candidates.push(format!("{base}-{}-{sec}", ep.effective_port()));
                let name = candidates
                    .into_iter()
                    .find(|c| !self.platforms.contains_key(c))
                    .unwrap_or_else(|| format!("{base}-{}", self.platforms.len() + 1));
                let mut imap = ep.clone();
                if imap.security == Security::None && !is_loopback(&imap.host) {
                    // The user asked for no encryption; the plan would be refused without this.
                    imap.allow_plaintext = true;
                    self.note(
                        &name,
                        format!(
                            "security is none: passwords cross the network in clear to {}",
                            imap.host
                        ),
                    );
                }
                self.platforms.insert(
                    name.clone(),
                    Platform {
                        kind: PlatformKind::Imap,
                        provider: None,
                        organization: None,
                        service: None,
                        mx_plan_api: None,
                        imap: Some(imap),
                        dav: None,
                    },
                );
                self.by_endpoint.insert(key, name.clone());
                name
            }
        };
        if let Some(kind) = ovh_product(&ep.host) {
            self.note(
                &name,
                format!(
                    "{} is OVHcloud {}; written as type imap, so account creation, aliases and \
                     the like are manual steps; to automate them, set type: {} with \
                     provider{} service",
                    ep.host,
                    match kind {
                        PlatformKind::OvhExchange => "Exchange",
                        PlatformKind::OvhEmailPro => "Email Pro",
                        _ => "MX Plan",
                    },
                    kind.as_str(),
                    if kind == PlatformKind::OvhExchange {
                        ", organization and"
                    } else {
                        " and"
                    },
                ),
            );
        } else if declared == ServerType::Exchange || server.web_url {
            self.note(
                &name,
                format!(
                    "the file {}; mailshift uses IMAP on {}:{}, which must be enabled there",
                    if server.web_url {
                        "gives a web URL"
                    } else {
                        "says Exchange"
                    },
                    ep.host,
                    ep.effective_port()
                ),
            );
        }
        name
    }

    fn note(&mut self, platform: &str, note: String) {
        self.notes
            .entry(platform.to_string())
            .or_default()
            .insert(note);
    }

    /// Adds an account; `(platform, login, password)` per side, an empty password meaning
    /// the file has none (the user sets the variable). A duplicate address errs with the
    /// row that had it first.
    fn account(
        &mut self,
        row: u64,
        address: &str,
        source: (String, Option<String>, &str),
        destination: (String, Option<String>, &str),
    ) -> Result<(), u64> {
        if let Some(&prev) = self.addresses.get(&address.to_lowercase()) {
            return Err(prev);
        }
        self.addresses.insert(address.to_lowercase(), row);
        let source_creds = self.credentials(row, address, Side::Source, source.1, source.2);
        let destination_creds = self.credentials(
            row,
            address,
            Side::Destination,
            destination.1,
            destination.2,
        );
        self.accounts.push(Account {
            address: address.to_string(),
            from: source.0,
            to: destination.0,
            rename_to: None,
            reset_provisional: false,
            source: source_creds,
            destination: destination_creds,
            content: None,
            folders: None,
            aliases: Vec::new(),
            redirections: Vec::new(),
            delegations: Vec::new(),
            options: MigrationOptions::default(),
        });
        Ok(())
    }

    fn credentials(
        &mut self,
        row: u64,
        address: &str,
        side: Side,
        login: Option<String>,
        password: &str,
    ) -> Credentials {
        let base = format!("MAILSHIFT_{}_{}", env_slug(address), side.as_str()).to_uppercase();
        // `a.b@x` and `a_b@x` share a slug; the later row gets a numbered name.
        let mut name = base.clone();
        let mut n = 2;
        while !self.env_names.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        let in_file = !password.is_empty();
        self.env_vars.push(EnvVar {
            name: name.clone(),
            description: format!(
                "{} password of {} (row {row}){}",
                side.as_str(),
                comment_safe(address),
                if in_file {
                    ""
                } else {
                    "; not in the file: set it yourself"
                }
            ),
            in_file,
        });
        if in_file {
            self.secrets.push((name.clone(), Secret::new(password)));
        }
        Credentials {
            login,
            password: Some(SecretRef::Env(EnvRef { env: name })),
            oauth2_token: None,
        }
    }

    fn finish(self) -> Imported {
        let notes = self
            .notes
            .into_iter()
            .flat_map(|(platform, notes)| {
                notes
                    .into_iter()
                    .map(move |n| format!("platform {platform}: {n}."))
            })
            .collect();
        Imported {
            rows: self.accounts.len(),
            plan: Plan {
                version: 1,
                state: None,
                allow_inline_secrets: false,
                manual_steps: ManualSteps::default(),
                providers: BTreeMap::new(),
                platforms: self.platforms,
                domains: Vec::new(),
                options: MigrationOptions::default(),
                accounts: self.accounts,
                groups: Vec::new(),
                external_contacts: Vec::new(),
                footers: Vec::new(),
            },
            env_vars: self.env_vars,
            secrets: self.secrets,
            notes,
            command: self.command,
            source_name: self.source_name,
        }
    }
}

/// `imap.example.com` → `imap-example-com`.
fn slug(host: &str) -> String {
    separated(host, '-', |c| c.to_ascii_lowercase())
}

/// `alice.smith@example.com` → `ALICE_SMITH_EXAMPLE_COM`: readable, and valid in any shell.
fn env_slug(address: &str) -> String {
    let s = separated(address, '_', |c| c.to_ascii_uppercase());
    if s.is_empty() { "ACCOUNT".into() } else { s }
}

/// Keeps ASCII letters and digits, joins the runs in between with one `sep`.
fn separated(s: &str, sep: char, case: impl Fn(char) -> char) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(case(c));
        } else if !out.is_empty() && !out.ends_with(sep) {
            out.push(sep);
        }
    }
    while out.ends_with(sep) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "\"Source Type(IMAP/Exchange/POP)\";Source Server url;Source Login/Mail;\
        Source Password;Destination Type;\"Destination Url(can be leaved empty if hosted by OVH)\";\
        Destination Mail;Destination Password;Source admin mail (delegation);\
        Destination Admin Mail (delegation)";

    fn omm(input: &str) -> Result<Imported, String> {
        omm_csv(input.as_bytes(), "in.csv", &OmmOptions::default()).map_err(|e| e.to_string())
    }

    fn exo_opts() -> ExoOptions {
        ExoOptions {
            source: endpoint("imap.old.example", None, None).unwrap(),
            destination: endpoint("ex3.mail.ovh.net", None, None).unwrap(),
        }
    }

    fn exo(input: &str) -> Result<Imported, String> {
        exo_csv(input.as_bytes(), "in.csv", &exo_opts()).map_err(|e| e.to_string())
    }

    /// (address, source login, source secret, destination secret) per account.
    fn summary(imported: &Imported) -> Vec<(String, String, String, String)> {
        let secret = |name: &Option<SecretRef>| match name {
            Some(SecretRef::Env(e)) => imported
                .secrets
                .iter()
                .find(|(n, _)| *n == e.env)
                .map_or(String::new(), |(_, s)| s.expose().to_string()),
            other => panic!("not an env reference: {other:?}"),
        };
        imported
            .plan
            .accounts
            .iter()
            .map(|a| {
                (
                    a.address.clone(),
                    a.source.login.clone().unwrap_or_default(),
                    secret(&a.source.password),
                    secret(&a.destination.password),
                )
            })
            .collect()
    }

    fn row(address: &str, source_password: &str) -> String {
        format!(
            "IMAP;imap.old.example;{address};{source_password};IMAP;imap.new.example;{address};d;;"
        )
    }

    /// Address, source login, source password, destination password.
    type Expected = (&'static str, &'static str, &'static str, &'static str);

    #[test]
    fn omm_accepts_real_world_files() {
        let alice = row("alice@example.com", "pw");
        let cases: Vec<(&str, String, Vec<Expected>)> = vec![
            (
                "header, LF",
                format!("{HEADER}\n{alice}\n"),
                vec![("alice@example.com", "alice@example.com", "pw", "d")],
            ),
            (
                "no header, no final newline",
                alice.clone(),
                vec![("alice@example.com", "alice@example.com", "pw", "d")],
            ),
            (
                "BOM, CRLF, blank and separator-only trailing rows",
                format!("\u{feff}{HEADER}\r\n{alice}\r\n\r\n;;;;;;;;;\r\n  \r\n"),
                vec![("alice@example.com", "alice@example.com", "pw", "d")],
            ),
            (
                "quoted fields with ; and doubled quotes; passwords keep their spaces",
                "IMAP;imap.old.example;\"a@x.org\";\"p;w\"\"d \";IMAP;imap.new.example;a@x.org;\" sp \";\"\";\"\"\n".into(),
                vec![("a@x.org", "a@x.org", "p;w\"d ", " sp ")],
            ),
            (
                "stray spaces around values, lower-case types, trailing empty columns",
                " imap ; imap.old.example ; bob ;pw; exchange ; https://ex3.mail.ovh.net/ews/exchange.asmx ; bob@example.com ;d; ; ;;\n".into(),
                vec![("bob@example.com", "bob", "pw", "d")],
            ),
            (
                "empty passwords are left for the user to set",
                "IMAP;imap.old.example;c@x.org;;IMAP;imap.new.example;c@x.org;;;\n".into(),
                vec![("c@x.org", "c@x.org", "", "")],
            ),
            (
                "lone CR line ends",
                format!("{HEADER}\r{alice}\r{}\r", row("b@x.org", "2")),
                vec![
                    ("alice@example.com", "alice@example.com", "pw", "d"),
                    ("b@x.org", "b@x.org", "2", "d"),
                ],
            ),
        ];
        for (name, input, expected) in cases {
            let imported = omm(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
                .collect();
            assert_eq!(summary(&imported), expected, "{name}");
            assert_eq!(imported.rows, imported.plan.accounts.len(), "{name}");
        }
    }

    #[test]
    fn omm_reports_bad_rows_with_file_row_column_and_fix() {
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "too few columns",
                format!("{HEADER}\n{}\nIMAP;a;b;c\n", row("a@x.org", "p")),
                "in.csv, row 3: found 4 columns, expected 10 (Source Type; Source Server; \
                 Source Login; Source Password; Destination Type; Destination URL; \
                 Destination Mail; Destination Password; Source Admin; Destination Admin); \
                 separate columns with `;` and quote a value that contains `;` (\"like;this\")",
            ),
            (
                "too many columns",
                format!("{};x\n", row("a@x.org", "p")),
                "in.csv, row 1: found 11 columns, expected 10",
            ),
            (
                "unknown source type",
                "SMTP;a;b;c;IMAP;e;f@x.org;g;;\n".into(),
                "in.csv, row 1, column A (Source Type): unknown source type \"SMTP\"; write \
                 IMAP, Exchange or POP",
            ),
            (
                "POP source",
                "POP;a;b;c;IMAP;e;f@x.org;g;;\n".into(),
                "in.csv, row 1, column A (Source Type): POP sources are not supported",
            ),
            (
                "unknown destination type",
                "IMAP;a;b;c;Gmail;e;f@x.org;g;;\n".into(),
                "in.csv, row 1, column E (Destination Type): unknown destination type \"Gmail\"",
            ),
            (
                "empty address",
                format!("{HEADER}\r\nIMAP;a;b;c;IMAP;e; ;g;;\r\n"),
                "in.csv, row 2, column G (Destination Mail): the address is empty; write the \
                 full destination address, e.g. alice@example.com",
            ),
            (
                "address without @",
                "IMAP;a;b;c;IMAP;e;alice;g;;\n".into(),
                "in.csv, row 1, column G (Destination Mail): \"alice\" has no `@`; write the \
                 full destination address, e.g. alice@example.com",
            ),
            (
                "unterminated quote at the end",
                format!("{}\nIMAP;a;\"b;c;IMAP;e;f@x.org;g;;", row("a@x.org", "p")),
                "in.csv, row 2, column C: this quoted value has no closing quote `\"` on its \
                 line; close it, and write a quote inside a quoted value as two quotes (\"\")",
            ),
            (
                "unterminated quote swallowing the next rows",
                format!(
                    "{HEADER}\n{}\nIMAP;a;b;\"c;IMAP;e;f@x.org;g;;\n{}\n",
                    row("a@x.org", "p"),
                    row("z@x.org", "\"q\"")
                ),
                "in.csv, row 3, column D: this quoted value has no closing quote",
            ),
            (
                "duplicate destination address, in another case",
                format!(
                    "{HEADER}\n{}\n{}\n{}\n",
                    row("a@x.org", "p"),
                    row("b@x.org", "p"),
                    row("A@X.org", "p")
                ),
                "in.csv, row 4, column G (Destination Mail): \"A@X.org\" is already the \
                 destination address on row 2; each address may appear once: remove or merge \
                 one of the rows",
            ),
            (
                "empty destination URL",
                "IMAP;a;b;c;Exchange;;f@x.org;g;;\n".into(),
                "in.csv, row 1, column F (Destination URL): the destination URL is empty",
            ),
            (
                "address in the server column",
                "IMAP;bob@x.org;b;c;IMAP;e;f@x.org;g;;\n".into(),
                "in.csv, row 1, column B (Source Server): \"bob@x.org\" looks like an address",
            ),
            (
                "bad port",
                "IMAP;imap.x.org:99999;b;c;IMAP;e;f@x.org;g;;\n".into(),
                "in.csv, row 1, column B (Source Server): \"imap.x.org:99999\" has a bad port",
            ),
            (
                "admin delegation",
                "IMAP;a;b;c;IMAP;e;f@x.org;g;admin@x.org;\n".into(),
                "in.csv, row 1, column I (Source Admin): admin (delegation) logins are not \
                 supported",
            ),
        ];
        for (name, input, expected) in cases {
            let err = omm(&input)
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted"));
            assert!(
                err.starts_with(expected),
                "{name}:\n  got  {err}\n  want {expected}"
            );
        }
        let latin1 = b"IMAP;a;b;\xe9t\xe9;IMAP;e;f@x.org;g;;\n";
        let err = omm_csv(latin1, "in.csv", &OmmOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "in.csv, row 1, column D: this value is not UTF-8 text; save the file as \"CSV UTF-8\""
        );
    }

    #[test]
    fn omm_platforms_are_named_by_side_and_host_and_shared() {
        let input = format!(
            "{}\nIMAP;imap.old.example:143;u;p;Exchange;https://ex3.mail.ovh.net:443/ews/exchange.asmx;x@y.org;d;;\n\
             IMAP;imap.old.example;u2;p;IMAP;imap.new.example;z@y.org;d;;\n",
            row("w@y.org", "p")
        );
        let imported = omm(&input).unwrap();
        let names: Vec<_> = imported.plan.platforms.keys().cloned().collect();
        assert_eq!(
            names,
            [
                "destination-ex3-mail-ovh-net",
                "destination-imap-new-example",
                "source-imap-old-example",
                "source-imap-old-example-143",
            ]
        );
        let old143 = &imported.plan.platforms["source-imap-old-example-143"];
        let imap = old143.imap.as_ref().unwrap();
        assert_eq!((imap.port, imap.security), (None, Security::Starttls));
        let accounts: Vec<_> = imported
            .plan
            .accounts
            .iter()
            .map(|a| (a.from.as_str(), a.to.as_str()))
            .collect();
        assert_eq!(
            accounts,
            [
                ("source-imap-old-example", "destination-imap-new-example"),
                (
                    "source-imap-old-example-143",
                    "destination-ex3-mail-ovh-net"
                ),
                ("source-imap-old-example", "destination-imap-new-example"),
            ]
        );
        assert!(
            imported.notes[0].starts_with(
                "platform destination-ex3-mail-ovh-net: ex3.mail.ovh.net is OVHcloud Exchange"
            ),
            "{:?}",
            imported.notes
        );
    }

    #[test]
    fn omm_dest_fallback_fills_empty_urls_only() {
        let opts = OmmOptions {
            dest_fallback: Some(endpoint("pro1.mail.ovh.net", None, None).unwrap()),
        };
        let input = "IMAP;a.example;b;c;Exchange;;f@x.org;g;;\nIMAP;a.example;b;c;IMAP;e.example;h@x.org;g;;\n";
        let imported = omm_csv(input.as_bytes(), "in.csv", &opts).unwrap();
        let to: Vec<_> = imported
            .plan
            .accounts
            .iter()
            .map(|a| a.to.as_str())
            .collect();
        assert_eq!(
            to,
            ["destination-pro1-mail-ovh-net", "destination-e-example"]
        );
    }

    #[test]
    fn env_names_are_readable_and_unique() {
        let input = format!("{}\n{}\n", row("a.b@x.org", "1"), row("a_b@x.org", "2"));
        let names: Vec<_> = omm(&input)
            .unwrap()
            .env_vars
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(
            names,
            [
                "MAILSHIFT_A_B_X_ORG_SOURCE",
                "MAILSHIFT_A_B_X_ORG_DESTINATION",
                "MAILSHIFT_A_B_X_ORG_SOURCE_2",
                "MAILSHIFT_A_B_X_ORG_DESTINATION_2",
            ]
        );
    }

    #[test]
    fn exo_reads_the_documented_columns() {
        let input = "\u{feff}emailaddress, UserName ,PASSWORD,UserRoot\r\n\
                     terrya@contoso.edu,terry.adams,\"1091,Dart\"\"\",\r\n\
                     annb@contoso.edu,ann.beebe,,\r\n\r\n";
        let imported = exo(input).unwrap();
        assert_eq!(
            summary(&imported),
            [
                (
                    "terrya@contoso.edu".into(),
                    "terry.adams".into(),
                    "1091,Dart\"".into(),
                    String::new()
                ),
                (
                    "annb@contoso.edu".into(),
                    "ann.beebe".into(),
                    String::new(),
                    String::new()
                ),
            ]
        );
        let dest_vars: Vec<_> = imported
            .env_vars
            .iter()
            .filter(|v| !v.in_file)
            .map(|v| v.description.as_str())
            .collect();
        assert_eq!(
            dest_vars,
            [
                "destination password of terrya@contoso.edu (row 2); not in the file: set it yourself",
                "source password of annb@contoso.edu (row 3); not in the file: set it yourself",
                "destination password of annb@contoso.edu (row 3); not in the file: set it yourself",
            ]
        );
    }

    #[test]
    fn exo_reports_bad_input() {
        let cases = [
            ("", "in.csv: the file is empty"),
            (
                "EmailAddress,UserName,Password,Department\n",
                "in.csv, row 1, column D (Department): unknown column \"Department\"; the header \
                 may name only EmailAddress, UserName, Password, UserRoot (the first three are \
                 required)",
            ),
            (
                "EmailAddress,Password\na@x.org,p\n",
                "in.csv, row 1: the header has no UserName column; the first row must be the \
                 header EmailAddress,UserName,Password",
            ),
            (
                "alice@x.org,alice,pw\n",
                "in.csv, row 1, column A (alice@x.org): unknown column \"alice@x.org\"",
            ),
            (
                "EmailAddress,UserName,Password,emailaddress\n",
                "in.csv, row 1, column D (emailaddress): EmailAddress is already column A",
            ),
            (
                "EmailAddress,UserName,Password\na@x.org,a\n",
                "in.csv, row 2: found 2 columns, expected 3 as in the header",
            ),
            (
                "EmailAddress,UserName,Password\nalice,a,p\n",
                "in.csv, row 2, column A (EmailAddress): \"alice\" has no `@`",
            ),
            (
                "EmailAddress,UserName,Password,UserRoot\na@x.org,admin,p,/users/a\n",
                "in.csv, row 2, column D (UserRoot): UserRoot (an admin login reaching every \
                 mailbox under a root folder) is not supported",
            ),
            (
                "Password,UserName,EmailAddress\np,a,a@x.org\nq,b,b@x.org\np,c,a@x.org\n",
                "in.csv, row 4, column C (EmailAddress): \"a@x.org\" is already the destination \
                 address on row 2",
            ),
            (
                "EmailAddress,UserName,Password\na@x.org,,p\n",
                "in.csv, row 2, column B (UserName): the user name is empty",
            ),
        ];
        for (input, expected) in cases {
            let err = exo(input)
                .err()
                .unwrap_or_else(|| panic!("accepted: {input:?}"));
            assert!(
                err.starts_with(expected),
                "\n  got  {err}\n  want {expected}"
            );
        }
    }

    #[test]
    fn endpoint_options() {
        let ep = endpoint("imap.x.org:143", None, None).unwrap();
        assert_eq!((ep.port, ep.security), (None, Security::Starttls));
        let ep = endpoint("imap.x.org", Some(1993), Some(Security::Tls)).unwrap();
        assert_eq!((ep.port, ep.security), (Some(1993), Security::Tls));
        let ep = endpoint("[::1]:10143", None, Some(Security::None)).unwrap();
        assert_eq!((ep.host.as_str(), ep.port), ("::1", Some(10143)));
        assert!(endpoint("imap x.org", None, None).is_err());
        assert!(endpoint("pop3://x.org", None, None).is_err());
    }

    #[test]
    fn plaintext_to_a_remote_host_is_allowed_and_noted() {
        let opts = ExoOptions {
            source: endpoint("imap.x.org", None, Some(Security::None)).unwrap(),
            destination: endpoint("localhost", None, Some(Security::None)).unwrap(),
        };
        let imported =
            exo_csv(b"EmailAddress,UserName,Password\na@x.org,a,p\n", "f", &opts).unwrap();
        let p = &imported.plan.platforms;
        assert!(
            p["source-imap-x-org"]
                .imap
                .as_ref()
                .unwrap()
                .allow_plaintext
        );
        assert!(
            !p["destination-localhost"]
                .imap
                .as_ref()
                .unwrap()
                .allow_plaintext
        );
        assert_eq!(
            imported.notes,
            [
                "platform source-imap-x-org: security is none: passwords cross the network in clear to imap.x.org."
            ]
        );
    }

    fn sample() -> Imported {
        let input = format!(
            "\u{feff}{HEADER}\r\n\
             IMAP;imap.old.example;alice@old.example;s3cret;Exchange;https://ex3.mail.ovh.net/ews/exchange.asmx;alice@example.com;n3w;\"\";\"\"\r\n\
             Exchange;https://mail.old.example/EWS/Exchange.asmx;DOMAIN\\bob;\"b;\"\"b\";IMAP;imaps://pro1.mail.ovh.net:993;bob@example.com;;;\r\n\
             IMAP;imap.old.example:143;yes;Pw-carol-1;IMAP;ssl0.ovh.net;\"carol+tag@example.com\";Pw-carol-2;;\r\n\r\n"
        );
        omm_csv(input.as_bytes(), "users.csv", &OmmOptions::default()).unwrap()
    }

    #[test]
    fn yaml_snapshot() {
        let imported = sample();
        let yaml = to_yaml(&imported).unwrap();
        for (_, secret) in &imported.secrets {
            assert!(!yaml.contains(secret.expose()), "a password leaked");
        }
        insta::assert_snapshot!(yaml);
    }

    #[test]
    fn yaml_and_toml_give_the_same_plan() {
        let imported = sample();
        let from_yaml: Plan = serde_saphyr::from_str(&to_yaml(&imported).unwrap()).unwrap();
        let from_toml: Plan = toml::from_str(&to_toml(&imported).unwrap()).unwrap();
        assert_eq!(from_yaml, imported.plan);
        assert_eq!(from_toml, imported.plan);
    }

    #[test]
    fn secrets_file_quotes_for_sh() {
        let text = secrets_file_text(&sample());
        assert!(
            text.contains("MAILSHIFT_BOB_EXAMPLE_COM_SOURCE='b;\"b'\n"),
            "{text}"
        );
        let imported = exo("EmailAddress,UserName,Password\na@x.org,a,it's\n").unwrap();
        assert!(secrets_file_text(&imported).ends_with("MAILSHIFT_A_X_ORG_SOURCE='it'\\''s'\n"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = omm_csv(&bytes, "f", &OmmOptions::default());
            let _ = exo_csv(&bytes, "f", &exo_opts());
        }

        /// Inputs close to valid ones reach the deep paths; what is accepted must render to
        /// YAML and TOML that read back as the same plan.
        #[test]
        fn near_valid_inputs_never_panic_and_round_trip(
            cells in proptest::collection::vec("[a-c@.;,\" :\r\n\u{e9}#'-]{0,6}|IMAP|Exchange|x@y\\.z|h\\.example", 0..40)
        ) {
            let omm_text = cells.join(";");
            let exo_text = format!("EmailAddress,UserName,Password\n{}", cells.join(","));
            for imported in [
                omm_csv(omm_text.as_bytes(), "f", &OmmOptions::default()),
                exo_csv(exo_text.as_bytes(), "f", &exo_opts()),
            ]
            .into_iter()
            .flatten()
            {
                let yaml: Plan = serde_saphyr::from_str(&to_yaml(&imported).unwrap()).unwrap();
                let toml: Plan = toml::from_str(&to_toml(&imported).unwrap()).unwrap();
                proptest::prop_assert_eq!(&yaml, &imported.plan);
                proptest::prop_assert_eq!(&toml, &imported.plan);
            }
        }

        /// Valid rows with any printable login and password: the plan must read back
        /// unchanged from both formats, and every password must survive quoting intact.
        #[test]
        fn odd_logins_and_passwords_round_trip(
            rows in proptest::collection::vec(("[a-z0-9.+_-]{1,6}", "\\PC{1,12}", "\\PC{1,12}"), 1..5)
        ) {
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let mut omm_text = String::new();
            for (i, (local, login, password)) in rows.iter().enumerate() {
                omm_text.push_str(&format!(
                    "IMAP;h.example;{};{};IMAP;d.example;{local}{i}@x.example;{};;\r\n",
                    quote(login),
                    quote(password),
                    quote(password),
                ));
            }
            // A login of only spaces is rightly refused; everything else must pass.
            if let Ok(imported) = omm_csv(omm_text.as_bytes(), "f", &OmmOptions::default()) {
                let yaml: Plan = serde_saphyr::from_str(&to_yaml(&imported).unwrap()).unwrap();
                let toml: Plan = toml::from_str(&to_toml(&imported).unwrap()).unwrap();
                proptest::prop_assert_eq!(&yaml, &imported.plan);
                proptest::prop_assert_eq!(&toml, &imported.plan);
                let found: Vec<_> = imported.secrets.iter().map(|(_, s)| s.expose()).collect();
                let given: Vec<_> = rows.iter().flat_map(|r| [r.2.as_str(), r.2.as_str()]).collect();
                proptest::prop_assert_eq!(found, given);
            } else {
                proptest::prop_assert!(rows.iter().any(|r| r.1.trim().is_empty()));
            }
        }
    }
}
