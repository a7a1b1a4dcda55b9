//! What the commands print: their output on stdout, and the final error line on stderr.
//!
//! It owns the one rule for a stdout that goes away: a closed pipe (`okta-spot-sync plan |
//! head`, a pager quit early) ends the output quietly — `println!` would panic, because Rust
//! ignores SIGPIPE and a write then fails with EPIPE — and the command carries on and exits
//! with its own code. Any other write error (a full disk behind `> report.txt`) is said once
//! on stderr and turns the exit code into 1 ([`exit_code`]). Writing to stderr never panics
//! either. It must not decide what is printed; logs go through `tracing`, not here.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

/// What became of stdout: open, closed by the reader, or failed otherwise.
static STDOUT: AtomicU8 = AtomicU8::new(OPEN);

/// Writes to stdout (use [`out!`](crate::out) and [`outln!`](crate::outln)); does nothing
/// once a write has failed.
pub fn write(args: fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::SeqCst) != OPEN {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) else {
        return;
    };
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT.store(CLOSED, Ordering::SeqCst);
    } else if STDOUT.swap(FAILED, Ordering::SeqCst) == OPEN {
        error(format_args!(
            "cannot write the output to stdout: {e}; the command went on (see its log lines), \
             but what it printed is incomplete"
        ));
    }
}

/// Writes one line to stderr, ignoring a stderr that cannot be written to.
pub fn error(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// The process's exit code: the command's own, or 1 when its output could not be written
/// (a closed pipe is not such a failure: the reader chose to stop).
pub fn exit_code(command: i32) -> i32 {
    match STDOUT.load(Ordering::SeqCst) {
        FAILED => crate::report::exit::ERROR,
        _ => command,
    }
}

/// `print!` that survives a closed stdout (see the module's header).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*)) };
}

/// `println!` that survives a closed stdout (see the module's header).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::error(format_args!($($arg)*)) };
}
