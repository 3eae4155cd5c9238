//! Message pushes (消息推送): the model, and publishing to the queue like any
//! API request (the admin never sends), on their own scheduler. The HTTP
//! handlers are in `api::pushes`.

mod model;
mod schedule;

pub use model::{NEXT_RUNS, Push, PushView, Schedule, Sent};
pub use schedule::{audience, check_sendable, scheduler, send_again, send_if_due};

pub const PUSH: &str = "push";
/// Most recipients one push may have.
const MAX_PUSH_RECIPIENTS: usize = 100_000;
