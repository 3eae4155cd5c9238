//! Batch recipient lists from spreadsheets (.xls and .xlsx), with limits and a
//! per-row error report.
//!
//! Uploads are hostile input. An .xlsx is read here as a stream: the archive
//! is opened with `zip`, each part is inflated through a counting reader with a
//! hard cap (the sizes written in the archive are never trusted), and the
//! sheet's XML is read cell by cell (never a dense grid), with the declared
//! dimension, cell positions, row, column and cell limits checked as it goes.
//! An .xls goes to calamine after [`xls_guard`] has walked its container and
//! records and refused anything that would make calamine allocate more than
//! the file justifies. The service runs all of this in a child process under
//! memory and CPU limits (`upload_worker`), so a parser bug still cannot take
//! it down.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufReader, Cursor, Read};

use calamine::{Data, Reader};
use herald_core::address::AddressRule;
use herald_core::directory::ListEntry;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

#[cfg(test)]
#[path = "../tests/support/sheets.rs"]
mod sheets;

#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based spreadsheet row.
    pub row: usize,
    /// The column's header, when one cell is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub column: Option<String>,
    /// Why, in the language of the request.
    pub message: String,
    /// The message's key and arguments, from the parser to the answer (which renders and drops them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub msg: Option<herald_core::i18n::Msg>,
}

impl RowError {
    pub fn new(row: usize, column: Option<String>, msg: herald_core::i18n::Msg) -> Self {
        Self { row, column, message: msg.to_string(), msg: Some(msg) }
    }
}

/// A parsed recipient list.
#[derive(Debug, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Parsed {
    pub rows: Vec<ListEntry>,
    /// The 1-based spreadsheet row of each entry of `rows`.
    #[serde(default)]
    pub lines: Vec<usize>,
    /// The recipient column's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub to_column: Option<String>,
    /// Rows whose recipient also appears on an earlier row; left out of `rows`.
    #[serde(default)]
    pub duplicates: Vec<Duplicate>,
    pub errors: Vec<RowError>,
}

/// A row left out because its recipient is already on the list.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Duplicate {
    /// 1-based spreadsheet row.
    pub row: usize,
    pub to: String,
    /// The row it repeats.
    pub first_row: usize,
}

impl Parsed {
    /// Check every recipient against the channel's address rule (`None`: no
    /// channel named; only exact repeats are found): a recipient that is not
    /// one becomes a row error naming the row, the column and why; a
    /// recipient already listed (in any spelling, e.g. `+86…` and the bare
    /// mainland number) is left out and reported.
    pub fn vet(&mut self, rule: Option<&AddressRule>) {
        let column = self.to_column.clone();
        let mut first: HashMap<String, usize> = HashMap::new();
        let (mut rows, mut lines) = (Vec::with_capacity(self.rows.len()), Vec::with_capacity(self.rows.len()));
        let entries = std::mem::take(&mut self.rows).into_iter();
        let numbers = std::mem::take(&mut self.lines).into_iter().map(Some).chain(std::iter::repeat(None));
        for (entry, line) in entries.zip(numbers) {
            let row = line.unwrap_or(0);
            let key = match rule {
                Some(rule) => match rule.check_msg(&entry.to) {
                    Ok(()) => rule.canonical(&entry.to),
                    Err(why) => {
                        self.errors.push(RowError::new(
                            row,
                            column.clone(),
                            herald_core::msg!("address.bad", to = format!("{:?}", entry.to)).nested("why", why),
                        ));
                        continue;
                    }
                },
                None => entry.to.clone(),
            };
            if let Some(&first_row) = first.get(&key) {
                self.duplicates.push(Duplicate { row, to: entry.to, first_row });
                continue;
            }
            first.insert(key, row);
            rows.push(entry);
            lines.push(row);
        }
        self.errors.sort_by_key(|e| e.row);
        (self.rows, self.lines) = (rows, lines);
    }

    /// The row errors' messages in `lang`.
    pub fn localize(&mut self, lang: herald_core::i18n::Lang) {
        for e in &mut self.errors {
            if let Some(m) = e.msg.take() {
                e.message = m.render(lang);
            }
        }
    }
}

/// Widest sheet accepted (also the .xls format's own width: column IV).
pub const MAX_COLUMNS: usize = 256;
/// Excel's last row; a cell below it is a forged file.
pub const MAX_SHEET_ROW: u64 = 1_048_576;
/// Excel's longest cell text.
const MAX_CELL_CHARS: usize = 32_767;
/// Most values kept (recipients, names and variables together): bounds the result's memory.
pub const MAX_CELLS: usize = 2_500_000;
/// Most bytes inflated from one .xlsx, all parts together, and per part.
const MAX_UNZIPPED: u64 = 256 << 20;
const MAX_SHEET_XML: u64 = 192 << 20;
const MAX_SHARED_XML: u64 = 64 << 20;
const MAX_PART_XML: u64 = 4 << 20;
/// Most entries in the shared-string table.
const MAX_SHARED_STRINGS: usize = 2_000_000;

const TO: &[&str] = &["to", "收件人", "手机", "手机号", "手机号码", "邮箱", "email", "e-mail", "mobile", "phone", "address", "地址"];
const NAME: &[&str] = &["name", "姓名", "名字"];

/// Parse the first sheet: a header row naming a `to` column (or 收件人/手机/邮箱…),
/// an optional `name` column; every other column becomes a variable.
pub fn parse(file_name: &str, bytes: Vec<u8>, max_rows: usize) -> Result<Parsed, SheetError> {
    let kind = kind(file_name)?;
    let mut rows = Rows { max_rows, header: None, out: Parsed::default(), cells: 0 };
    match kind {
        Kind::Xlsx => xlsx(&bytes, &mut rows)?,
        Kind::Xls => xls(bytes, &mut rows)?,
    }
    if rows.header.is_none() {
        return Err(SheetError::Empty);
    }
    Ok(rows.out)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Xls,
    Xlsx,
}

impl Kind {
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Xls => "xls",
            Kind::Xlsx => "xlsx",
        }
    }
}

/// Why a spreadsheet is refused as a whole (a row's fault is a [`RowError`]).
/// It crosses from the parser's child process as its message ([`SheetError::msg`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SheetError {
    /// The file name is not an .xls or .xlsx.
    NotSpreadsheet,
    /// No row has a value.
    Empty,
    /// The header row names no recipient column.
    NoRecipientColumn,
    /// The workbook has no sheet.
    NoSheet,
    /// An .xls with macros.
    Macros,
    TooWide {
        max: usize,
    },
    RowTooWide {
        row: u64,
        max: usize,
    },
    BelowLastRow {
        cell: String,
        max: u64,
    },
    BeyondLastColumn {
        cell: String,
        max: usize,
    },
    /// One part of an .xlsx inflates past its cap.
    PartTooLarge {
        part: String,
        max: u64,
    },
    /// All parts of an .xlsx together inflate past the cap.
    WorkbookTooLarge {
        max: u64,
    },
    TooManySharedStrings {
        max: usize,
    },
    SharedStringTooLong {
        index: usize,
        max: usize,
    },
    CellTooLong {
        cell: String,
        max: usize,
    },
    GridTooLarge {
        rows: u64,
        columns: u64,
        max: u64,
    },
    TextTooLarge {
        max: u64,
    },
    /// Not a readable file of its kind (`xls`, `xlsx`); the detail is the
    /// parser's own (technical) words.
    Damaged {
        kind: &'static str,
        detail: String,
    },
}

impl SheetError {
    pub fn xls(detail: impl std::fmt::Display) -> Self {
        Self::Damaged { kind: "xls", detail: detail.to_string() }
    }
    pub fn xlsx(detail: impl std::fmt::Display) -> Self {
        Self::Damaged { kind: "xlsx", detail: detail.to_string() }
    }

    /// What the user reads.
    pub fn msg(&self) -> herald_core::i18n::Msg {
        use herald_core::msg;
        match self {
            Self::NotSpreadsheet => msg!("sheet.not_spreadsheet"),
            Self::Empty => msg!("sheet.empty"),
            Self::NoRecipientColumn => msg!("sheet.no_recipient_column"),
            Self::NoSheet => msg!("sheet.no_sheet"),
            Self::Macros => msg!("sheet.macros"),
            Self::TooWide { max } => msg!("sheet.too_wide", max = max),
            Self::RowTooWide { row, max } => msg!("sheet.row_too_wide", row = row, max = max),
            Self::BelowLastRow { cell, max } => msg!("sheet.below_last_row", cell = cell, max = max),
            Self::BeyondLastColumn { cell, max } => msg!("sheet.beyond_last_column", cell = cell, max = max),
            Self::PartTooLarge { part, max } => msg!("sheet.part_too_large", part = part, max = max),
            Self::WorkbookTooLarge { max } => msg!("sheet.workbook_too_large", max = max),
            Self::TooManySharedStrings { max } => msg!("sheet.too_many_shared_strings", max = max),
            Self::SharedStringTooLong { index, max } => msg!("sheet.shared_string_too_long", index = index, max = max),
            Self::CellTooLong { cell, max } => msg!("sheet.cell_too_long", cell = cell, max = max),
            Self::GridTooLarge { rows, columns, max } => msg!("sheet.grid_too_large", rows = rows, columns = columns, max = max),
            Self::TextTooLarge { max } => msg!("sheet.text_too_large", max = max),
            Self::Damaged { kind, detail } => msg!("sheet.damaged", kind = kind, detail = detail),
        }
    }
}

/// The kind of spreadsheet a file name promises.
pub fn kind(file_name: &str) -> Result<Kind, SheetError> {
    let lower = file_name.to_lowercase();
    if lower.ends_with(".xlsx") {
        Ok(Kind::Xlsx)
    } else if lower.ends_with(".xls") {
        Ok(Kind::Xls)
    } else {
        Err(SheetError::NotSpreadsheet)
    }
}

struct Header {
    names: Vec<String>,
    to: usize,
    name: Option<usize>,
}

/// Turns sheet rows, as they are read, into recipients and row errors.
struct Rows {
    max_rows: usize,
    header: Option<Header>,
    out: Parsed,
    cells: usize,
}

impl Rows {
    /// One sheet row: its 1-based number and its cells (column, text), columns
    /// below [`MAX_COLUMNS`]. `Ok(false)`: no more rows are wanted.
    fn row(&mut self, line: u64, cells: &[(usize, String)]) -> Result<bool, SheetError> {
        if cells.iter().all(|(_, t)| t.is_empty()) {
            return Ok(true);
        }
        let Some(h) = &self.header else {
            let width = cells.iter().map(|(c, _)| c + 1).max().unwrap_or(0);
            let mut names = vec![String::new(); width];
            for (c, t) in cells {
                names[*c] = t.to_lowercase();
            }
            let to = names.iter().position(|h| TO.contains(&h.as_str())).ok_or(SheetError::NoRecipientColumn)?;
            let name = names.iter().position(|h| NAME.contains(&h.as_str()));
            self.out.to_column = Some(names[to].clone());
            self.header = Some(Header { names, to, name });
            return Ok(true);
        };
        let line = usize::try_from(line).unwrap_or(usize::MAX);
        if self.out.rows.len() >= self.max_rows {
            self.out.errors.push(RowError::new(line, None, herald_core::msg!("excel.too_many_rows", max = self.max_rows)));
            return Ok(false);
        }
        if self.cells >= MAX_CELLS {
            self.out.errors.push(RowError::new(line, None, herald_core::msg!("excel.too_many_cells", max = MAX_CELLS)));
            return Ok(false);
        }
        let mut row = vec![""; h.names.len()];
        for (c, t) in cells {
            if let Some(slot) = row.get_mut(*c) {
                *slot = t;
            }
        }
        let to = row[h.to];
        if to.is_empty() {
            self.out.errors.push(RowError::new(line, Some(h.names[h.to].clone()), herald_core::msg!("excel.empty_recipient")));
            return Ok(true);
        }
        if to.len() > 512 || to.contains(char::is_whitespace) {
            self.out.errors.push(RowError::new(line, Some(h.names[h.to].clone()), herald_core::msg!("excel.not_address", to = format!("{to:?}"))));
            return Ok(true);
        }
        let mut variables = serde_json::Map::new();
        for (j, name) in h.names.iter().enumerate() {
            if j != h.to && Some(j) != h.name && !name.is_empty() {
                variables.insert(name.clone(), row[j].into());
            }
        }
        let name = h.name.map(|j| row[j]).filter(|n| !n.is_empty()).map(str::to_string);
        self.cells += 2 + variables.len();
        self.out.rows.push(ListEntry { to: to.to_string(), name, channel: None, variables });
        self.out.lines.push(line);
        Ok(true)
    }
}

/// A number as a list wants it: phone numbers typed into Excel are floats.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f}") }
}

// ---------------------------------------------------------------- .xls

fn cell_text(c: &Data) -> String {
    match c {
        Data::Empty => String::new(),
        Data::Float(f) => number_text(*f),
        other => other.to_string().trim().to_string(),
    }
}

fn xls(bytes: Vec<u8>, rows: &mut Rows) -> Result<(), SheetError> {
    xls_guard::check(&bytes)?;
    // calamine indexes malformed records without checking: a panic there is a refused file.
    let read = std::panic::catch_unwind(move || {
        let mut book = calamine::Xls::new(Cursor::new(bytes)).map_err(SheetError::xls)?;
        let sheet = book.sheet_names().first().cloned().ok_or(SheetError::NoSheet)?;
        book.worksheet_range(&sheet).map_err(|e| SheetError::xls(format!("sheet {sheet}: {e}")))
    });
    let range = read.map_err(|_| SheetError::xls("the reader failed on a malformed record"))??;
    let Some((top, left)) = range.start() else { return Ok(()) };
    if left as usize + range.width() > MAX_COLUMNS {
        return Err(SheetError::TooWide { max: MAX_COLUMNS });
    }
    let mut cells = Vec::new();
    for (i, row) in range.rows().enumerate() {
        cells.clear();
        cells.extend(row.iter().enumerate().map(|(j, c)| (left as usize + j, cell_text(c))));
        if !rows.row(u64::from(top) + i as u64 + 1, &cells)? {
            break;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- .xlsx

/// Inflates through a hard cap, whatever the archive says the part's size is;
/// also draws on the budget shared by all parts of one file.
struct Capped<'a, R> {
    inner: R,
    left: u64,
    budget: &'a Cell<u64>,
    /// Set when the cap is hit, with the reason the user sees.
    over: &'a Cell<Option<SheetError>>,
    part: String,
    cap: u64,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(64 * 1024);
        let n = self.inner.read(&mut buf[..want])?;
        let n64 = n as u64;
        let why = if n64 > self.left {
            Some(SheetError::PartTooLarge { part: self.part.clone(), max: self.cap })
        } else if n64 > self.budget.get() {
            Some(SheetError::WorkbookTooLarge { max: MAX_UNZIPPED })
        } else {
            None
        };
        if let Some(why) = why {
            self.over.set(Some(why.clone()));
            return Err(std::io::Error::other(why.msg().to_string()));
        }
        self.left -= n64;
        self.budget.set(self.budget.get() - n64);
        Ok(n)
    }
}

type Zip<'b> = zip::ZipArchive<Cursor<&'b [u8]>>;

struct Book<'b> {
    zip: Zip<'b>,
    budget: Cell<u64>,
    over: Cell<Option<SheetError>>,
}

type Xml<'a, 'b> = quick_xml::Reader<BufReader<Capped<'a, zip::read::ZipFile<'a, Cursor<&'b [u8]>>>>>;

impl<'b> Book<'b> {
    fn open(bytes: &'b [u8]) -> Result<Self, SheetError> {
        check_central_directory(bytes)?;
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(SheetError::xlsx)?;
        Ok(Book { zip, budget: Cell::new(MAX_UNZIPPED), over: Cell::new(None) })
    }

    /// Read a part's XML with `read`, inflated through the cap; None when the
    /// archive has no such part. When the cap stopped it, the cap's reason is the error.
    fn with_part<T>(&mut self, name: &str, cap: u64, read: impl FnOnce(&mut Xml<'_, 'b>) -> Result<T, SheetError>) -> Result<Option<T>, SheetError> {
        let Some(index) = self.zip.index_for_name(name) else { return Ok(None) };
        let file = self.zip.by_index(index).map_err(|e| SheetError::xlsx(format!("{name}: {e}")))?;
        let capped = Capped { inner: file, left: cap, budget: &self.budget, over: &self.over, part: name.to_string(), cap };
        let mut xml = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, capped));
        xml.config_mut().trim_text(false);
        let result = read(&mut xml);
        drop(xml);
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(self.over.take().unwrap_or(e)),
        }
    }
}

/// The zip crate reserves room for as many entries as the archive's end record
/// claims: refuse a count the file is too small to hold (each entry needs 46
/// bytes of central directory) before it sees it.
fn check_central_directory(bytes: &[u8]) -> Result<(), SheetError> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let from = bytes.len().saturating_sub(22 + 65_535);
    let at = (from..bytes.len().saturating_sub(21)).rev().find(|&i| &bytes[i..i + 4] == EOCD).ok_or(SheetError::xlsx("not a zip archive"))?;
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([bytes[i], bytes[i + 1]]));
    let mut entries = u16_at(at + 10);
    if entries == 0xFFFF && at >= 20 && &bytes[at - 20..at - 16] == b"PK\x06\x07" {
        // Zip64: the locator points at the zip64 end record holding the real count.
        let off = u64::from_le_bytes(bytes[at - 12..at - 4].try_into().unwrap_or_default());
        let off = usize::try_from(off)
            .ok()
            .filter(|o| o.checked_add(56).is_some_and(|end| end <= bytes.len()))
            .ok_or(SheetError::xlsx("bad zip64 record"))?;
        entries = u64::from_le_bytes(bytes[off + 32..off + 40].try_into().unwrap_or_default());
    }
    if entries.saturating_mul(46) > bytes.len() as u64 {
        return Err(SheetError::xlsx(format!("the archive claims {entries} entries in {} bytes", bytes.len())));
    }
    Ok(())
}

fn attr(e: &quick_xml::events::BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes().with_checks(false).flatten().find(|a| a.key.local_name().as_ref() == local).map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// Text content with the XML entities resolved; `_xHHHH_` escapes decoded.
fn push_text(out: &mut String, ev: &Event<'_>) -> Result<(), SheetError> {
    match ev {
        Event::Text(t) => out.push_str(&t.xml10_content().map_err(SheetError::xlsx)?),
        Event::CData(t) => out.push_str(&String::from_utf8_lossy(t)),
        Event::GeneralRef(r) => {
            let name = r.decode().map_err(SheetError::xlsx)?;
            match name.as_ref() {
                "amp" => out.push('&'),
                "lt" => out.push('<'),
                "gt" => out.push('>'),
                "quot" => out.push('"'),
                "apos" => out.push('\''),
                _ => match r.resolve_char_ref() {
                    Ok(Some(c)) => out.push(c),
                    _ => return Err(SheetError::xlsx(format!("unknown entity &{name};"))),
                },
            }
        }
        _ => {}
    }
    Ok(())
}

/// OOXML escapes control characters as `_xHHHH_`.
fn unescape_ooxml(s: String) -> String {
    if !s.contains("_x") {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find("_x") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let code = tail.get(2..6).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())).filter(|_| tail.as_bytes().get(6) == Some(&b'_'));
        match code.and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32) {
            Some(c) => {
                out.push(c);
                rest = &tail[7..];
            }
            None => {
                out.push_str("_x");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A1-style reference → (0-based column, 1-based row); row None when absent.
fn cell_ref(r: &str) -> Option<(u64, Option<u64>)> {
    let r = r.trim().trim_start_matches('$');
    let letters = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    if letters == 0 || letters > 3 {
        return None;
    }
    let mut col = 0u64;
    for b in r[..letters].bytes() {
        col = col * 26 + u64::from(b.to_ascii_uppercase() - b'A' + 1);
    }
    let digits = r[letters..].trim_start_matches('$');
    let row = if digits.is_empty() { None } else { Some(digits.parse::<u64>().ok().filter(|&n| n >= 1)?) };
    Some((col - 1, row))
}

fn check_position(at: &str, col: u64, row: u64) -> Result<(), SheetError> {
    if row > MAX_SHEET_ROW {
        return Err(SheetError::BelowLastRow { cell: at.to_string(), max: MAX_SHEET_ROW });
    }
    if col >= MAX_COLUMNS as u64 {
        return Err(SheetError::BeyondLastColumn { cell: at.to_string(), max: MAX_COLUMNS });
    }
    Ok(())
}

/// The first sheet's part name and the shared-string table's, from the workbook and its relationships.
fn locate(book: &mut Book<'_>) -> Result<(String, Option<String>), SheetError> {
    let rid = book
        .with_part("xl/workbook.xml", MAX_PART_XML, |xml| {
            let mut buf = Vec::new();
            loop {
                match xml.read_event_into(&mut buf) {
                    Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == b"sheet" => return Ok(attr(&e, b"id")),
                    Ok(Event::Eof) => return Ok(None),
                    Ok(_) => {}
                    Err(e) => return Err(SheetError::xlsx(format!("xl/workbook.xml: {e}"))),
                }
                buf.clear();
            }
        })?
        .ok_or(SheetError::xlsx("no xl/workbook.xml"))?;
    let (sheet, shared) = book
        .with_part("xl/_rels/workbook.xml.rels", MAX_PART_XML, |xml| {
            let (mut sheet, mut shared) = (None, None);
            let mut buf = Vec::new();
            loop {
                match xml.read_event_into(&mut buf) {
                    Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == b"Relationship" => {
                        let target = attr(&e, b"Target").map(|t| match t.strip_prefix('/') {
                            Some(abs) => abs.to_string(),
                            None => format!("xl/{t}"),
                        });
                        if rid.is_some() && attr(&e, b"Id") == rid {
                            sheet = target;
                        } else if attr(&e, b"Type").unwrap_or_default().ends_with("/sharedStrings") {
                            shared = target;
                        }
                    }
                    Ok(Event::Eof) => return Ok((sheet, shared)),
                    Ok(_) => {}
                    Err(e) => return Err(SheetError::xlsx(format!("xl/_rels/workbook.xml.rels: {e}"))),
                }
                buf.clear();
            }
        })?
        .unwrap_or_default();
    let shared = shared.or_else(|| book.zip.index_for_name("xl/sharedStrings.xml").map(|_| "xl/sharedStrings.xml".to_string()));
    Ok((sheet.unwrap_or_else(|| "xl/worksheets/sheet1.xml".into()), shared))
}

fn shared_strings(book: &mut Book<'_>, part: &str) -> Result<Vec<String>, SheetError> {
    let read = |xml: &mut Xml<'_, '_>| {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        // Inside <si>: its text so far; inside <t> (not phonetic <rPh>): collecting.
        let (mut si, mut in_t, mut phonetic) = (None::<String>, false, false);
        loop {
            let ev = xml.read_event_into(&mut buf).map_err(|e| SheetError::xlsx(format!("{part}: {e}")))?;
            match &ev {
                Event::Start(e) => match e.local_name().as_ref() {
                    b"si" => si = Some(String::new()),
                    b"t" => in_t = !phonetic,
                    b"rPh" => phonetic = true,
                    _ => {}
                },
                Event::Empty(e) if e.local_name().as_ref() == b"si" => {
                    if out.len() >= MAX_SHARED_STRINGS {
                        return Err(SheetError::TooManySharedStrings { max: MAX_SHARED_STRINGS });
                    }
                    out.push(String::new());
                }
                Event::End(e) => match e.local_name().as_ref() {
                    b"si" => {
                        if out.len() >= MAX_SHARED_STRINGS {
                            return Err(SheetError::TooManySharedStrings { max: MAX_SHARED_STRINGS });
                        }
                        out.push(unescape_ooxml(si.take().unwrap_or_default()));
                    }
                    b"t" => in_t = false,
                    b"rPh" => phonetic = false,
                    _ => {}
                },
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if in_t => {
                    if let Some(s) = si.as_mut() {
                        push_text(s, &ev)?;
                        if s.len() > MAX_CELL_CHARS * 4 {
                            return Err(SheetError::SharedStringTooLong { index: out.len(), max: MAX_CELL_CHARS });
                        }
                    }
                }
                Event::Eof => return Ok(out),
                _ => {}
            }
            buf.clear();
        }
    };
    Ok(book.with_part(part, MAX_SHARED_XML, read)?.unwrap_or_default())
}

/// One `<c>` being read.
struct CellState {
    col: usize,
    typ: String,
    at: String,
    v: Option<String>,
    inline: Option<String>,
}

fn xlsx(bytes: &[u8], rows: &mut Rows) -> Result<(), SheetError> {
    let mut book = Book::open(bytes)?;
    let (sheet, shared) = locate(&mut book)?;
    let shared = match shared {
        Some(part) => shared_strings(&mut book, &part)?,
        None => Vec::new(),
    };
    let read = |xml: &mut Xml<'_, '_>| -> Result<(), SheetError> {
        let mut buf = Vec::new();
        let mut line = 0u64; // the current row's number
        let mut next_col = 0u64;
        let mut cells: Vec<(usize, String)> = Vec::new();
        let mut cell: Option<CellState> = None;
        // What text goes where inside a cell: <v>, or <is><t> (not phonetic).
        let (mut in_v, mut in_t, mut phonetic) = (false, false, false);
        loop {
            let ev = xml.read_event_into(&mut buf).map_err(|e| SheetError::xlsx(format!("{sheet}: {e}")))?;
            match &ev {
                Event::Start(e) | Event::Empty(e) => {
                    let empty = matches!(ev, Event::Empty(_));
                    match e.local_name().as_ref() {
                        b"dimension" => {
                            let dim = attr(e, b"ref").unwrap_or_default();
                            let last = dim.rsplit(':').next().unwrap_or_default();
                            if let Some((col, row)) = cell_ref(last) {
                                check_position(last, col, row.unwrap_or(1))?;
                            }
                        }
                        b"row" => {
                            line = match attr(e, b"r") {
                                Some(r) => r
                                    .trim()
                                    .parse::<u64>()
                                    .ok()
                                    .filter(|&n| n >= 1)
                                    .ok_or_else(|| SheetError::xlsx(format!("row number {r:?} is not a row")))?,
                                None => line + 1,
                            };
                            next_col = 0;
                            cells.clear();
                            if empty && !rows.row(line, &cells)? {
                                return Ok(());
                            }
                        }
                        b"c" => {
                            let (col, row) = match attr(e, b"r") {
                                Some(r) => cell_ref(&r).ok_or_else(|| SheetError::xlsx(format!("cell reference {r:?} is not one")))?,
                                None => (next_col, None),
                            };
                            let at = format!("{}{}", column_name(col), row.unwrap_or(line));
                            check_position(&at, col, row.unwrap_or(line))?;
                            next_col = col + 1;
                            if cells.len() >= MAX_COLUMNS {
                                return Err(SheetError::RowTooWide { row: line, max: MAX_COLUMNS });
                            }
                            let state = CellState { col: col as usize, typ: attr(e, b"t").unwrap_or_default(), at, v: None, inline: None };
                            if empty {
                                cells.push((state.col, String::new()));
                            } else {
                                cell = Some(state);
                            }
                        }
                        b"v" if cell.is_some() && !empty => in_v = true,
                        b"is" => {
                            if let Some(c) = cell.as_mut() {
                                c.inline = Some(String::new());
                            }
                        }
                        b"t" if !empty => in_t = !phonetic,
                        b"rPh" if !empty => phonetic = true,
                        _ => {}
                    }
                }
                Event::End(e) => match e.local_name().as_ref() {
                    b"v" => in_v = false,
                    b"t" => in_t = false,
                    b"rPh" => phonetic = false,
                    b"c" => {
                        if let Some(c) = cell.take() {
                            let text = value(&c, &shared)?;
                            cells.push((c.col, text));
                        }
                    }
                    b"row" => {
                        if !rows.row(line, &cells)? {
                            return Ok(());
                        }
                        cells.clear();
                    }
                    b"sheetData" => return Ok(()),
                    _ => {}
                },
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    if let Some(c) = cell.as_mut() {
                        let slot = if in_v {
                            Some(c.v.get_or_insert_with(String::new))
                        } else if in_t {
                            c.inline.as_mut()
                        } else {
                            None
                        };
                        if let Some(s) = slot {
                            push_text(s, &ev)?;
                            if s.len() > MAX_CELL_CHARS * 4 {
                                return Err(SheetError::CellTooLong { cell: c.at.clone(), max: MAX_CELL_CHARS });
                            }
                        }
                    }
                }
                Event::Eof => return Ok(()),
                _ => {}
            }
            buf.clear();
        }
    };
    book.with_part(&sheet, MAX_SHEET_XML, read)?.ok_or_else(|| SheetError::xlsx(format!("no {sheet}")))
}

/// A cell's text, as calamine would have shown it.
fn value(c: &CellState, shared: &[String]) -> Result<String, SheetError> {
    let v = c.v.as_deref().unwrap_or("");
    let text = match c.typ.as_str() {
        "s" => {
            if v.trim().is_empty() {
                String::new()
            } else {
                let i: usize = v.trim().parse().map_err(|_| SheetError::xlsx(format!("cell {} names shared string {v:?}", c.at)))?;
                shared.get(i).cloned().ok_or_else(|| SheetError::xlsx(format!("cell {} names shared string {i} of {}", c.at, shared.len())))?
            }
        }
        "inlineStr" => unescape_ooxml(c.inline.clone().unwrap_or_default()),
        "b" => match v.trim() {
            "1" | "true" => "true".into(),
            "0" | "false" => "false".into(),
            other => other.to_string(),
        },
        "str" | "e" | "d" => unescape_ooxml(v.to_string()),
        _ => match v.trim().parse::<f64>() {
            Ok(f) if !v.trim().is_empty() => number_text(f),
            _ => v.to_string(),
        },
    };
    Ok(text.trim().to_string())
}

fn column_name(mut col: u64) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

// ---------------------------------------------------------------- .xls guard

/// calamine reads an .xls trusting its container and records: sector numbers
/// (it grows its buffer to reach any), chain lengths and loops, the sizes it
/// reserves from header fields, the declared sheet dimension (reserved as
/// rows × columns cells), the dense grid spanned by the cells, and a shared
/// string copied into every cell that names it. This walks the same
/// structures first, bounded by the file itself, and refuses what would make
/// calamine allocate beyond [`MAX_GRID`] cells or [`MAX_TEXT`] bytes. What it
/// lets through may still be malformed: calamine then returns an error (or
/// panics, which `xls` turns into one).
mod xls_guard {
    use super::SheetError;

    const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
    /// Largest cell grid (declared or spanned) calamine may build for one sheet.
    pub const MAX_GRID: u64 = 4_000_000;
    /// Most text calamine may copy out of the shared-string table into cells.
    pub const MAX_TEXT: u64 = 256 << 20;

    fn u16_at(b: &[u8], i: usize) -> Option<u32> {
        Some(u32::from(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?)))
    }
    fn u32_at(b: &[u8], i: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
    }
    fn u32s(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
        b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
    fn bad(why: impl std::fmt::Display) -> SheetError {
        SheetError::xls(why)
    }

    /// A chain of sectors from `start` to ENDOFCHAIN: every link inside the file and the table, no loop.
    fn chain(start: u32, table: &[u32], sectors: usize, what: &str) -> Result<Vec<u32>, SheetError> {
        let mut ids = Vec::new();
        let mut id = start;
        while id != ENDOFCHAIN {
            if id as usize >= sectors.min(table.len()) {
                return Err(bad(format!("{what} points outside the file")));
            }
            if ids.len() >= sectors {
                return Err(bad(format!("{what} loops")));
            }
            ids.push(id);
            id = table[id as usize];
        }
        Ok(ids)
    }

    pub fn check(b: &[u8]) -> Result<(), SheetError> {
        if b.len() < 512 || b[..8] != [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1] {
            return Err(bad("not an OLE compound file"));
        }
        let h = |i| u32_at(b, i).unwrap_or(0);
        let size: usize = match u16_at(b, 30) {
            Some(9) => 512,
            Some(12) => 4096,
            _ => return Err(bad("sector size")),
        };
        if b.len() < size {
            return Err(bad("truncated header"));
        }
        let sectors = (b.len() - size) / size;
        let sector = |id: u32| sector_of(b, size, sectors, id);
        let (dir_len, fat_len, dir_start, minifat_start, minifat_len, difat_start) = (h(40), h(44), h(48), h(60), h(64), h(68));
        // calamine reserves these (the DIFAT's from bytes 62..66) before reading.
        if h(62) as usize > sectors * size / 4 + 65_536 || [dir_len, fat_len, minifat_len].iter().any(|&n| n as usize > sectors) {
            return Err(bad("header sizes larger than the file"));
        }
        // DIFAT → FAT, as calamine walks them.
        let mut difat: Vec<u32> = u32s(&b[76..512]).collect();
        let mut id = difat_start;
        let mut steps = 0;
        while id < 0xFFFF_FFFA {
            difat.extend(u32s(sector(id)?));
            id = difat.pop().ok_or_else(|| bad("empty DIFAT sector"))?;
            steps += 1;
            if steps > sectors {
                return Err(bad("the DIFAT loops"));
            }
        }
        let mut fat = Vec::new();
        for &id in difat.iter().filter(|&&id| id < 0xFFFF_FFFC) {
            fat.extend(u32s(sector(id)?));
        }
        let read = |ids: &[u32]| -> Result<Vec<u8>, SheetError> {
            let mut out = Vec::with_capacity(ids.len() * size);
            for &id in ids {
                out.extend_from_slice(sector(id)?);
            }
            Ok(out)
        };
        let mut dirs = read(&chain(dir_start, &fat, sectors, "the directory chain")?)?;
        if dir_len > 0 {
            dirs.truncate(dir_len as usize * size);
        }
        // (name, start, len) of each directory entry.
        let entries: Vec<(String, u32, u64)> = dirs
            .chunks_exact(128)
            .map(|d| {
                let units: Vec<u16> = d[..64].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
                let len = if size == 512 { u64::from(h_u32(d, 120)) } else { u64::from_le_bytes(d[120..128].try_into().unwrap_or_default()) };
                (String::from_utf16_lossy(&units), h_u32(d, 116), len)
            })
            .collect();
        let Some(root) = entries.first() else { return Ok(()) };
        if entries.iter().any(|(n, _, len)| *len > b.len() as u64 && (n == "Workbook" || n == "Book" || entries[0].0 == *n)) {
            return Err(bad("a stream longer than the file"));
        }
        if entries.iter().any(|(n, ..)| n == "_VBA_PROJECT_CUR") {
            return Err(SheetError::Macros);
        }
        let (ministream, minifat) = if minifat_len > 0 {
            let mut ms = read(&chain(root.1, &fat, sectors, "the mini stream")?)?;
            if root.2 > 0 {
                ms.truncate(root.2 as usize);
            }
            let mut mf = read(&chain(minifat_start, &fat, sectors, "the mini FAT")?)?;
            mf.truncate(minifat_len as usize * size);
            (ms, u32s(&mf).collect::<Vec<_>>())
        } else {
            (Vec::new(), Vec::new())
        };
        let find = |name: &str| entries.iter().find(|(n, ..)| n == name);
        let Some(&(_, start, len)) = find("Workbook").or_else(|| find("Book")) else { return Ok(()) };
        let stream = if len < 4096 {
            let ids = chain(start, &minifat, ministream.len() / 64, "the workbook's mini chain")?;
            let mut s: Vec<u8> = ids.iter().flat_map(|&id| ministream[id as usize * 64..][..64].iter().copied()).collect();
            s.truncate(len as usize);
            s
        } else {
            let mut s = read(&chain(start, &fat, sectors, "the workbook stream")?)?;
            s.truncate(len as usize);
            s
        };
        biff(&stream)
    }

    fn sector_of(b: &[u8], size: usize, sectors: usize, id: u32) -> Result<&[u8], SheetError> {
        if (id as usize) < sectors { Ok(&b[size + id as usize * size..][..size]) } else { Err(bad("a sector number points outside the file")) }
    }

    fn h_u32(d: &[u8], i: usize) -> u32 {
        u32_at(d, i).unwrap_or(0)
    }

    /// A record and the data of the CONTINUE records after it.
    struct Record<'a> {
        typ: u32,
        data: &'a [u8],
        cont: Vec<&'a [u8]>,
    }

    fn records(mut s: &[u8]) -> impl Iterator<Item = Record<'_>> {
        std::iter::from_fn(move || {
            let typ = u16_at(s, 0)?;
            let len = u16_at(s, 2)? as usize;
            let data = s.get(4..4 + len)?;
            s = &s[4 + len..];
            let mut cont = Vec::new();
            while s.len() > 4 && u16_at(s, 0) == Some(0x003C) {
                let l = u16_at(s, 2).unwrap_or(0) as usize;
                let Some(d) = s.get(4..4 + l) else { break };
                cont.push(d);
                s = &s[4 + l..];
            }
            Some(Record { typ, data, cont })
        })
    }

    /// Upper bounds of the UTF-8 length of each shared string (3 bytes a character).
    fn sst_sizes(r: &Record<'_>) -> Vec<u64> {
        let mut parts = std::iter::once(r.data.get(8..).unwrap_or_default()).chain(r.cont.iter().copied());
        let mut cur: &[u8] = parts.next().unwrap_or_default();
        let mut out = Vec::new();
        // Take n bytes across part boundaries; None at the end.
        fn skip<'a>(cur: &mut &'a [u8], parts: &mut dyn Iterator<Item = &'a [u8]>, mut n: usize) -> Option<()> {
            while n > 0 {
                if cur.is_empty() {
                    *cur = parts.next()?;
                    continue;
                }
                let l = n.min(cur.len());
                *cur = &cur[l..];
                n -= l;
            }
            Some(())
        }
        loop {
            if cur.is_empty() {
                match parts.next() {
                    Some(p) => cur = p,
                    None => return out,
                }
                continue;
            }
            if cur.len() < 3 {
                return out;
            }
            let cch = u16_at(cur, 0).unwrap_or(0) as usize;
            let flags = cur[2];
            cur = &cur[3..];
            let runs = if flags & 8 != 0 { u16_at(cur, 0).map(|v| v as usize) } else { Some(0) };
            if flags & 8 != 0 {
                cur = cur.get(2..).unwrap_or_default();
            }
            let ext = if flags & 4 != 0 { u32_at(cur, 0).map(|v| v as usize) } else { Some(0) };
            if flags & 4 != 0 {
                cur = cur.get(4..).unwrap_or_default();
            }
            out.push(cch as u64 * 3);
            // The characters, possibly split over CONTINUE records (each restating the width).
            let mut left = cch;
            let mut wide = flags & 1 != 0;
            while left > 0 {
                let w = if wide { 2 } else { 1 };
                let fit = (cur.len() / w).min(left);
                cur = &cur[fit * w..];
                left -= fit;
                if left > 0 {
                    let Some(p) = parts.next() else { return out };
                    let Some((&f, rest)) = p.split_first() else { return out };
                    wide = f & 1 != 0;
                    cur = rest;
                }
            }
            let (Some(runs), Some(ext)) = (runs, ext) else { return out };
            if skip(&mut cur, &mut parts, runs * 4 + ext).is_none() {
                return out;
            }
        }
    }

    fn biff(stream: &[u8]) -> Result<(), SheetError> {
        let mut sheets = Vec::new();
        let mut sst: Vec<u64> = Vec::new();
        // Longest sheet or defined name (in characters): what one formula token may expand to.
        let mut name = 0u64;
        for r in records(stream) {
            match r.typ {
                0x0085 => {
                    sheets.extend(u32_at(r.data, 0));
                    name = name.max(u64::from(r.data.get(6).copied().unwrap_or(0)));
                }
                0x0018 => name = name.max(u64::from(r.data.get(3).copied().unwrap_or(0))),
                0x00FC => sst = sst_sizes(&r),
                0x000A => break,
                _ => {}
            }
        }
        let mut text = 0u64;
        for pos in sheets {
            let Some(sheet) = stream.get(pos as usize..) else { continue };
            let (mut rows, mut cols) = ((u32::MAX, 0u32), (u32::MAX, 0u32));
            let mut fmla = (0u32, 0u32);
            let mut cell = |r: u32, c: u32| {
                rows = (rows.0.min(r), rows.1.max(r));
                cols = (cols.0.min(c), cols.1.max(c));
            };
            for r in records(sheet) {
                let d = r.data;
                let pos = || Some((u16_at(d, 0)?, u16_at(d, 2)?));
                match r.typ {
                    0x0200 => {
                        // As calamine computes it (u32 arithmetic, wrapping in a release build).
                        let (rf, rl, mut cf, cl) = match d.len() {
                            10 => (u16_at(d, 0).unwrap_or(0), u16_at(d, 2).unwrap_or(0), u16_at(d, 4).unwrap_or(0), u16_at(d, 6).unwrap_or(0)),
                            14 => (u32_at(d, 0).unwrap_or(0), u32_at(d, 4).unwrap_or(0), u16_at(d, 8).unwrap_or(0), u16_at(d, 10).unwrap_or(0)),
                            _ => continue,
                        };
                        if 0xFF < cf || cl < cf {
                            cf = 0;
                        }
                        let (er, ec) = if rl >= 1 && cl >= 1 { (rl - 1, cl - 1) } else { (rf, cf) };
                        let nr = u64::from(er.wrapping_sub(rf).wrapping_add(1));
                        let nc = u64::from(ec.wrapping_sub(cf).wrapping_add(1));
                        if nr.saturating_mul(nc) > MAX_GRID {
                            return Err(SheetError::GridTooLarge { rows: nr, columns: nc, max: MAX_GRID });
                        }
                    }
                    0x0203 | 0x0204 | 0x0205 | 0x027E => {
                        if let Some((r, c)) = pos() {
                            cell(r, c);
                        }
                    }
                    0x00FD => {
                        if let (Some((r, c)), Some(i)) = (pos(), u32_at(d, 6))
                            && let Some(&n) = sst.get(i as usize)
                        {
                            text += n;
                            cell(r, c);
                        }
                    }
                    0x00BD => {
                        if let (Some((r, c)), Some(last)) = (pos(), d.len().checked_sub(2).and_then(|i| u16_at(d, i))) {
                            cell(r, c);
                            cell(r, last);
                        }
                    }
                    0x0006 => {
                        if let Some((r, c)) = pos() {
                            fmla = (r, c);
                            cell(r, c);
                        }
                        // calamine renders every formula's text; bound it by its tokens.
                        text += d.len().saturating_sub(20) as u64 * (16 + 3 * name);
                    }
                    0x0207 => cell(fmla.0, fmla.1),
                    0x000A => break,
                    _ => {}
                }
            }
            if rows.0 <= rows.1 {
                let grid = u64::from(rows.1 - rows.0 + 1) * u64::from(cols.1 - cols.0 + 1);
                if grid > MAX_GRID {
                    return Err(SheetError::GridTooLarge {
                        rows: u64::from(rows.1 - rows.0 + 1),
                        columns: u64::from(cols.1 - cols.0 + 1),
                        max: MAX_GRID,
                    });
                }
            }
            if text > MAX_TEXT {
                return Err(SheetError::TextTooLarge { max: MAX_TEXT });
            }
        }
        Ok(())
    }
}

/// The list template for a channel: an .xlsx with the header row this
/// parser reads (in Chinese or English) and one example row.
pub fn template(rule: &AddressRule, chinese: bool) -> Result<Vec<u8>, String> {
    let (to, name, example_name, note) = if chinese {
        ("收件人", "姓名", "张三", "其他列（如 code）作为变量，模板中写 {{ code }}")
    } else {
        ("to", "name", "Zhang San", "Other columns (e.g. code) become variables: {{ code }} in the content")
    };
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let text = rust_xlsxwriter::Format::new().set_num_format("@"); // numbers stay text: no 1.38E+10
    let failed = |e: rust_xlsxwriter::XlsxError| e.to_string();
    sheet.set_column_format(0, &text).map_err(failed)?;
    sheet.set_column_width(0, 28).map_err(failed)?;
    sheet.set_column_width(1, 16).map_err(failed)?;
    sheet.set_column_width(2, 16).map_err(failed)?;
    sheet.write_string_with_format(0, 0, to, &bold).map_err(failed)?;
    sheet.write_string_with_format(0, 1, name, &bold).map_err(failed)?;
    sheet.write_string_with_format(0, 2, "code", &bold).map_err(failed)?;
    sheet.write_string(1, 0, rule.example()).map_err(failed)?;
    sheet.write_string(1, 1, example_name).map_err(failed)?;
    sheet.write_string(1, 2, "A-1").map_err(failed)?;
    sheet.insert_note(0, 2, &rust_xlsxwriter::Note::new(note).set_author("Herald")).map_err(failed)?;
    book.save_to_buffer().map_err(failed)
}

/// A cell of an exported sheet.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Text(String),
    Int(i64),
    /// Minor units, written as a number with two decimals (¥12.34 → 12.34).
    Money(i64),
    /// Unix milliseconds, written as "YYYY-MM-DD HH:MM:SS" in China Standard Time.
    Time(i64),
}

impl From<&str> for Out {
    fn from(s: &str) -> Self {
        Out::Text(s.to_string())
    }
}

impl From<String> for Out {
    fn from(s: String) -> Self {
        Out::Text(s)
    }
}

/// A one-sheet .xlsx: a bold header row (frozen, filtered) and `rows`;
/// texts stay text (a phone number is not turned into 1.38E+10).
pub fn export(sheet_name: &str, headers: &[&str], rows: &[Vec<Out>]) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format, Workbook};
    let failed = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(sheet_name).map_err(failed)?;
    let bold = Format::new().set_bold();
    let money = Format::new().set_num_format("0.00");
    let text = Format::new().set_num_format("@");
    for (c, h) in headers.iter().enumerate() {
        let c = u16::try_from(c).map_err(|_| "too many columns".to_string())?;
        sheet.write_string_with_format(0, c, *h, &bold).map_err(failed)?;
        sheet.set_column_width(c, 18).map_err(failed)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = u32::try_from(r + 1).ok().filter(|r| *r < 1_048_576).ok_or_else(|| "more rows than a sheet holds".to_string())?;
        for (c, v) in row.iter().enumerate() {
            let c = u16::try_from(c).map_err(|_| "too many columns".to_string())?;
            match v {
                Out::Text(s) => sheet.write_string_with_format(r, c, s, &text).map(|_| ()),
                Out::Int(n) => sheet.write_number(r, c, *n as f64).map(|_| ()),
                Out::Money(m) => sheet.write_number_with_format(r, c, *m as f64 / 100.0, &money).map(|_| ()),
                Out::Time(ms) => sheet.write_string(r, c, local_time(*ms)).map(|_| ()),
            }
            .map_err(failed)?;
        }
    }
    if !headers.is_empty() {
        sheet.set_freeze_panes(1, 0).map_err(failed)?;
        let last_row = u32::try_from(rows.len()).unwrap_or(u32::MAX).min(1_048_575);
        sheet.autofilter(0, 0, last_row, u16::try_from(headers.len() - 1).unwrap_or(0)).map_err(failed)?;
    }
    book.save_to_buffer().map_err(failed)
}

/// "YYYY-MM-DD HH:MM:SS" of Unix milliseconds in China Standard Time.
pub fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms.saturating_add(8 * 3_600_000)).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(to: &str) -> ListEntry {
        ListEntry { to: to.into(), name: None, channel: None, variables: Default::default() }
    }

    #[test]
    fn a_list_is_vetted_per_channel_with_rows_columns_and_duplicates() {
        let mut p = Parsed {
            rows: ["13800138000", "abc123", "1380013800", "ann@example.com", "+8613800138000", "13900139000"].map(entry).into(),
            lines: vec![2, 3, 4, 5, 6, 7],
            to_column: Some("手机".into()),
            ..Parsed::default()
        };
        p.vet(Some(&AddressRule::Phone));
        assert_eq!(p.rows.iter().map(|r| r.to.as_str()).collect::<Vec<_>>(), ["13800138000", "13900139000"]);
        assert_eq!(p.lines, [2, 7]);
        assert_eq!(
            p.errors.iter().map(|e| (e.row, e.column.as_deref())).collect::<Vec<_>>(),
            [(3, Some("手机")), (4, Some("手机")), (5, Some("手机"))]
        );
        assert!(p.errors[0].message.contains("abc123"), "{:?}", p.errors[0]);
        assert_eq!(p.duplicates, [Duplicate { row: 6, to: "+8613800138000".into(), first_row: 2 }]);
        // No channel: exact repeats only.
        let mut p = Parsed { rows: ["a", "b", "a"].map(entry).into(), lines: vec![2, 3, 4], ..Parsed::default() };
        p.vet(None);
        assert_eq!((p.rows.len(), p.duplicates.len(), p.errors.len()), (2, 1, 0));
    }

    #[test]
    fn the_template_parses_back_into_its_example() {
        for (rule, chinese) in [(AddressRule::Phone, true), (AddressRule::Email, false), (AddressRule::Any, true)] {
            let bytes = template(&rule, chinese).unwrap();
            let mut parsed = parse("template.xlsx", bytes, 10).unwrap();
            parsed.vet(Some(&rule));
            assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
            assert_eq!(parsed.rows.len(), 1);
            assert_eq!(parsed.rows[0].to, rule.example());
            assert_eq!(parsed.rows[0].variables.get("code").and_then(|v| v.as_str()), Some("A-1"));
            assert_eq!(parsed.lines, [2]);
        }
    }

    #[test]
    fn other_files_are_refused_with_a_reason() {
        assert!(parse("list.csv", b"to\na@b.c".to_vec(), 10).unwrap_err().msg().to_string().contains(".xlsx"));
        assert!(parse("list.xlsx", b"not a zip".to_vec(), 10).unwrap_err().msg().to_string().contains("not a readable"));
    }

    #[test]
    fn a_sheet_whose_archive_lies_about_its_size_is_stopped_at_the_cap() {
        // Declares 1 000 bytes, inflates to 300 MB: counted while inflating, refused at the cap.
        let bytes = sheets::xlsx_lying(300 << 20, 1000);
        assert!(bytes.len() < 5 << 20, "{} bytes", bytes.len());
        let err = parse("bomb.xlsx", bytes, 10).unwrap_err().msg().to_string();
        assert!(err.contains("unpacks to more than"), "{err}");
    }

    #[test]
    fn cells_far_out_are_refused_without_building_a_grid() {
        let err = parse("far.xlsx", sheets::xlsx_cells(&[("A1", "to"), ("XFD1048576", "x")]), 10).unwrap_err().msg().to_string();
        assert!(err.contains("XFD1048576") && err.contains("256 columns"), "{err}");
        let err = parse("deep.xlsx", sheets::xlsx_cells(&[("A1", "to"), ("Z2000000", "x")]), 10).unwrap_err().msg().to_string();
        assert!(err.contains("Z2000000") && err.contains("below row"), "{err}");
        // Far down but inside the limits: streamed, no grid, one row.
        let ok = parse("tall.xlsx", sheets::xlsx_cells(&[("A1", "to"), ("A1048576", "a@b.c")]), 10).unwrap();
        assert_eq!(ok.rows.len(), 1);
        // A declared dimension past the limits is refused before any cell is read.
        let sheet = r#"<worksheet><dimension ref="A1:XFD1048576"/><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>to</t></is></c></row></sheetData></worksheet>"#;
        let err = parse("dim.xlsx", sheets::xlsx_with(sheets::Entry::stored("xl/worksheets/sheet1.xml", sheet.as_bytes()), None), 10)
            .unwrap_err()
            .msg()
            .to_string();
        assert!(err.contains("XFD1048576"), "{err}");
    }

    #[test]
    fn shared_strings_entities_and_numbers_read_as_before() {
        let parsed = parse("list.xlsx", sheets::xlsx_list(3), 10).unwrap();
        assert_eq!(parsed.rows.len(), 3);
        assert_eq!(parsed.rows[1].to, "user1@example.test");
        assert_eq!(parsed.rows[1].name.as_deref(), Some("U & 1"));
        assert_eq!(parsed.rows[1].variables["code"], "1");
    }

    #[test]
    fn an_xls_list_parses_and_a_huge_grid_is_refused_before_calamine() {
        let parsed = parse("list.xls", sheets::xls_list(), 10).unwrap();
        assert_eq!(parsed.rows.len(), 2, "{:?}", parsed.errors);
        assert_eq!(parsed.rows[0].to, "xls-one@example.test");
        assert_eq!(parsed.rows[0].name.as_deref(), Some("王五"));
        assert_eq!(parsed.rows[1].name.as_deref(), Some("13800000000"));
        use sheets::Xls::*;
        let wide = sheets::xls(&[Text(0, 0, "to"), Text(65535, 255, "x")]);
        let err = parse("wide.xls", wide, 10).unwrap_err().msg().to_string();
        assert!(err.contains("at most"), "{err}");
    }

    /// A minimal .xlsx (inline strings) with a header and `rows` recipients.
    fn xlsx(rows: usize) -> Vec<u8> {
        use std::io::Write;
        let mut buf = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let files = [
            ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_string()),
            ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string()),
            ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_string()),
            ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_string()),
        ];
        for (name, body) in files {
            w.start_file(name, opts).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        let cell = |r: usize, c: &str, v: &str| format!(r#"<c r="{c}{r}" t="inlineStr"><is><t>{v}</t></is></c>"#);
        let mut sheet = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        );
        sheet.push_str(&format!(r#"<row r="1">{}{}{}</row>"#, cell(1, "A", "手机"), cell(1, "B", "姓名"), cell(1, "C", "code")));
        for i in 0..rows {
            let r = i + 2;
            let to = if i == 7 { String::new() } else { format!("+86138{i:08}") };
            sheet.push_str(&format!(r#"<row r="{r}">{}{}{}</row>"#, cell(r, "A", &to), cell(r, "B", &format!("U{i}")), cell(r, "C", &i.to_string())));
        }
        sheet.push_str("</sheetData></worksheet>");
        w.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
        w.write_all(sheet.as_bytes()).unwrap();
        w.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn a_hundred_thousand_rows_parse_with_row_and_column_errors() {
        let bytes = xlsx(100_000);
        assert!(bytes.len() < 5 * 1024 * 1024, "fits the default upload limit: {} bytes", bytes.len());
        let parsed = parse("list.xlsx", bytes, 100_000).unwrap();
        assert_eq!(parsed.rows.len(), 99_999);
        assert_eq!(parsed.errors, vec![RowError::new(9, Some("手机".into()), herald_core::msg!("excel.empty_recipient"))]);
        assert_eq!(parsed.errors[0].message, "the recipient is empty");
        assert_eq!(parsed.rows[0].to, "+8613800000000");
        assert_eq!(parsed.rows[0].name.as_deref(), Some("U0"));
        assert_eq!(parsed.rows[0].variables["code"], "0");
        let capped = parse("list.xlsx", xlsx(20), 10).unwrap();
        assert_eq!(capped.rows.len(), 10);
        assert!(capped.errors.last().unwrap().message.contains("more than 10 rows"));
    }
    #[test]
    fn an_export_reads_back_with_calamine() {
        let rows = vec![
            vec![Out::from("P000001 通知"), Out::from("13800138000"), Out::Int(2), Out::Money(1234), Out::Time(0)],
            vec![Out::from(""), Out::from("a@b.c"), Out::Int(-1), Out::Money(-5), Out::Time(1_700_000_000_000)],
        ];
        let bytes = export("明细", &["推送", "收件人", "计费单位", "金额", "时间"], &rows).unwrap();
        let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).unwrap();
        assert_eq!(book.sheet_names(), ["明细"]);
        let range = book.worksheet_range("明细").unwrap();
        let cells: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
        assert_eq!(cells[0], ["推送", "收件人", "计费单位", "金额", "时间"]);
        assert_eq!(cells[1], ["P000001 通知", "13800138000", "2", "12.34", "1970-01-01 08:00:00"]);
        assert_eq!(cells[2][1..4], ["a@b.c", "-1", "-0.05"]);
        assert!(matches!(range.get((1, 1)), Some(Data::String(_))), "a phone number stays text");
        assert_eq!(cells.len(), 3);
    }
}
