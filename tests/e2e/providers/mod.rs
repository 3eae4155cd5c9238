//! Provider plugins against faithful fake providers: each fake checks what the
//! real API checks (auth or signature, payload shape, limits, error codes).
//! The gateway reaches a fake through `plugins.redirect_hosts`, so plugins keep
//! their real provider URLs.
mod im_common;
mod im_dingtalk;
mod im_feishu;
mod im_slack;
mod im_wecom;
mod im_welink;
mod sms_aliyun;
mod sms_aliyun_voice;
pub(crate) mod sms_support;
mod sms_tencent;
pub(crate) mod sms_twilio;
mod sms_twilio_voice;
