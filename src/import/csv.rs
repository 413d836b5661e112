//! Reading CSV rows as a spreadsheet numbers them, and naming a place in them (row, column
//! letter and name) in messages.

use super::{ImportError, comment_safe, quoted};

pub(super) fn duplicate_message(address: &str, prev: u64) -> String {
    format!(
        "{} is already the destination address on row {prev}; each address may appear once: \
         remove or merge one of the rows",
        quoted(address)
    )
}

/// Spreadsheet column letters: A..Z, AA..
pub(super) fn column_letter(mut index: usize) -> String {
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

pub(super) fn column_label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => {
            format!("{} ({})", column_letter(index), comment_safe(name))
        }
        _ => column_letter(index),
    }
}

pub(super) fn check_address(address: &str) -> Result<(), String> {
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

pub(super) struct Row {
    /// Line number, which is the spreadsheet row since no field may span lines.
    pub(super) number: u64,
    /// Decoded, untrimmed: passwords keep their spaces.
    pub(super) fields: Vec<String>,
}

pub(super) fn read_rows(input: &[u8], delimiter: u8, file: &str) -> Result<Vec<Row>, ImportError> {
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
