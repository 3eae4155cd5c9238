//! Spreadsheets made in the tests, without any library: minimal .xlsx
//! archives (stored parts, or a hand-made deflate stream for a bomb whose
//! declared size lies) and a minimal BIFF8 .xls in an OLE compound file.
//! Shared by the admin's unit tests, its fuzz test and the e2e upload suite.
#![allow(dead_code)]

pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// One zip entry as written: method 0 (stored) or 8 (deflated), with the
/// sizes and CRC the archive claims (which may lie).
pub struct Entry {
    pub name: String,
    pub method: u16,
    pub data: Vec<u8>,
    pub crc: u32,
    pub declared_size: u32,
}

impl Entry {
    pub fn stored(name: &str, data: &[u8]) -> Entry {
        Entry { name: name.into(), method: 0, data: data.to_vec(), crc: crc32(data), declared_size: data.len() as u32 }
    }
}

pub fn zip(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let head = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&e.method.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            h.extend_from_slice(&e.crc.to_le_bytes());
            h.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            h.extend_from_slice(&e.declared_size.to_le_bytes());
            h.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&[0u8; 6]); // comment, disk, internal attrs
                h.extend_from_slice(&0u32.to_le_bytes()); // external attrs
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(e.name.as_bytes());
            h
        };
        out.extend(head(0x0403_4b50, false));
        out.extend_from_slice(&e.data);
        central.extend(head(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

const PARTS: [(&str, &str); 4] = [
    (
        "[Content_Types].xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
    ),
    (
        "_rels/.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
    ),
    (
        "xl/workbook.xml",
        r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
    ),
    (
        "xl/_rels/workbook.xml.rels",
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#,
    ),
];

const SHEET_HEAD: &str =
    r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#;
const SHEET_TAIL: &str = "</sheetData></worksheet>";

/// An .xlsx whose sheet part is the given entry (and shared strings, when some).
pub fn xlsx_with(sheet: Entry, shared: Option<&[&str]>) -> Vec<u8> {
    let mut entries: Vec<Entry> = PARTS.iter().map(|(n, b)| Entry::stored(n, b.as_bytes())).collect();
    if let Some(strings) = shared {
        let mut sst = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{0}" uniqueCount="{0}">"#,
            strings.len()
        );
        for s in strings {
            sst.push_str(&format!("<si><t>{s}</t></si>"));
        }
        sst.push_str("</sst>");
        entries.push(Entry::stored("xl/sharedStrings.xml", sst.as_bytes()));
    }
    entries.push(sheet);
    zip(&entries)
}

/// An .xlsx whose sheet holds these cells (reference, inline text), in the order given.
pub fn xlsx_cells(cells: &[(&str, &str)]) -> Vec<u8> {
    let mut xml = String::from(SHEET_HEAD);
    let mut open: Option<String> = None;
    for (at, text) in cells {
        let row: String = at.chars().skip_while(|c| c.is_ascii_alphabetic()).collect();
        if open.as_deref() != Some(row.as_str()) {
            if open.is_some() {
                xml.push_str("</row>");
            }
            xml.push_str(&format!(r#"<row r="{row}">"#));
            open = Some(row);
        }
        xml.push_str(&format!(r#"<c r="{at}" t="inlineStr"><is><t>{text}</t></is></c>"#));
    }
    if open.is_some() {
        xml.push_str("</row>");
    }
    xml.push_str(SHEET_TAIL);
    xlsx_with(Entry::stored("xl/worksheets/sheet1.xml", xml.as_bytes()), None)
}

/// A list: header `to`, `name`, `code` (shared strings for the header), then `rows` recipients.
pub fn xlsx_list(rows: usize) -> Vec<u8> {
    let mut xml = String::from(SHEET_HEAD);
    xml.push_str(r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row>"#);
    for i in 0..rows {
        let r = i + 2;
        xml.push_str(&format!(r#"<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>user{i}@example.test</t></is></c><c r="B{r}" t="inlineStr"><is><t>U &amp; {i}</t></is></c><c r="C{r}"><v>{i}</v></c></row>"#));
    }
    xml.push_str(SHEET_TAIL);
    xlsx_with(Entry::stored("xl/worksheets/sheet1.xml", xml.as_bytes()), Some(&["to", "name", "code"]))
}

/// Deflate (fixed Huffman) of `prefix`, then `unit` (4 bytes) repeated to about
/// `size` bytes, then `suffix`: ~13 bits for each 258 bytes inflated.
pub fn deflate_repeat(prefix: &[u8], unit: &[u8; 4], size: usize, suffix: &[u8]) -> (Vec<u8>, usize) {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, bits: u32) {
            self.acc |= u64::from(value) << self.n;
            self.n += bits;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code: most significant bit first.
        fn code(&mut self, code: u32, bits: u32) {
            let rev = (0..bits).fold(0, |r, i| r | (((code >> i) & 1) << (bits - 1 - i)));
            self.put(rev, bits);
        }
        fn literal(&mut self, b: u8) {
            if b < 144 { self.code(0x30 + u32::from(b), 8) } else { self.code(0x190 + u32::from(b) - 144, 9) }
        }
    }
    let mut w = Bits { out: Vec::new(), acc: 0, n: 0 };
    w.put(1, 1); // final block
    w.put(1, 2); // fixed Huffman
    prefix.iter().chain(unit).for_each(|&b| w.literal(b));
    let mut total = prefix.len() + 4;
    while total + 258 <= size {
        w.code(0xC5, 8); // length code 285: 258 bytes
        w.code(3, 5); // distance code 3: 4 back
        total += 258;
    }
    suffix.iter().for_each(|&b| w.literal(b));
    total += suffix.len();
    w.code(0, 7); // end of block
    w.put(0, 7);
    (w.out, total)
}

/// An .xlsx whose sheet part inflates to about `size` bytes of ignorable
/// elements while the archive declares `declared` bytes.
pub fn xlsx_lying(size: usize, declared: u32) -> Vec<u8> {
    let (data, _) = deflate_repeat(SHEET_HEAD.as_bytes(), b"<x/>", size, SHEET_TAIL.as_bytes());
    let sheet = Entry { name: "xl/worksheets/sheet1.xml".into(), method: 8, data, crc: 0, declared_size: declared };
    xlsx_with(sheet, None)
}

/// A cell of the .xls builder: text (through the shared-string table) or a number.
pub enum Xls<'a> {
    Text(u16, u16, &'a str),
    Number(u16, u16, f64),
}

fn record(out: &mut Vec<u8>, typ: u16, data: &[u8]) {
    out.extend_from_slice(&typ.to_le_bytes());
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(data);
}

/// A BIFF8 workbook with one sheet "Sheet1" holding these cells, in an OLE
/// compound file (512-byte sectors, the stream padded past the mini-stream cutoff).
pub fn xls(cells: &[Xls<'_>]) -> Vec<u8> {
    let bof = |dt: u16| {
        [
            &0x0600u16.to_le_bytes()[..],
            &dt.to_le_bytes(),
            &0x0DBBu16.to_le_bytes(),
            &0x07CCu16.to_le_bytes(),
            &0u32.to_le_bytes(),
            &6u32.to_le_bytes(),
        ]
        .concat()
    };
    let strings: Vec<&str> = cells.iter().filter_map(|c| if let Xls::Text(_, _, s) = c { Some(*s) } else { None }).collect();
    let mut wb = Vec::new();
    record(&mut wb, 0x0809, &bof(0x0005));
    record(&mut wb, 0x0042, &1200u16.to_le_bytes());
    let boundsheet_at = wb.len() + 4;
    record(&mut wb, 0x0085, &[&0u32.to_le_bytes()[..], &[0, 0, 6, 0], b"Sheet1"].concat());
    let mut sst = [(strings.len() as u32).to_le_bytes(), (strings.len() as u32).to_le_bytes()].concat();
    for s in &strings {
        let units: Vec<u16> = s.encode_utf16().collect();
        sst.extend_from_slice(&(units.len() as u16).to_le_bytes());
        sst.push(1); // UTF-16
        units.iter().for_each(|u| sst.extend_from_slice(&u.to_le_bytes()));
    }
    record(&mut wb, 0x00FC, &sst);
    record(&mut wb, 0x000A, &[]);
    let sheet_at = wb.len() as u32;
    wb[boundsheet_at..boundsheet_at + 4].copy_from_slice(&sheet_at.to_le_bytes());
    record(&mut wb, 0x0809, &bof(0x0010));
    let rows = cells.iter().map(|c| match c {
        Xls::Text(r, ..) | Xls::Number(r, ..) => *r,
    });
    let cols = cells.iter().map(|c| match c {
        Xls::Text(_, c, _) | Xls::Number(_, c, _) => *c,
    });
    let (last_row, last_col) = (rows.max().unwrap_or(0), cols.max().unwrap_or(0));
    record(
        &mut wb,
        0x0200,
        &[&0u32.to_le_bytes()[..], &(u32::from(last_row) + 1).to_le_bytes(), &0u16.to_le_bytes(), &(last_col + 1).to_le_bytes(), &0u16.to_le_bytes()]
            .concat(),
    );
    let mut isst = 0u32;
    for c in cells {
        match c {
            Xls::Text(r, col, _) => {
                record(&mut wb, 0x00FD, &[&r.to_le_bytes()[..], &col.to_le_bytes(), &0u16.to_le_bytes(), &isst.to_le_bytes()].concat());
                isst += 1;
            }
            Xls::Number(r, col, v) => {
                record(&mut wb, 0x0203, &[&r.to_le_bytes()[..], &col.to_le_bytes(), &0u16.to_le_bytes(), &v.to_le_bytes()].concat())
            }
        }
    }
    record(&mut wb, 0x000A, &[]);
    let len = wb.len().max(4096);
    wb.resize(len.div_ceil(512) * 512, 0);
    let n = wb.len() / 512;

    // Sector 0: the FAT; 1: the directory; 2..: the workbook stream.
    const END: u32 = 0xFFFF_FFFE;
    const FREE: u32 = 0xFFFF_FFFF;
    let mut header = vec![0u8; 512];
    header[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    header[24..26].copy_from_slice(&0x3Eu16.to_le_bytes());
    header[26..28].copy_from_slice(&3u16.to_le_bytes());
    header[28..30].copy_from_slice(&0xFFFEu16.to_le_bytes());
    header[30..32].copy_from_slice(&9u16.to_le_bytes());
    header[32..34].copy_from_slice(&6u16.to_le_bytes());
    header[44..48].copy_from_slice(&1u32.to_le_bytes()); // FAT sectors
    header[48..52].copy_from_slice(&1u32.to_le_bytes()); // first directory sector
    header[56..60].copy_from_slice(&4096u32.to_le_bytes());
    header[60..64].copy_from_slice(&END.to_le_bytes()); // no mini FAT
    header[68..72].copy_from_slice(&END.to_le_bytes()); // no DIFAT sectors
    header[76..80].copy_from_slice(&0u32.to_le_bytes()); // the FAT is sector 0
    for i in 1..109 {
        header[76 + i * 4..80 + i * 4].copy_from_slice(&FREE.to_le_bytes());
    }
    let mut fat = vec![0xFFFF_FFFDu32, END];
    fat.extend((0..n as u32).map(|i| if i + 1 == n as u32 { END } else { 3 + i }));
    fat.resize(128, FREE);
    let mut dir = vec![0u8; 512];
    let entry = |d: &mut [u8], name: &str, typ: u8, child: u32, start: u32, size: u32| {
        let units: Vec<u16> = name.encode_utf16().collect();
        units.iter().enumerate().for_each(|(i, u)| d[i * 2..i * 2 + 2].copy_from_slice(&u.to_le_bytes()));
        d[64..66].copy_from_slice(&(((units.len() + 1) * 2) as u16).to_le_bytes());
        d[66] = typ;
        d[67] = 1;
        d[68..72].copy_from_slice(&FREE.to_le_bytes());
        d[72..76].copy_from_slice(&FREE.to_le_bytes());
        d[76..80].copy_from_slice(&child.to_le_bytes());
        d[116..120].copy_from_slice(&start.to_le_bytes());
        d[120..124].copy_from_slice(&size.to_le_bytes());
    };
    entry(&mut dir[..128], "Root Entry", 5, 1, END, 0);
    entry(&mut dir[128..256], "Workbook", 2, FREE, 2, wb.len() as u32);
    for d in dir[256..].chunks_mut(128) {
        d[68..80].copy_from_slice(&[0xFF; 12]);
    }
    let mut out = header;
    fat.iter().for_each(|f| out.extend_from_slice(&f.to_le_bytes()));
    out.extend_from_slice(&dir);
    out.extend_from_slice(&wb);
    out
}

/// The list of the console's fixture, as an .xls: header 邮箱/name, two recipients.
pub fn xls_list() -> Vec<u8> {
    xls(&[
        Xls::Text(0, 0, "邮箱"),
        Xls::Text(0, 1, "name"),
        Xls::Text(1, 0, "xls-one@example.test"),
        Xls::Text(1, 1, "王五"),
        Xls::Text(2, 0, "xls-two@example.test"),
        Xls::Number(2, 1, 13_800_000_000.0),
    ])
}

/// A deterministic generator for the byte mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A copy of `seed` with a few bytes changed: random bytes, bit flips, 0x00/0xFF
/// runs, or a spliced-in 32-bit boundary value (sizes, sector numbers, counts).
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    if b.is_empty() {
        return b;
    }
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(b.len());
        match rng.below(5) {
            0 => b[at] = rng.next() as u8,
            1 => b[at] ^= 1 << rng.below(8),
            2 => {
                let v = if rng.below(2) == 0 { 0 } else { 0xFF };
                let end = (at + 1 + rng.below(8)).min(b.len());
                b[at..end].fill(v);
            }
            3 => {
                let v: u32 = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFA, 0xFFFF_FFFE, 0xFFFF_FFFF][rng.below(9)];
                let end = (at + 4).min(b.len());
                b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
            }
            _ => b.truncate(at.max(1)),
        }
    }
    b
}
