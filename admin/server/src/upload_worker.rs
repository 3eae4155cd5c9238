//! Spreadsheet parsing in a child process: `herald-admin parse-upload`.
//!
//! An allocation failure aborts a Rust process, and a parser bug is a panic at
//! best, so an upload is never parsed inside the service: it re-executes its
//! own binary with the hidden sub-command, bytes on stdin, the result as JSON
//! on stdout. The child limits its own address space, CPU time and file
//! writes before it reads anything; the parent bounds how many run at once,
//! their wall-clock time and how much they may answer. A child that dies is
//! a 422 naming the field `file`, and the service goes on.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use herald_core::i18n::Msg;
use herald_core::msg;

use crate::excel;

/// The hidden sub-command.
pub const SUBCOMMAND: &str = "parse-upload";
/// The child's address space: the parser's own limits keep it well below.
pub const MEMORY_BYTES: u64 = 1536 << 20;
/// The child's CPU time (SIGXCPU, then SIGKILL a second later).
pub const CPU_SECONDS: u64 = 20;
/// The most a parse may take, waiting included, before the child is killed.
const WALL: Duration = Duration::from_secs(30);
/// Parses at once; more wait for a slot (within `WALL`), then get a 503.
const CONCURRENT: usize = 2;
/// The most a child may answer.
const MAX_OUTPUT: u64 = 512 << 20;
/// The most input a child reads (the service's upload limit is far lower).
const MAX_INPUT: u64 = 256 << 20;

/// Exit codes of the child: a parsed list on stdout, or the user's error.
const EXIT_PARSED: i32 = 0;
const EXIT_REFUSED: i32 = 3;

static SLOTS: Semaphore = Semaphore::const_new(CONCURRENT);

/// Why a parse gave no list.
#[derive(Debug)]
pub enum Failure {
    /// The file is not a list the parser accepts (the parser's message).
    Refused(Msg),
    /// The child died or ran out of time or memory.
    Died(Msg),
    /// Every slot stayed busy.
    Busy,
}

/// Parse in a child: the JSON of `excel::Parsed`, ready to answer.
pub async fn parse(kind: excel::Kind, bytes: Vec<u8>, max_rows: usize) -> Result<Vec<u8>, Failure> {
    // /proc/self/exe is this very binary even after an upgrade replaced the file.
    let exe = if std::path::Path::new("/proc/self/exe").exists() {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().map_err(|e| Failure::Died(msg!("upload.parser_start", error = e)))?
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg(SUBCOMMAND).arg(kind.extension()).arg(max_rows.to_string());
    run(cmd, bytes).await
}

/// Run a prepared child command on `bytes` (tests point it at another binary).
pub async fn run(mut cmd: tokio::process::Command, bytes: Vec<u8>) -> Result<Vec<u8>, Failure> {
    let deadline = tokio::time::Instant::now() + WALL;
    let _slot = tokio::time::timeout_at(deadline, SLOTS.acquire()).await.map_err(|_| Failure::Busy)?.map_err(|_| Failure::Busy)?;
    // No secrets (operator token, database credentials) in the parser's environment.
    cmd.env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| Failure::Died(msg!("upload.parser_start", error = e)))?;
    let mut stdin = child.stdin.take().ok_or_else(|| Failure::Died(msg!("upload.parser_start", error = "no stdin")))?;
    let stdout = child.stdout.take().ok_or_else(|| Failure::Died(msg!("upload.parser_start", error = "no stdout")))?;
    let stderr = child.stderr.take().ok_or_else(|| Failure::Died(msg!("upload.parser_start", error = "no stderr")))?;
    let feed = async move {
        // The child may stop reading early (a refused header): a broken pipe is fine.
        let _ = stdin.write_all(&bytes).await;
        drop(stdin);
    };
    let answer = async move {
        let mut out = Vec::new();
        stdout.take(MAX_OUTPUT + 1).read_to_end(&mut out).await.map(|_| out)
    };
    let log = async move {
        let mut err = Vec::new();
        let _ = stderr.take(16 * 1024).read_to_end(&mut err).await;
        err
    };
    let work = async { tokio::join!(feed, answer, log) };
    let (out, log) = match tokio::time::timeout_at(deadline, work).await {
        Ok(((), out, log)) => (out, log),
        Err(_) => {
            let _ = child.kill().await;
            tracing::warn!("upload parser killed after {WALL:?}");
            return Err(Failure::Died(msg!("upload.timeout", seconds = WALL.as_secs())));
        }
    };
    let out = match out {
        Ok(out) if out.len() as u64 <= MAX_OUTPUT => out,
        Ok(_) => {
            let _ = child.kill().await;
            return Err(Failure::Died(msg!("upload.answer_too_large", max = MAX_OUTPUT)));
        }
        Err(e) => {
            let _ = child.kill().await;
            return Err(Failure::Died(msg!("upload.answer_lost", error = e)));
        }
    };
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(s)) => s,
        _ => {
            let _ = child.kill().await;
            return Err(Failure::Died(msg!("upload.timeout", seconds = WALL.as_secs())));
        }
    };
    match status.code() {
        Some(EXIT_PARSED) if serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok() => Ok(out),
        Some(EXIT_REFUSED) => match serde_json::from_slice::<Msg>(&out) {
            Ok(why) => Err(Failure::Refused(why)),
            Err(e) => Err(Failure::Died(msg!("upload.parser_answer", error = e))),
        },
        _ => {
            use std::os::unix::process::ExitStatusExt;
            let how = match status.signal() {
                Some(sig) => format!("signal {sig}"),
                None => format!("{status}"),
            };
            let log = String::from_utf8_lossy(&log);
            tracing::warn!(status = %how, stderr = %log.trim(), "upload parser died");
            Err(Failure::Died(msg!("upload.limits", memory_mib = MEMORY_BYTES >> 20, cpu_seconds = CPU_SECONDS)))
        }
    }
}

/// Limit this process (the child): address space, CPU time, no core dump, no file written.
pub fn limit_self(memory: u64, cpu_seconds: u64) -> std::io::Result<()> {
    let set = |res, soft: u64, hard: u64| {
        let lim = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard as libc::rlim_t };
        // SAFETY: setrlimit reads the struct we pass; no memory is handed over.
        if unsafe { libc::setrlimit(res, &lim) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    };
    set(libc::RLIMIT_AS, memory, memory)?;
    set(libc::RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)?;
    set(libc::RLIMIT_CORE, 0, 0)?;
    set(libc::RLIMIT_FSIZE, 0, 0)
}

/// The child's side: `herald-admin parse-upload <xls|xlsx> <max rows>`, bytes on stdin.
/// Returns the exit code.
pub fn child_main(args: &[String]) -> i32 {
    use std::io::{Read, Write};
    if let Err(e) = limit_self(MEMORY_BYTES, CPU_SECONDS) {
        eprintln!("parse-upload: cannot set limits: {e}");
        return 2;
    }
    let (Some(ext), Some(max_rows)) = (args.first(), args.get(1).and_then(|m| m.parse::<usize>().ok())) else {
        eprintln!("usage: herald-admin {SUBCOMMAND} <xls|xlsx> <max rows> < file");
        return 2;
    };
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_INPUT).read_to_end(&mut bytes) {
        eprintln!("parse-upload: {e}");
        return 2;
    }
    let parsed = excel::parse(&format!("upload.{ext}"), bytes, max_rows);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (code, written) = match parsed {
        Ok(list) => (EXIT_PARSED, serde_json::to_writer(&mut out, &list).map_err(std::io::Error::from)),
        Err(why) => (EXIT_REFUSED, serde_json::to_writer(&mut out, &why.msg()).map_err(std::io::Error::from)),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("parse-upload: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[tokio::test]
    async fn a_child_that_dies_is_a_failure_the_parent_survives() {
        let died = run(sh("cat >/dev/null; kill -9 $$"), vec![7; 300_000]).await;
        assert!(matches!(died, Err(Failure::Died(ref m)) if m.key == "upload.limits"), "{died:?}");
        // One that answers garbage with success is no list either.
        assert!(matches!(run(sh("printf 'not json'"), vec![]).await, Err(Failure::Died(_))));
        // One that stops reading early still gets its answer read.
        match run(sh(r#"head -c 10 >/dev/null; printf '{"key":"sheet.no_recipient_column"}'; exit 3"#), vec![1; 1 << 20]).await {
            Err(Failure::Refused(m)) => assert_eq!(m, msg!("sheet.no_recipient_column")),
            other => panic!("{other:?}"),
        }
        let ok = run(sh(r#"cat >/dev/null; printf '{"rows":[],"errors":[]}'"#), b"sheet".to_vec()).await.unwrap();
        assert_eq!(ok, br#"{"rows":[],"errors":[]}"#);
    }
}
