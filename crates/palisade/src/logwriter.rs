//! The server's log writer: request threads append formatted lines to a shared buffer and
//! one background thread writes the buffer out in batches — `FLUSH_EVERY` after the first
//! line of a batch, or at once when a warning or error is waiting, or when the buffer is
//! half full. With nothing to write the thread sleeps until the next line.
//!
//! Why not a channel with a line per message: at thousands of requests a second, waking
//! a writer thread and making a `write(2)` per access-log line costs more than the rest
//! of the log, and on a small machine the writer's wake-ups preempt request threads. Here
//! a line costs a lock and a copy.
//!
//! Nothing is dropped: when the buffer is full, the writing thread waits for the writer
//! (back-pressure, as a blocking stderr would give) instead of losing lines. Dropping the
//! [`FlushGuard`] writes what is left before the process exits.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(25);
/// Most bytes buffered; a writer that would go past it waits.
const CAPACITY: usize = 4 << 20;

struct State {
    buf: Vec<u8>,
    /// A line that should not wait for the timer (a warning or an error) is buffered.
    urgent: bool,
    closed: bool,
    /// The writer thread sleeps until a line arrives (the buffer was empty): the first
    /// line wakes it, so that an idle server has no timer ticking.
    idle: bool,
    /// Threads waiting for room in a full buffer.
    waiting: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled for the writer thread: urgent line, half-full buffer, or close.
    wake: Condvar,
    /// Signalled by the writer thread after it emptied the buffer.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A `MakeWriter` for tracing-subscriber: each event's line goes into the shared buffer.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes out what is buffered and stops the writer thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn spawn<W: Write + Send + 'static>(out: W) -> std::io::Result<(BatchWriter, FlushGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: Vec::with_capacity(64 << 10),
            urgent: false,
            closed: false,
            idle: false,
            waiting: 0,
        }),
        wake: Condvar::new(),
        room: Condvar::new(),
    });
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("palisade-log".into())
        .spawn(move || run(&s, out))?;
    Ok((
        BatchWriter { shared: shared.clone() },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut spare: Vec<u8> = Vec::with_capacity(64 << 10);
    loop {
        let (closed, waiting) = {
            let mut st = shared.lock();
            if st.buf.is_empty() && !st.closed {
                st.idle = true;
                st = shared
                    .wake
                    .wait_while(st, |s| s.buf.is_empty() && !s.closed)
                    .unwrap_or_else(PoisonError::into_inner);
                st.idle = false;
            }
            // Lines that come soon after this one go out with it.
            if !st.closed && !st.urgent && st.buf.len() < CAPACITY / 2 {
                st = shared
                    .wake
                    .wait_timeout(st, FLUSH_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut st.buf, &mut spare);
            st.urgent = false;
            (st.closed, st.waiting > 0)
        };
        if waiting {
            shared.room.notify_all();
        }
        if !spare.is_empty() {
            // A failing stderr (closed pipe) must not stop the server; lines are lost
            // then, as they would be with any writer.
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            spare.clear();
            if spare.capacity() > CAPACITY {
                spare.shrink_to(64 << 10);
            }
        }
        if closed && shared.lock().buf.is_empty() {
            return;
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl BatchWriter {
    /// Appends one complete line that is not urgent (an access-log line).
    pub fn write_line(&self, line: &[u8]) {
        let _ = Line {
            shared: self.shared.clone(),
            urgent: false,
        }
        .write(line);
    }
}

/// The server's JSON log writer, when the server logs JSON: the gateway writes its
/// access-log lines straight into it, in the same shape as every other line.
static JSON_WRITER: std::sync::OnceLock<BatchWriter> = std::sync::OnceLock::new();

/// Records the writer of a server that logs JSON.
pub fn set_json_writer(w: BatchWriter) {
    let _ = JSON_WRITER.set(w);
}

/// The writer recorded by [`set_json_writer`].
pub fn json_writer() -> Option<&'static BatchWriter> {
    JSON_WRITER.get()
}

/// One event's writer: it knows whether the event is urgent.
pub struct Line {
    shared: Arc<Shared>,
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut st = self.shared.lock();
        while !st.closed && !st.buf.is_empty() && st.buf.len() + bytes.len() > CAPACITY {
            self.shared.wake.notify_one();
            st.waiting += 1;
            st = self.shared.room.wait(st).unwrap_or_else(PoisonError::into_inner);
            st.waiting -= 1;
        }
        if st.closed {
            // After shutdown began (a line from a thread still running): write directly.
            drop(st);
            return std::io::stderr().write(bytes);
        }
        let first = st.idle && st.buf.is_empty();
        st.buf.extend_from_slice(bytes);
        let wake = first || self.urgent && !st.urgent || st.buf.len() >= CAPACITY / 2;
        st.urgent |= self.urgent;
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            shared: self.shared.clone(),
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line {
            shared: self.shared.clone(),
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read after the writer thread wrote to it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_from_every_thread_is_written_once_in_order_per_thread() {
        use tracing_subscriber::fmt::MakeWriter as _;
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        // Long lines, so the buffer fills and writers must wait.
                        let line = format!("t{t} n{i} {}\n", "x".repeat(200));
                        w.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in out.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().unwrap()[1..].parse().unwrap();
            let n: usize = parts.next().unwrap()[1..].parse().unwrap();
            assert_eq!(n, next[t], "thread {t}: lines out of order or lost");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }

    #[test]
    fn after_an_idle_spell_the_next_line_wakes_the_writer() {
        let sink = Sink::default();
        let (writer, _guard) = spawn(sink.clone()).unwrap();
        let wait_for = |n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while sink.0.lock().unwrap().len() < n {
                assert!(std::time::Instant::now() < deadline, "a line was never written");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        writer.write_line(b"first\n");
        wait_for(6);
        // The writer has gone back to sleep with nothing to do (no timer); an ordinary
        // line must still reach the output on its own.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !writer.shared.lock().idle {
            assert!(
                std::time::Instant::now() < deadline,
                "an empty buffer leaves the writer asleep"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Longer than the timer: only the line's own wake-up can get it written now.
        std::thread::sleep(Duration::from_millis(60));
        assert!(writer.shared.lock().idle);
        writer.write_line(b"second\n");
        wait_for(13);
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"first\nsecond\n");
    }

    #[test]
    fn an_urgent_line_is_written_without_waiting_for_the_timer() {
        let sink = Sink::default();
        let (writer, _guard) = spawn(sink.clone()).unwrap();
        let mut line = Line {
            shared: writer.shared.clone(),
            urgent: true,
        };
        line.write_all(b"error: something\n").unwrap();
        // The writer wakes at once; far less than the timer's 25 ms is normal, but the
        // test only requires that the line arrives before the guard is dropped and well
        // within a second.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the urgent line was not written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"error: something\n");
    }
}
