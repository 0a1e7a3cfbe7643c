//! What a guest writes to stderr and through the `logging` import, kept
//! within bounds.
//!
//! - Guest stderr never fills up and never fails a write: the host keeps
//!   only its last [`STDERR_TAIL_BYTES`] (where a Rust panic message and
//!   the SDK's record marker land, for trap messages) and forwards each
//!   complete line to the host log (`info`, target `weir::udf`, field
//!   `stream = "stderr"`), cut at [`MAX_LINE_BYTES`].
//! - Log lines of one instance (stderr lines and `logging.log` calls
//!   together) are rate-limited to a number per second
//!   ([`crate::InstanceLimits::log_lines_per_second`]); the lines over the
//!   limit are dropped and counted, and the count is logged once the
//!   second is over (`dropped N log lines ...`).
//! - Guest text is [`sanitize`]d before it reaches the host log or an
//!   error message: control characters (newlines, escape sequences) are
//!   escaped, so a guest cannot forge a host log line or drive the
//!   terminal.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes of guest stderr kept for error messages (the end of it).
pub const STDERR_TAIL_BYTES: usize = 16 * 1024;

/// Longest guest log line forwarded, in bytes; the rest of a longer line
/// is cut off (and said to be).
pub const MAX_LINE_BYTES: usize = 4096;

/// Default [`crate::InstanceLimits::log_lines_per_second`].
pub const DEFAULT_LOG_LINES_PER_SECOND: u32 = 100;

/// What the Rust guest SDK prints before a panic message: the index of
/// the record that panicked; such lines are not forwarded to the log.
pub(crate) const RECORD_MARKER: &str = "[weir] input-record=";

/// `text` with every control character (newline, carriage return, tab,
/// escape, ...) escaped as Rust would (`\n`, `\u{1b}`), so that it stays
/// one line and cannot drive a terminal.
pub fn sanitize(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`sanitize`] for each line of `text`: the lines stay lines.
pub(crate) fn sanitize_lines(text: &str) -> String {
    text.split('\n')
        .map(sanitize)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A per-second budget of log lines, with time given by the caller.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    per_second: u32,
    window_start: Option<Instant>,
    in_window: u32,
    dropped_in_window: u64,
    dropped_total: u64,
}

/// The verdict on one log line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Admission {
    /// Log the line.
    pub(crate) log: bool,
    /// Lines dropped in the window that just ended (to be reported).
    pub(crate) dropped_before: u64,
}

impl LogLimiter {
    /// At most `per_second` lines in any one-second window.
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window_start: None,
            in_window: 0,
            dropped_in_window: 0,
            dropped_total: 0,
        }
    }

    /// Whether a line at `now` may be logged.
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        let mut dropped_before = 0;
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if expired {
            dropped_before = std::mem::take(&mut self.dropped_in_window);
            self.window_start = Some(now);
            self.in_window = 0;
        }
        let log = self.in_window < self.per_second;
        if log {
            self.in_window += 1;
        } else {
            self.dropped_in_window += 1;
            self.dropped_total += 1;
        }
        Admission {
            log,
            dropped_before,
        }
    }

    /// Lines dropped so far.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

/// The guest's log of one instance: the rate limit and where lines go.
#[derive(Debug)]
pub(crate) struct GuestLog {
    /// `operator[subtask]`.
    name: String,
    limiter: LogLimiter,
}

/// A guest log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl GuestLog {
    pub(crate) fn new(name: String, per_second: u32) -> Self {
        Self {
            name,
            limiter: LogLimiter::new(per_second),
        }
    }

    /// Logs one guest line (sanitized) at `level` unless over the rate.
    pub(crate) fn line(&mut self, level: Level, stream: &str, text: &str) {
        let admission = self.limiter.admit(Instant::now());
        let name = &self.name;
        if admission.dropped_before > 0 {
            tracing::warn!(
                target: "weir::udf",
                udf = %name,
                "dropped {} log lines over the limit of {} per second ({} so far)",
                admission.dropped_before,
                self.limiter.per_second,
                self.limiter.dropped_total()
            );
        }
        if !admission.log {
            return;
        }
        let message = sanitize(text);
        match level {
            Level::Trace => tracing::trace!(target: "weir::udf", udf = %name, stream, "{message}"),
            Level::Debug => tracing::debug!(target: "weir::udf", udf = %name, stream, "{message}"),
            Level::Info => tracing::info!(target: "weir::udf", udf = %name, stream, "{message}"),
            Level::Warn => tracing::warn!(target: "weir::udf", udf = %name, stream, "{message}"),
            Level::Error => tracing::error!(target: "weir::udf", udf = %name, stream, "{message}"),
        }
    }

    /// Lines dropped over the rate so far.
    #[cfg(test)]
    pub(crate) fn dropped_total(&self) -> u64 {
        self.limiter.dropped_total()
    }
}

#[derive(Debug)]
struct StderrInner {
    /// The last [`STDERR_TAIL_BYTES`] written.
    tail: VecDeque<u8>,
    /// The line being written, up to [`MAX_LINE_BYTES`].
    line: Vec<u8>,
    /// Whether the current line was cut.
    cut: bool,
    log: Arc<Mutex<GuestLog>>,
}

/// The guest's stderr: never full, never failing (cheap to clone; clones
/// share the stream).
#[derive(Debug, Clone)]
pub(crate) struct GuestStderr {
    inner: Arc<Mutex<StderrInner>>,
}

impl GuestStderr {
    /// A stderr that forwards lines to `log`.
    pub(crate) fn new(log: Arc<Mutex<GuestLog>>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(StderrInner {
                tail: VecDeque::with_capacity(1024),
                line: Vec::new(),
                cut: false,
                log,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StderrInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last [`STDERR_TAIL_BYTES`] the guest wrote.
    pub(crate) fn tail(&self) -> Vec<u8> {
        self.lock().tail.iter().copied().collect()
    }

    /// Takes `bytes` in; never fails.
    pub(crate) fn push(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let keep = bytes.len().min(STDERR_TAIL_BYTES);
        let overflow = (inner.tail.len() + keep).saturating_sub(STDERR_TAIL_BYTES);
        inner.tail.drain(..overflow);
        inner.tail.extend(&bytes[bytes.len() - keep..]);
        for &b in bytes {
            if b == b'\n' {
                inner.end_line();
            } else if inner.line.len() < MAX_LINE_BYTES {
                inner.line.push(b);
            } else {
                inner.cut = true;
            }
        }
    }
}

impl StderrInner {
    fn end_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        if !text.trim().is_empty() && !text.starts_with(RECORD_MARKER) {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            if self.cut {
                log.line(
                    Level::Info,
                    "stderr",
                    &format!("{text} [line cut at {MAX_LINE_BYTES} bytes]"),
                );
            } else {
                log.line(Level::Info, "stderr", text);
            }
        }
        self.line.clear();
        self.cut = false;
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestStderr {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestStderr {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stderr(per_second: u32) -> (GuestStderr, Arc<Mutex<GuestLog>>) {
        let log = Arc::new(Mutex::new(GuestLog::new("op[0]".into(), per_second)));
        (GuestStderr::new(Arc::clone(&log)), log)
    }

    #[test]
    fn sanitize_escapes_newlines_and_terminal_escapes() {
        assert_eq!(sanitize("plain text ü"), "plain text ü");
        assert_eq!(
            sanitize("a\nERROR forged\r\x1b[31mred\t"),
            "a\\nERROR forged\\r\\u{1b}[31mred\\t"
        );
        assert_eq!(sanitize_lines("one\x1b[2J\ntwo"), "one\\u{1b}[2J\ntwo");
    }

    #[test]
    fn stderr_never_fills_and_keeps_its_tail() {
        // Regression: a 256 KiB pipe for the life of an instance failed
        // the job after ~2.6k one-line `eprintln!`s.
        let (mut err, log) = stderr(10);
        for i in 0..100_000 {
            err.write(Bytes::from(format!("record {i} seen\n")))
                .unwrap();
            assert!(err.check_write().unwrap() > 0);
        }
        let tail = String::from_utf8(err.tail()).unwrap();
        assert!(tail.len() <= STDERR_TAIL_BYTES);
        assert!(tail.ends_with("record 99999 seen\n"), "{tail}");
        // Only 10 lines a second were logged; the rest were counted.
        assert!(log.lock().unwrap().dropped_total() >= 99_000);
    }

    #[test]
    fn a_huge_write_keeps_only_the_tail_and_a_cut_line() {
        let (err, _log) = stderr(10);
        err.push(&vec![b'x'; 10 << 20]);
        err.push(b"\nend\n");
        let tail = err.tail();
        assert_eq!(tail.len(), STDERR_TAIL_BYTES);
        assert!(tail.ends_with(b"x\nend\n"));
        let inner = err.lock();
        assert!(inner.line.is_empty() && !inner.cut);
    }

    #[test]
    fn the_limiter_admits_a_budget_per_second_and_reports_the_dropped() {
        let mut limiter = LogLimiter::new(2);
        let t0 = Instant::now();
        let admitted: Vec<bool> = (0..5).map(|_| limiter.admit(t0).log).collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        let later = limiter.admit(t0 + Duration::from_millis(999));
        assert!(!later.log);
        let next = limiter.admit(t0 + Duration::from_secs(1));
        assert_eq!(
            next,
            Admission {
                log: true,
                dropped_before: 4
            }
        );
        assert_eq!(limiter.dropped_total(), 4);
    }
}
