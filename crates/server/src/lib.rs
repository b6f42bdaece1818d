//! waitress-server: the tokio driver of waitress-rs.
//!
//! Rules:
//! 1. Nothing runs at import or construction (SPEC D4): [`serve`] builds a tokio runtime on
//!    the calling thread for one run, serves until stopped, and tears it down.
//! 2. The listeners arrive bound and listening (Python binds them, SPEC D3); the server only
//!    accepts on them.
//! 3. The application is reached only through [`Handler`]; log records leave only through
//!    [`LogSink`], which must not block (the Python crate forwards them to a Python thread,
//!    SPEC D9).
//! 4. `connection_limit` bounds open connections: accepting pauses at the limit (SPEC D6).

mod connection;
mod crew;
pub mod handler;
mod outbuf;
mod reply;
mod stop;
mod timer;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use waitress_http::Limits;

pub use crew::{Crew, Job, Pushed};
pub use handler::{
    ClientGone, Ended, Handler, Lent, Peer, Request, RequestBody, RespondError, Responder,
};
use stop::Stage;
pub use stop::StopHandle;

/// Severity of a log record (the Python `logging` level names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `logging.INFO`.
    Info,
    /// `logging.WARNING`.
    Warning,
    /// `logging.ERROR`.
    Error,
}

/// Where the server's log records go. Must not block.
pub trait LogSink: Send + Sync + 'static {
    /// Record one message for the `waitress` logger.
    fn log(&self, level: Level, message: String);
}

/// The options the I/O side enforces; names are the `Adjustments` option names.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Head and body limits.
    pub limits: Limits,
    /// Time to receive a whole head from its first byte → 408 (SPEC D7).
    pub header_timeout: Duration,
    /// Idle time before a connection is closed: between requests, while reading a body,
    /// while a write is stalled (SPEC D8).
    pub channel_timeout: Duration,
    /// Request bodies above this many bytes go to a temp file.
    pub inbuf_overflow: usize,
    /// Open connections before accepting pauses (SPEC D6, default 2048).
    pub connection_limit: usize,
    /// Above 0, a connection keeps reading while its request runs, so a client that goes
    /// away is seen (`waitress.client_disconnected`, SPEC §3.13).
    pub channel_request_lookahead: usize,
    /// How long a graceful stop lets in-flight requests finish (SPEC D7).
    pub shutdown_timeout: Duration,
    /// `Server` header value; None sends none.
    pub ident: Option<String>,
    /// Bytes asked of the socket per read.
    pub recv_bytes: usize,
    /// Log socket and accept errors.
    pub log_socket_errors: bool,
    /// Pending output above which a response's further output waits in a temp file.
    pub outbuf_overflow: usize,
    /// Pending output above which the writing worker blocks.
    pub outbuf_high_watermark: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            header_timeout: Duration::from_secs(30),
            channel_timeout: Duration::from_secs(120),
            inbuf_overflow: 524_288,
            connection_limit: 2048,
            channel_request_lookahead: 0,
            shutdown_timeout: Duration::from_secs(30),
            ident: Some("waitress".to_owned()),
            recv_bytes: 8192,
            log_socket_errors: true,
            outbuf_overflow: 1_048_576,
            outbuf_high_watermark: 16_777_216,
        }
    }
}

/// A listening socket, bound and listening.
#[derive(Debug)]
pub enum Listener {
    /// TCP, IPv4 or IPv6.
    Tcp(std::net::TcpListener),
    /// A unix-domain stream socket.
    Unix(std::os::unix::net::UnixListener),
}

/// Why serving failed.
#[derive(Debug)]
pub struct ServerError {
    io: io::Error,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server setup failed: {}", self.io)
    }
}

impl std::error::Error for ServerError {}

impl From<io::Error> for ServerError {
    fn from(io: io::Error) -> Self {
        Self { io }
    }
}

/// What every connection task shares.
struct Shared {
    config: ServerConfig,
    handler: Arc<dyn Handler>,
    crew: Arc<Crew>,
    log: Arc<dyn LogSink>,
    stop: StopHandle,
    active: AtomicUsize,
    idle: Notify,
    limit_logged: AtomicBool,
}

/// Serve `listeners` until `stop` says so. Blocks the calling thread (rule 1), which is the
/// crew's stand-by (crew.rs): the workers that call [`Crew::next`] drive the I/O when they
/// are free; with none, the calling thread does all of it.
pub fn serve(
    listeners: Vec<Listener>,
    config: ServerConfig,
    handler: Arc<dyn Handler>,
    log: Arc<dyn LogSink>,
    stop: StopHandle,
    crew: &Arc<Crew>,
) -> Result<(), ServerError> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Arc::new(runtime),
        Err(err) => {
            // The workers waiting for a runtime leave.
            drop(crew.close());
            return Err(err.into());
        }
    };
    let slots = Arc::new(Semaphore::new(config.connection_limit.max(1)));
    // The stand-by tells the handler when every worker is busy (crew.rs rule 3).
    let told = Arc::clone(&handler);
    let shared = Arc::new(Shared {
        config,
        handler,
        crew: Arc::clone(crew),
        log,
        stop,
        active: AtomicUsize::new(0),
        idle: Notify::new(),
        limit_logged: AtomicBool::new(false),
    });
    let main = {
        let finish = crew::FinishOnDrop(Arc::clone(crew));
        runtime.spawn(async move {
            let _finish = finish;
            serve_until_stopped(listeners, shared, slots).await
        })
    };
    crew.stand_by(&runtime, &*told);
    // No worker drives the runtime once the crew is closed; the main task has ended.
    drop(crew.close());
    let served = runtime.block_on(main);
    // Dropping the runtime cancels whatever connection task is left.
    drop(runtime);
    served.map_err(|err| ServerError {
        io: io::Error::other(err),
    })?
}

/// Accept on `listeners` until a stop, then let in-flight requests finish.
async fn serve_until_stopped(
    listeners: Vec<Listener>,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
) -> Result<(), ServerError> {
    let mut accepting = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let slots = Arc::clone(&slots);
        match listener {
            Listener::Tcp(listener) => {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                accepting.push(tokio::spawn(connection::accept_tcp(
                    listener, index, shared, slots,
                )));
            }
            Listener::Unix(listener) => {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::UnixListener::from_std(listener)?;
                accepting.push(tokio::spawn(connection::accept_unix(
                    listener, index, shared, slots,
                )));
            }
        }
    }
    shared.stop.stopped(Stage::Graceful).await;
    for task in &accepting {
        task.abort();
    }
    // Let in-flight requests finish, up to shutdown_timeout (SPEC D7).
    let drained = async {
        while shared.active.load(Ordering::Acquire) > 0 {
            let idle = shared.idle.notified();
            if shared.active.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
    };
    tokio::select! {
        () = drained => {}
        () = shared.stop.stopped(Stage::Now) => {}
        () = tokio::time::sleep(shared.config.shutdown_timeout) => {}
    }
    Ok(())
}
