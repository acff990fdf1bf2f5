//! Ctrl-C and SIGTERM: long work checks [`check`] between files, copy loops
//! check [`interrupted`] at every buffer (a reader or writer fails with
//! [`io_error`], which [`Error::io`] turns back into [`Error::Interrupted`]),
//! waits are [`sleep`]s that end early, and HTTP transfers in flight are
//! ended by a [`watch`]. The work stops and cleans up its staging folder, so
//! an interrupt never leaves a half-written output; the process exits 130.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM (once, from `main`).
pub fn install() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

/// Whether an interrupt has arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Fails with [`Error::Interrupted`] once an interrupt has arrived.
///
/// Tests slow long work down with `REGKIT_TEST_STEP_DELAY_MS` (a pause at
/// every check) so they can interrupt it half-way, deterministically.
pub fn check() -> Result<()> {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        std::env::var("REGKIT_TEST_STEP_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(d) = delay {
        std::thread::sleep(*d);
    }
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// What an interrupted read or write fails with: an `io::Error` whose
/// payload says so, recognised by [`is_io_error`] (and by [`Error::io`]).
/// Its kind is not `Interrupted`, which `io::copy` and `read_to_end` retry.
pub fn io_error() -> io::Error {
    io::Error::other(Stopped)
}

/// Whether `e` is (or wraps, as ureq wraps a request body's error) the
/// error of [`io_error`].
pub fn is_io_error(e: &io::Error) -> bool {
    let mut inner: Option<&(dyn std::error::Error + 'static)> = match e.get_ref() {
        Some(i) => Some(i),
        None => return false,
    };
    while let Some(i) = inner {
        if i.is::<Stopped>() {
            return true;
        }
        if let Some(io) = i.downcast_ref::<io::Error>() {
            return is_io_error(io);
        }
        inner = i.source();
    }
    false
}

/// [`io_error`] once an interrupt has arrived: for readers and writers.
pub fn check_io() -> io::Result<()> {
    if interrupted() {
        Err(io_error())
    } else {
        Ok(())
    }
}

#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Stopped {}

/// How often waits and watches look at the flag.
const POLL: Duration = Duration::from_millis(50);

/// Sleeps for `d`, or fails with [`Error::Interrupted`] as soon as an
/// interrupt arrives.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        if interrupted() {
            return Err(Error::Interrupted);
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(POLL));
    }
}

/// Runs a function on a thread of its own when an interrupt arrives, until
/// dropped: for work blocked in calls that do not look at the flag (a
/// socket waiting for a reply), which the function ends.
pub struct Watch {
    done: Arc<AtomicBool>,
}

/// Starts a [`Watch`] that calls `on_interrupt` once an interrupt arrives.
pub fn watch(on_interrupt: impl FnOnce() + Send + 'static) -> Watch {
    let done = Arc::new(AtomicBool::new(false));
    let seen = done.clone();
    std::thread::spawn(move || {
        while !seen.load(Ordering::Relaxed) {
            if interrupted() {
                on_interrupt();
                return;
            }
            std::thread::sleep(POLL);
        }
    });
    Watch { done }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_its_io_error_when_wrapped() {
        assert!(is_io_error(&io_error()));
        let wrapped = io::Error::other(io_error());
        assert!(is_io_error(&wrapped));
        assert!(!is_io_error(&io::Error::other("interrupted")));
        assert!(!is_io_error(&io::Error::from(io::ErrorKind::Interrupted)));
    }
}
