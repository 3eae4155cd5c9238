//! Fuzzes the upload parser for a bounded time, through the real binary's
//! `herald-admin parse-upload` child (the very process the service starts,
//! with its memory and CPU limits). Seeds are made here: the files that used
//! to crash the service (a cell at XFD1048576, one at Z2000000, a sheet whose
//! archive lies about its size), a normal .xlsx list, its sheet XML alone, and
//! a small .xls. Each iteration mutates a seed and asserts the parser answers
//! (a list, exit 0, or a refusal, exit 3): never a panic, an abort or a kill
//! by its limits, and the children's peak memory stays under a bound.
//!
//! `HERALD_FUZZ_SECONDS` sets the time (default 20), `HERALD_FUZZ_SEED` the
//! generator's seed (default: from the clock, printed). A failing input is
//! written to the temp directory and named in the failure.

#[path = "support/sheets.rs"]
mod sheets;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sheets::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_herald-admin");
/// The children's peak resident memory may not pass this.
const MAX_RSS_BYTES: u64 = 1 << 30;

/// Run the parser child on `bytes`: its exit code (None when killed by a signal) and stderr.
fn parse(ext: &str, bytes: &[u8]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["parse-upload", ext, "1000"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herald-admin parse-upload");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let feed = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feed.join().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn children_peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

fn fail(what: &str, ext: &str, bytes: &[u8], code: Option<i32>, stderr: &str) -> ! {
    let path = std::env::temp_dir().join(format!("herald-upload-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    panic!("{what}: exit {code:?} on {} ({} bytes); stderr: {stderr}", path.display(), bytes.len());
}

#[test]
fn the_upload_parser_survives_mutated_spreadsheets() {
    let seconds: u64 = std::env::var("HERALD_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("HERALD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    println!("fuzz seed {seed} (HERALD_FUZZ_SEED), {seconds} s (HERALD_FUZZ_SECONDS)");
    let mut rng = Rng(seed);

    // The crashing shapes themselves, unmutated: refused.
    let lying = sheets::xlsx_lying(600 << 20, 1000);
    for (name, bytes) in [
        ("A1 + XFD1048576", sheets::xlsx_cells(&[("A1", "to"), ("XFD1048576", "x")])),
        ("A1 + Z2000000", sheets::xlsx_cells(&[("A1", "to"), ("Z2000000", "x")])),
        ("a sheet declaring 1 000 bytes, inflating to 600 MB", lying),
    ] {
        let (code, stderr) = parse("xlsx", &bytes);
        if code != Some(3) {
            fail(&format!("{name} was not refused"), "xlsx", &bytes, code, &stderr);
        }
    }
    let (code, stderr) = parse("xls", &sheets::xls_list());
    assert_eq!(code, Some(0), "the .xls seed parses: {stderr}");
    let (code, stderr) = parse("xlsx", &sheets::xlsx_list(20));
    assert_eq!(code, Some(0), "the .xlsx seed parses: {stderr}");

    let list_xml = {
        let zip = sheets::xlsx_list(20);
        // The sheet part is stored last, uncompressed: cut it out for XML-level mutation.
        let start = zip.windows(11).rposition(|w| w == b"<?xml versi").unwrap();
        let end = zip.windows(12).rposition(|w| w == b"</worksheet>").unwrap() + 12;
        zip[start..end].to_vec()
    };
    let xlsx_seeds = [
        sheets::xlsx_list(20),
        sheets::xlsx_cells(&[("A1", "to"), ("XFD1048576", "x")]),
        sheets::xlsx_cells(&[("A1", "to"), ("Z2000000", "x")]),
        sheets::xlsx_lying(4 << 20, 1000),
    ];
    use sheets::Xls::*;
    let xls_seeds = [sheets::xls_list(), sheets::xls(&[Text(0, 0, "to"), Text(1, 0, "a@b.c"), Number(1, 1, 1.5), Text(300, 40, "far")])];

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut parsed, mut refused) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let (ext, bytes) = match rng.below(4) {
            0 => ("xlsx", sheets::mutate(&xlsx_seeds[rng.below(xlsx_seeds.len())], &mut rng)),
            1 => {
                let xml = sheets::mutate(&list_xml, &mut rng);
                ("xlsx", sheets::xlsx_with(sheets::Entry::stored("xl/worksheets/sheet1.xml", &xml), Some(&["to", "name", "code"])))
            }
            _ => ("xls", sheets::mutate(&xls_seeds[rng.below(xls_seeds.len())], &mut rng)),
        };
        let (code, stderr) = parse(ext, &bytes);
        match code {
            Some(0) => parsed += 1,
            Some(3) => refused += 1,
            _ => fail("the parser did not answer", ext, &bytes, code, &stderr),
        }
        runs += 1;
        let rss = children_peak_rss();
        assert!(rss < MAX_RSS_BYTES, "a parser child peaked at {rss} bytes");
    }
    println!("{runs} mutated files: {parsed} parsed, {refused} refused; children's peak RSS {} MiB", children_peak_rss() >> 20);
    assert!(runs >= 20, "only {runs} runs in {seconds} s");
}
