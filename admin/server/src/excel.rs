//! Batch recipient lists from spreadsheets (.xls and .xlsx, via calamine),
//! with limits and a per-row error report.

use std::io::Cursor;

use calamine::{Data, Reader};
use herald_core::directory::ListEntry;
use serde::Serialize;

#[derive(Debug, Serialize, PartialEq)]
pub struct RowError {
    /// 1-based spreadsheet row.
    pub row: usize,
    pub message: String,
}

#[derive(Debug, Serialize, Default)]
pub struct Parsed {
    pub rows: Vec<ListEntry>,
    pub errors: Vec<RowError>,
}

const TO: &[&str] = &["to", "收件人", "手机", "手机号", "手机号码", "邮箱", "email", "e-mail", "mobile", "phone", "address", "地址"];
const NAME: &[&str] = &["name", "姓名", "名字"];

fn cell_text(c: &Data) -> String {
    match c {
        Data::Empty => String::new(),
        // Phone numbers typed into Excel come back as floats.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string().trim().to_string(),
    }
}

/// Parse the first sheet: a header row naming a `to` column (or 收件人/手机/邮箱…),
/// an optional `name` column; every other column becomes a variable.
pub fn parse(file_name: &str, bytes: Vec<u8>, max_rows: usize) -> Result<Parsed, String> {
    let lower = file_name.to_lowercase();
    if !(lower.ends_with(".xls") || lower.ends_with(".xlsx")) {
        return Err("upload an .xls or .xlsx file".into());
    }
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| format!("not a readable spreadsheet: {e}"))?;
    let sheet = book.sheet_names().first().cloned().ok_or("the workbook has no sheet")?;
    let range = book.worksheet_range(&sheet).map_err(|e| format!("sheet {sheet}: {e}"))?;
    let mut rows = range.rows();
    let header: Vec<String> = rows.next().ok_or("the sheet is empty")?.iter().map(|c| cell_text(c).to_lowercase()).collect();
    let to_col = header.iter().position(|h| TO.contains(&h.as_str())).ok_or("no recipient column: name one header `to` (or 收件人, 手机, 邮箱)")?;
    let name_col = header.iter().position(|h| NAME.contains(&h.as_str()));
    let mut out = Parsed::default();
    for (i, row) in rows.enumerate() {
        let line = i + 2;
        if row.iter().all(|c| matches!(c, Data::Empty)) {
            continue;
        }
        if out.rows.len() >= max_rows {
            out.errors.push(RowError { row: line, message: format!("more than {max_rows} rows; the rest is ignored") });
            break;
        }
        let to = row.get(to_col).map(cell_text).unwrap_or_default();
        if to.is_empty() {
            out.errors.push(RowError { row: line, message: "the recipient is empty".into() });
            continue;
        }
        if to.len() > 512 || to.contains(char::is_whitespace) {
            out.errors.push(RowError { row: line, message: format!("{to:?} is not an address") });
            continue;
        }
        let mut variables = serde_json::Map::new();
        for (j, h) in header.iter().enumerate() {
            if j != to_col && Some(j) != name_col && !h.is_empty() {
                variables.insert(h.clone(), row.get(j).map(cell_text).unwrap_or_default().into());
            }
        }
        let name = name_col.and_then(|j| row.get(j)).map(cell_text).filter(|n| !n.is_empty());
        out.rows.push(ListEntry { to, name, channel: None, variables });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_files_are_refused_with_a_reason() {
        assert!(parse("list.csv", b"to\na@b.c".to_vec(), 10).unwrap_err().contains(".xlsx"));
        assert!(parse("list.xlsx", b"not a zip".to_vec(), 10).unwrap_err().contains("spreadsheet"));
    }
}
