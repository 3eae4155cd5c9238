//! End-to-end tests live in `e2e/` (run with `make test`). They start the real
//! `herald-gateway` binary against real sinks: an HTTP server in the test
//! process and an SMTP server (aiosmtpd) in a child process.
