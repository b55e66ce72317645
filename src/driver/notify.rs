//! The systemd readiness protocol (`Type=notify`, sd_notify(3)), through the `sd-notify`
//! crate: `READY=1` once the interface is up and the listeners are open, `STOPPING=1` when a
//! signal starts the shutdown. Without `NOTIFY_SOCKET` in the environment (not started by
//! systemd) these do nothing.

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// Tell the service manager synack is ready, with `status` for `systemctl status`.
pub fn ready(status: &str) {
    send(
        &[NotifyState::Ready, NotifyState::Status(status)],
        "READY=1",
    );
}

/// Tell the service manager synack is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

fn send(states: &[NotifyState], what: &str) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match sd_notify::notify(states) {
        Ok(()) => debug!("told the service manager {what}"),
        // The service manager decides what a missed READY=1 means (a start timeout); the
        // endpoint itself works, so carry on.
        Err(e) => warn!(
            "cannot tell the service manager {what} through NOTIFY_SOCKET: {}",
            crate::config::plain(&e)
        ),
    }
}
