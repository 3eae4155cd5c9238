//! Provider plugins against faithful fake providers: each fake checks what the
//! real API checks (auth or signature, payload shape, limits, error codes).
//! The gateway reaches a fake through `plugins.redirect_hosts`, so plugins keep
//! their real provider URLs.
