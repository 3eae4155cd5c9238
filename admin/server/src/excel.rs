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
    /// The column's header, when one cell is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub message: String,
}

/// Largest uncompressed .xlsx content, and the most an entry may expand.
const MAX_UNZIPPED: u64 = 512 * 1024 * 1024;
const MAX_RATIO: u64 = 200;

/// Refuse zip bombs before calamine inflates anything.
fn check_zip(bytes: &[u8]) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a readable .xlsx: {e}"))?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(|e| format!("not a readable .xlsx: {e}"))?;
        total = total.saturating_add(f.size());
        if f.size() > 1024 * 1024 && f.size() / f.compressed_size().max(1) > MAX_RATIO {
            return Err(format!("{} expands {}×: refused as a zip bomb", f.name(), f.size() / f.compressed_size().max(1)));
        }
    }
    if total > MAX_UNZIPPED {
        return Err(format!("the workbook unpacks to {total} bytes; at most {MAX_UNZIPPED}"));
    }
    Ok(())
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
    if lower.ends_with(".xlsx") {
        check_zip(&bytes)?;
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
            out.errors.push(RowError { row: line, column: None, message: format!("more than {max_rows} rows; the rest is ignored") });
            break;
        }
        let to = row.get(to_col).map(cell_text).unwrap_or_default();
        if to.is_empty() {
            out.errors.push(RowError { row: line, column: Some(header[to_col].clone()), message: "the recipient is empty".into() });
            continue;
        }
        if to.len() > 512 || to.contains(char::is_whitespace) {
            out.errors.push(RowError { row: line, column: Some(header[to_col].clone()), message: format!("{to:?} is not an address") });
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
        assert!(parse("list.xlsx", b"not a zip".to_vec(), 10).unwrap_err().contains("not a readable"));
    }

    #[test]
    fn a_zip_bomb_is_refused_before_inflating() {
        use std::io::Write;
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            w.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                w.write_all(&zeros).unwrap();
            }
            w.finish().unwrap();
        }
        let err = parse("bomb.xlsx", buf.into_inner(), 10).unwrap_err();
        assert!(err.contains("zip bomb"), "{err}");
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
        let mut sheet = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#);
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
        assert_eq!(parsed.errors, vec![RowError { row: 9, column: Some("手机".into()), message: "the recipient is empty".into() }]);
        assert_eq!(parsed.rows[0].to, "+8613800000000");
        assert_eq!(parsed.rows[0].name.as_deref(), Some("U0"));
        assert_eq!(parsed.rows[0].variables["code"], "0");
        let capped = parse("list.xlsx", xlsx(20), 10).unwrap();
        assert_eq!(capped.rows.len(), 10);
        assert!(capped.errors.last().unwrap().message.contains("more than 10 rows"));
    }
}
