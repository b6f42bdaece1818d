//! `waitress._core.Server`: runs `waitress_server` for the Python server classes, with a pool
//! of worker threads that call the application.
//!
//! Threads have jobs (STYLE.md convention 5):
//! - the caller's thread runs `run()`: it starts the stand-by and the workers, then waits
//!   with the GIL released, waking every 20 ms to emit queued log records and to let Python
//!   handle signals (Ctrl-C raises `KeyboardInterrupt` there, which stops the server);
//! - the stand-by thread (`waitress-io`) runs `waitress_server::serve` and never attaches to
//!   the interpreter: it drives the I/O only while every worker is busy;
//! - `threads` worker threads take turns at driving the I/O (`Crew::next_after`, with the
//!   GIL released) and run the WSGI call for the request they find (`wsgi.rs`); each keeps
//!   one Python thread state for its life, holding the GIL only while it serves a request.
//!
//! Nothing is started before `run()` (SPEC D4): a `Server` built before `os.fork()` runs
//! in the child.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use waitress_http::Limits;
use waitress_server::{
    Crew, Ended, Handler, Level, Listener, LogSink, Pushed, Request, ServerConfig, StopHandle,
};

use crate::wsgi::{self, Helpers, Site};

/// Records emitted per GIL hold. Under load a queue-depth warning comes per request and a
/// record costs ~20 us of Python: emitted in one run, a 20 ms batch held the GIL until the
/// interpreter's 5 ms switch interval took it away, stalling every worker. Measured (hello,
/// 128 connections, A/B in one run): p99 31 -> 14 ms, +12% req/s.
const EMIT_SLICE: usize = 8;

/// Log records from the I/O side, emitted by the thread in `run()` (SPEC D9).
#[derive(Debug)]
struct LogQueue {
    records: Mutex<Vec<(&'static str, Level, String)>>,
    /// `logging.getLogger("waitress.queue").isEnabledFor(WARNING)`, refreshed by the
    /// serving thread at every wake: a silenced queue logger costs no record per request.
    queue_warnings: AtomicBool,
}

impl Default for LogQueue {
    fn default() -> Self {
        Self {
            records: Mutex::default(),
            queue_warnings: AtomicBool::new(true),
        }
    }
}

impl LogSink for LogQueue {
    fn log(&self, level: Level, message: String) {
        self.push("waitress", level, message);
    }
}

impl LogQueue {
    fn push(&self, logger: &'static str, level: Level, message: String) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((logger, level, message));
    }

    /// Re-read whether the queue-depth warning would be logged at all.
    fn refresh_levels(&self, py: Python<'_>) -> PyResult<()> {
        let enabled = py
            .import("logging")?
            .call_method1("getLogger", ("waitress.queue",))?
            .call_method1("isEnabledFor", (30,))?
            .is_truthy()?;
        self.queue_warnings.store(enabled, Ordering::Release);
        Ok(())
    }

    fn emit(&self, py: Python<'_>) -> PyResult<()> {
        let records =
            std::mem::take(&mut *self.records.lock().unwrap_or_else(PoisonError::into_inner));
        if records.is_empty() {
            return Ok(());
        }
        let logging = py.import("logging")?;
        // Records come in runs from one logger (a queue-depth warning per request under
        // load): look each logger up once per run.
        let mut current: Option<(&'static str, Bound<'_, PyAny>)> = None;
        for (i, (name, level, message)) in records.into_iter().enumerate() {
            if i > 0 && i % EMIT_SLICE == 0 {
                // Let a worker waiting for the GIL run between slices.
                py.detach(|| ());
            }
            let logger = match current.take() {
                Some((same, logger)) if same == name => logger,
                _ => logging.call_method1("getLogger", (name,))?,
            };
            let level = match level {
                Level::Info => 20,
                Level::Warning => 30,
                Level::Error => 40,
            };
            logger.call_method1("log", (level, message))?;
            current = Some((name, logger));
        }
        Ok(())
    }
}

/// Hands requests to the worker threads.
struct Pool {
    crew: Arc<Crew>,
    threads: usize,
    /// Requests handed over and not yet taken by a worker.
    queued: Arc<AtomicUsize>,
    /// Workers running a request.
    busy: Arc<AtomicUsize>,
    log: Arc<LogQueue>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    /// SPEC §3.15: `Task queue depth is N` when `queued` requests wait and fewer workers
    /// are idle.
    fn warn_depth(&self, queued: usize) {
        let idle = self
            .threads
            .saturating_sub(self.busy.load(Ordering::Acquire));
        if queued > idle && self.log.queue_warnings.load(Ordering::Acquire) {
            self.log.push(
                "waitress.queue",
                Level::Warning,
                format!("Task queue depth is {}", queued - idle),
            );
        }
    }
}

impl Handler for Pool {
    fn handle(&self, request: Request, responder: waitress_server::Responder) {
        let queued = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
        match self.crew.push((request, responder)) {
            Pushed::Refused => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
            }
            // A request has to wait for a worker. One a free worker runs in its turn (a
            // leader's burst, crew.rs rule 2) does not, unless every worker becomes busy
            // first (`every_worker_busy`).
            Pushed::Queued => self.warn_depth(queued),
            Pushed::ToLeader => {}
        }
    }

    fn every_worker_busy(&self) {
        self.warn_depth(self.queued.load(Ordering::Acquire));
    }
}

/// One listener's application and environ values, as Python passes them: `(app,
/// drop_proxy_headers, server_name, server_port, url_scheme, url_prefix, ident,
/// expose_tracebacks)`.
pub(crate) type SiteArgs = (
    Py<PyAny>,
    bool,
    String,
    String,
    String,
    String,
    Py<PyAny>,
    bool,
);

impl Site {
    /// The site of one listener from what Python passes for it.
    pub(crate) fn from_args(
        py: Python<'_>,
        (app, drop_proxy, server_name, server_port, url_scheme, url_prefix, ident, expose): SiteArgs,
    ) -> Self {
        let header = ident
            .extract::<String>(py)
            .ok()
            .filter(|ident| !ident.is_empty())
            .map(Arc::from);
        Site {
            app,
            drop_proxy_headers: drop_proxy,
            server_name: PyString::new(py, &server_name).unbind(),
            server_port: PyString::new(py, &server_port).unbind(),
            url_scheme: PyString::new(py, &url_scheme).unbind(),
            url_prefix,
            software: ident,
            ident: header,
            expose_tracebacks: expose,
            template: std::sync::OnceLock::new(),
        }
    }
}

/// Serves listening sockets; each listener's WSGI application runs on worker threads.
#[pyclass(module = "waitress._core")]
#[derive(Debug)]
pub struct Server {
    listeners: Vec<(RawFd, bool)>,
    config: ServerConfig,
    threads: usize,
    sites: Arc<Vec<Site>>,
    stop: Mutex<StopHandle>,
}

/// The pool's view of its own load, for the queue-depth warning.
struct Counters {
    queued: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
}

impl Counters {
    /// Count a worker in (`1`) or out (`-1`) of a request. Only workers holding the GIL
    /// change `busy` (the token shows it), and the GIL orders them, so a load and a store
    /// do what a locked add would; the readers, without the GIL, want only a recent value.
    fn busy_by(&self, _py: Python<'_>, step: isize) {
        let now = self.busy.load(Ordering::Acquire);
        self.busy
            .store(now.saturating_add_signed(step), Ordering::Release);
    }
}

fn worker(sites: &[Site], helpers: &Arc<Helpers>, crew: &Crew, counters: &Counters) {
    // Attached for the thread's whole life and detached while waiting or driving the I/O
    // (`Crew::next_after`): one thread state per worker, not one created and destroyed per
    // request (each costs an mmap/munmap of its frame stack).
    Python::attach(|py| {
        let mut ended = None;
        // This worker's `Call` object, reused while no application keeps one (`serve`).
        let mut spare: wsgi::Spare = None;
        // This worker's output buffer, from one response to the next (`end`, `serve`).
        let mut out = Vec::new();
        loop {
            // The response just run is ended as this worker turns to the next: its last
            // piece is written to the socket there (handler.rs rules 5 and 6); the crew tells
            // the connection inside the runtime (no driver wake-up), or keeps the end for
            // the next to lead (crew.rs rule 2), unless it ended quietly. Waiting for a
            // request, or for the lead, is done without the GIL.
            let ending = ended.take();
            let finish = || end(ending, &mut out);
            // A request already queued (a burst's next) is taken with the GIL kept: the end
            // made on the way never blocks (a write the socket takes at once, or hands
            // over), and a release and an acquire of the GIL cost ~400 instructions and six
            // locked ones (docs/benchmarks.md, Session 12).
            let next = match crew.take_queued(finish) {
                Ok(job) => Some(job),
                Err(finish) => py.detach(|| crew.next_after(finish)),
            };
            let Some((request, responder)) = next else {
                return;
            };
            counters.busy_by(py, 1);
            counters.queued.fetch_sub(1, Ordering::AcqRel);
            let Some(site) = sites.get(request.listener).or_else(|| sites.first()) else {
                responder.abort("no application for this listener");
                counters.busy_by(py, -1);
                continue;
            };
            ended = wsgi::serve(py, site, helpers, request, responder, &mut spare, &mut out)
                .unwrap_or_else(|err| {
                    err.write_unraisable(py, None);
                    None
                });
            // Idle before the response completes: the client's next request must not find
            // this worker counted busy (a false "Task queue depth" warning).
            counters.busy_by(py, -1);
        }
    });
}

/// End a response `wsgi::serve` ran: its end, for the crew to tell its connection
/// (`Crew::next_after`), unless it failed (an abort is sent here).
fn end(
    ended: Option<(waitress_server::Responder, wsgi::Ending)>,
    out: &mut Vec<u8>,
) -> Option<Ended> {
    match ended? {
        (responder, wsgi::Ending::Finish { keep_alive, last }) => {
            // An error means the client is gone: nothing is left to tell.
            let mut ended = responder.finish_raw_ended(last, keep_alive).ok()?;
            // Kept for the worker's next response (`wsgi::serve`).
            *out = ended.take_spare();
            Some(ended)
        }
        (responder, wsgi::Ending::Abort(detail)) => {
            responder.abort(&detail);
            None
        }
    }
}

/// Closes the crew when dropped (`run()`).
struct CloseOnDrop(Arc<Crew>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        drop(self.0.close());
    }
}

/// How often the serving thread wakes to emit log records and run signal handlers.
const WAKE_EVERY: Duration = Duration::from_millis(20);

/// How long `run()` waits, once `serve` has returned, for workers to leave.
const WORKER_GRACE: Duration = Duration::from_millis(50);

/// Wait up to `WORKER_GRACE` for the workers to leave; join those that did and return how
/// many are still inside the application.
fn release_workers(workers: Vec<thread::JoinHandle<()>>) -> usize {
    let deadline = std::time::Instant::now() + WORKER_GRACE;
    while workers.iter().any(|w| !w.is_finished()) && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let (done, stuck): (Vec<_>, Vec<_>) = workers
        .into_iter()
        .partition(thread::JoinHandle::is_finished);
    for handle in done {
        let _ = handle.join();
    }
    stuck.len()
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (listeners, sites, *, threads, connection_limit, channel_request_lookahead, header_timeout, channel_timeout,
        inbuf_overflow, shutdown_timeout, ident, recv_bytes, log_socket_errors,
        outbuf_overflow, outbuf_high_watermark, max_request_header_size, max_request_body_size, max_request_line, max_request_headers))]
    #[allow(
        clippy::too_many_arguments,
        reason = "one keyword argument per Adjustments option"
    )]
    fn new(
        py: Python<'_>,
        listeners: Vec<(RawFd, bool)>,
        sites: Vec<SiteArgs>,
        threads: usize,
        connection_limit: usize,
        channel_request_lookahead: usize,
        header_timeout: f64,
        channel_timeout: f64,
        inbuf_overflow: usize,
        shutdown_timeout: f64,
        ident: Option<String>,
        recv_bytes: usize,
        log_socket_errors: bool,
        outbuf_overflow: usize,
        outbuf_high_watermark: usize,
        max_request_header_size: usize,
        max_request_body_size: u64,
        max_request_line: usize,
        max_request_headers: usize,
    ) -> Self {
        let config = ServerConfig {
            limits: Limits {
                max_request_header_size,
                max_request_body_size,
                max_request_line,
                max_request_headers,
                ..Limits::default()
            },
            header_timeout: seconds(header_timeout),
            channel_timeout: seconds(channel_timeout),
            inbuf_overflow,
            connection_limit: connection_limit.max(1),
            channel_request_lookahead,
            shutdown_timeout: seconds(shutdown_timeout),
            ident,
            recv_bytes,
            log_socket_errors,
            outbuf_overflow,
            outbuf_high_watermark,
        };
        let sites = sites
            .into_iter()
            .map(|args| Site::from_args(py, args))
            .collect();
        Self {
            listeners,
            config,
            threads,
            sites: Arc::new(sites),
            stop: Mutex::new(StopHandle::new()),
        }
    }

    /// Serve until `stop()` or a signal; see the module header.
    #[pyo3(signature = (on_stop = None))]
    fn run(&self, py: Python<'_>, on_stop: Option<Py<PyAny>>) -> PyResult<()> {
        let mut listeners = Vec::with_capacity(self.listeners.len());
        for &(fd, is_unix) in &self.listeners {
            // SAFETY: `fd` is the descriptor of a listening socket that the calling Python
            // server object owns and keeps open for the whole of `run()`; it is only
            // borrowed here to duplicate it, and the duplicate is what the server owns.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let owned = borrowed.try_clone_to_owned()?;
            listeners.push(if is_unix {
                Listener::Unix(std::os::unix::net::UnixListener::from(owned))
            } else {
                Listener::Tcp(std::net::TcpListener::from(owned))
            });
        }
        let stop = StopHandle::new();
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = stop.clone();
        let crew = Crew::new();
        // However `run()` ends (a thread that could not be started included), the workers
        // waiting in the crew are let go; after a normal run `serve` closed it already.
        let _release = CloseOnDrop(Arc::clone(&crew));
        let queued = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new(AtomicUsize::new(0));
        let helpers = Arc::new(Helpers::load(py)?);
        let mut workers = Vec::with_capacity(self.threads);
        for n in 0..self.threads {
            let crew = Arc::clone(&crew);
            let sites = Arc::clone(&self.sites);
            let helpers = Arc::clone(&helpers);
            let counters = Counters {
                queued: Arc::clone(&queued),
                busy: Arc::clone(&busy),
            };
            workers.push(
                thread::Builder::new()
                    .name(format!("waitress-{n}"))
                    .spawn(move || worker(&sites, &helpers, &crew, &counters))?,
            );
        }
        let log = Arc::new(LogQueue::default());
        let handler = Arc::new(Pool {
            crew: Arc::clone(&crew),
            threads: self.threads,
            queued,
            busy,
            log: Arc::clone(&log),
        });
        let (done_tx, done_rx) = mpsc::channel();
        let done_rx = Mutex::new(done_rx);
        let config = self.config.clone();
        let io_stop = stop.clone();
        let io_log: Arc<dyn LogSink> = Arc::clone(&log) as Arc<dyn LogSink>;
        let io = thread::Builder::new()
            .name("waitress-io".to_owned())
            .spawn(move || {
                let result =
                    waitress_server::serve(listeners, config, handler, io_log, io_stop, &crew);
                let _ = done_tx.send(result.map_err(|err| err.to_string()));
            })?;
        let mut outcome: PyResult<()> = Ok(());
        let mut on_stop = on_stop;
        let served = loop {
            let waited = py.detach(|| {
                done_rx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv_timeout(WAKE_EVERY)
            });
            // A signal handler can run inside a logging call as well as in check_signals:
            // either way its exception stops the server gracefully and waits, never
            // returns early (that would leave the workers in the application).
            let signalled = log
                .emit(py)
                .and_then(|()| log.refresh_levels(py))
                .and_then(|()| py.check_signals());
            if let Err(err) = signalled {
                // Ctrl-C (or an exception raised by a signal handler): stop gracefully, keep
                // waiting, and re-raise once the server is down. A second signal stops at once.
                stop.stop_graceful();
                if outcome.is_err() {
                    stop.stop_now();
                }
                outcome = Err(err);
            }
            if stop.is_stopping() {
                // SPEC D7: the listening sockets close as the stop begins, not when the
                // drain ends (the Python socket objects hold them open too).
                if let Some(callback) = on_stop.take() {
                    if let Err(err) = callback.call0(py) {
                        err.write_unraisable(py, None);
                    }
                }
            }
            match waited {
                Ok(result) => break result,
                Err(RecvTimeoutError::Disconnected) => break Err("the I/O thread ended".to_owned()),
                Err(RecvTimeoutError::Timeout) => {}
            }
        };
        // The drain is over (or was cut short): idle workers leave at once; one still inside
        // the application is left to it, as waitress leaves its daemon threads.
        let stuck = py.detach(|| {
            let _ = io.join();
            release_workers(workers)
        });
        if stuck > 0 {
            log.push(
                "waitress",
                Level::Warning,
                format!("{stuck} thread(s) still running"),
            );
        }
        log.emit(py)?;
        served.map_err(PyRuntimeError::new_err)?;
        outcome
    }

    /// Stop a running `run()` from any thread: gracefully (SPEC D7) or at once.
    #[pyo3(signature = (graceful = true))]
    fn stop(&self, graceful: bool) {
        let stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        if graceful {
            stop.stop_graceful();
        } else {
            stop.stop_now();
        }
    }
}
