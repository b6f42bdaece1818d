//! Accepting and serving connections.
//!
//! Threads have jobs (STYLE.md convention 5): this code runs inside the one tokio runtime,
//! on whichever thread drives it (a worker between requests, or the stand-by: crew.rs). It
//! reads, parses (through `waitress_http::conn::Conn`), spools bodies, enforces timeouts and
//! writes; it never holds the GIL. Applications run outside the runtime, behind the
//! `Handler`, and reach the socket only through the `Responder`.
//!
//! Per connection: one request at a time. The head must arrive within `header_timeout` of
//! its first byte (408), an idle connection closes after `channel_timeout`, the body is
//! received completely (memory, then a temp file past `inbuf_overflow`) before the request
//! is handed over, and the response is written as the worker produces it.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use waitress_http::conn::{Conn, Event};
use waitress_http::encode::DateCache;
use waitress_http::request::RequestHead;
use waitress_http::ProtoError;

use crate::handler::{
    io_slices, ClientGone, Line, Piece, Reply, Request, RequestBody, Responder, Wire, FEW_PARTS,
};
use crate::outbuf::{Budget, CloseOnDrop, Spilled};
use crate::stop::{Stage, StopWatch};
use crate::timer::ReadTimer;
use crate::{Level, Peer, Shared};

/// Bytes read per socket read while a request runs (lookahead, SPEC §3.7).
const LOOKAHEAD_READ: usize = 16 * 1024;

thread_local! {
    /// The read buffer of the thread driving the runtime (`Session::read_ready`).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Bytes read back from a spill file per socket write.
const SPILL_READ: usize = 64 * 1024;

/// Most caller-framed pieces already waiting that go out in one vectored socket write.
const RAW_BATCH: usize = 64;

/// `first` and the caller-framed pieces already waiting behind it (at most `RAW_BATCH`), to
/// go out in one vectored write: fewer, larger socket writes for a streamed response. A
/// reply of another kind ends the run and is left in `next`.
fn waiting_pieces(
    rx: &mut crate::reply::Receiver,
    first: Piece,
    next: &mut Option<Reply>,
) -> Vec<Piece> {
    let mut pieces = vec![first];
    while pieces.len() < RAW_BATCH {
        match rx.try_recv() {
            Ok(Reply::Raw(more)) => pieces.push(more),
            Ok(other) => {
                *next = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    pieces
}

/// The length of `first` plus the caller-framed spilled pieces already waiting that follow
/// it in the same file, to go out in one sendfile run. A reply that does not continue it is
/// left in `next`.
fn waiting_spill(
    rx: &mut crate::reply::Receiver,
    first: &Spilled,
    next: &mut Option<Reply>,
) -> usize {
    let mut len = first.len;
    while let Ok(reply) = rx.try_recv() {
        match reply {
            Reply::Spilled { raw: true, piece }
                if Arc::ptr_eq(&piece.file, &first.file)
                    && piece.offset == first.offset.saturating_add(len as u64) =>
            {
                len += piece.len;
            }
            other => {
                *next = Some(other);
                break;
            }
        }
    }
    len
}

/// A client socket: a byte stream that can also take a file with sendfile(2). Shared (by
/// `Arc`) between its connection task and the worker answering its request, which may
/// write to it directly (`Wire`).
pub(crate) trait Transport: Wire + Send + Sync + 'static {
    /// Write all of `data`, waiting for the socket as needed.
    async fn write_all_ready(&self, data: &[u8]) -> io::Result<()>;

    /// Write all of `parts`, in order, in as few socket writes as the socket allows.
    async fn write_all_parts_ready(&self, parts: &[&[u8]]) -> io::Result<()>;

    /// Hold back partial segments (TCP_CORK), or let them go (a unix socket has no such
    /// option: nothing to do).
    fn cork(&self, on: bool);

    /// Shut down the sending side (the response is complete; FIN to the client).
    fn shutdown_write(&self);

    /// Shut down both ways (the connection was cut off).
    fn shutdown_both(&self);

    /// Send up to `len` bytes of `file` from `*offset`, advancing it; waits until the socket
    /// takes some. Ok(0) means the file ended early.
    async fn send_file(&self, file: &File, offset: &mut u64, len: usize) -> io::Result<usize>;

    /// Wait until a read would find bytes or EOF; no buffer is held while waiting, so an
    /// idle connection costs no read buffer.
    async fn wait_readable(&self) -> io::Result<()>;

    /// Read what is there into `buf`'s spare capacity (no zeroing); `WouldBlock` when
    /// nothing is.
    fn try_read_into(&self, buf: &mut Vec<u8>) -> io::Result<usize>;
}

macro_rules! sendfile_transport {
    ($stream:ty, $cork:expr) => {
        impl Wire for $stream {
            fn try_send(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
                // The system call itself (rustix), not libc's wrapper: `writev` is a
                // cancellation point there, which costs two locked instructions a call.
                self.try_io(Interest::WRITABLE, || {
                    rustix::io::writev(self, parts).map_err(io::Error::from)
                })
            }
        }

        impl Transport for $stream {
            async fn write_all_ready(&self, data: &[u8]) -> io::Result<()> {
                self.write_all_parts_ready(&[data]).await
            }

            async fn write_all_parts_ready(&self, parts: &[&[u8]]) -> io::Result<()> {
                // A response's few parts are described on the stack, not in a new Vec.
                let mut few = [io::IoSlice::new(&[]); FEW_PARTS];
                let mut many = Vec::new();
                let mut rest = io_slices(parts, &mut few, &mut many);
                io::IoSlice::advance_slices(&mut rest, 0); // drops leading empty parts
                while !rest.is_empty() {
                    std::future::poll_fn(|cx| self.poll_write_ready(cx)).await?;
                    match self.try_send(rest) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(())
            }

            fn cork(&self, on: bool) {
                $cork(self, on);
            }

            fn shutdown_write(&self) {
                let _ = socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write);
            }

            fn shutdown_both(&self) {
                let _ = socket2::SockRef::from(self).shutdown(std::net::Shutdown::Both);
            }

            async fn send_file(
                &self,
                file: &File,
                offset: &mut u64,
                len: usize,
            ) -> io::Result<usize> {
                loop {
                    std::future::poll_fn(|cx| self.poll_write_ready(cx)).await?;
                    let sent = self.try_io(Interest::WRITABLE, || {
                        rustix::fs::sendfile(self, file, Some(&mut *offset), len)
                            .map_err(io::Error::from)
                    });
                    match sent {
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        other => return other,
                    }
                }
            }

            async fn wait_readable(&self) -> io::Result<()> {
                // Polled, not `readable()`: only the connection's task waits on its socket,
                // so the one waker slot tokio keeps per direction is enough, and a wait
                // costs no waiter list (a lock to join it, another to leave).
                std::future::poll_fn(|cx| self.poll_read_ready(cx)).await
            }

            fn try_read_into(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
                // A read that leaves the socket empty (fewer bytes than there was room for)
                // clears the read readiness at once, as a `WouldBlock` would: the next wait
                // sleeps until new bytes (or EOF) come, instead of costing a read that finds
                // none (a `recvfrom` per request). tokio clears only if no newer event came.
                let room = buf.capacity() - buf.len();
                let mut short = None;
                let read = self.try_io(Interest::READABLE, || {
                    // As `try_send`: the system call, without libc's cancellation bookkeeping;
                    // `recv` (recvfrom), not `read`, which takes the VFS's way to the socket
                    // (vfs_read, sock_read_iter: ~0.5% of a pinned hello's CPU against nginx).
                    let (n, _) = rustix::net::recv(
                        self,
                        rustix::buffer::spare_capacity(buf),
                        rustix::net::RecvFlags::empty(),
                    )?;
                    if n > 0 && n < room {
                        short = Some(n);
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    Ok(n)
                });
                match short {
                    Some(n) => Ok(n),
                    None => read,
                }
            }
        }
    };
}

sendfile_transport!(TcpStream, |stream: &TcpStream, on| {
    let _ = socket2::SockRef::from(stream).set_tcp_cork(on);
});
sendfile_transport!(UnixStream, |_: &UnixStream, _| {});

/// Uncorks its socket when dropped (`Session::write_file`), a cancelled send included.
struct Uncork<S: Transport>(Arc<S>);

impl<S: Transport> Drop for Uncork<S> {
    fn drop(&mut self) {
        self.0.cork(false);
    }
}

/// Unsent bytes a client socket may hold in the kernel (TCP_NOTSENT_LOWAT). On loopback a
/// new socket's send buffer autotunes to about a megabyte whatever the peer's window, so
/// without a cap a burst of slow readers has the I/O thread copying each whole response
/// into the kernel while everyone else waits (docs/reliability.md, item 3).
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// How long accepting pauses after EMFILE/ENFILE (SPEC D6: back off, never spin).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

async fn slot(slots: &Arc<Semaphore>, shared: &Shared) -> Option<OwnedSemaphorePermit> {
    if slots.available_permits() == 0 && !shared.limit_logged.swap(true, Ordering::AcqRel) {
        shared.log.log(
            Level::Warning,
            "total open connections reached the connection limit, no longer accepting new connections"
                .to_owned(),
        );
    }
    let permit = Arc::clone(slots).acquire_owned().await.ok()?;
    if shared.limit_logged.swap(false, Ordering::AcqRel) {
        shared.log.log(
            Level::Info,
            "total open connections dropped below the connection limit, listening again".to_owned(),
        );
    }
    Some(permit)
}

fn accept_failed(err: &io::Error, shared: &Shared) -> Duration {
    if shared.config.log_socket_errors {
        shared.log.log(
            Level::Warning,
            format!("server accept() threw an exception: {err}"),
        );
    }
    // EMFILE (24) and ENFILE (23): out of descriptors; wait for some to be released.
    match err.raw_os_error() {
        Some(23 | 24) => ACCEPT_BACKOFF,
        _ => Duration::ZERO,
    }
}

pub(crate) async fn accept_tcp(
    listener: tokio::net::TcpListener,
    index: usize,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
) {
    loop {
        let Some(permit) = slot(&slots, &shared).await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                // A slow reader's socket holds at most this much unsent output in the
                // kernel; the rest waits in our buffers for the peer to drain it.
                let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
                tokio::spawn(run(
                    stream,
                    Peer::Tcp(addr),
                    index,
                    Arc::clone(&shared),
                    permit,
                ));
            }
            Err(err) => tokio::time::sleep(accept_failed(&err, &shared)).await,
        }
    }
}

pub(crate) async fn accept_unix(
    listener: tokio::net::UnixListener,
    index: usize,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
) {
    loop {
        let Some(permit) = slot(&slots, &shared).await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(run(stream, Peer::Unix, index, Arc::clone(&shared), permit));
            }
            Err(err) => tokio::time::sleep(accept_failed(&err, &shared)).await,
        }
    }
}

/// Counts a connection as active while it exists, so a graceful stop can wait for it.
struct Active<'a>(&'a Shared);

impl<'a> Active<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.active.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

async fn run<S: Transport>(
    stream: S,
    peer: Peer,
    listener: usize,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let _active = Active::new(&shared);
    let mut session = Session {
        stream: Arc::new(stream),
        conn: Conn::new(shared.config.limits),
        shared: &shared,
        peer,
        listener,
        out: Vec::new(),
        date: DateCache::new(),
        replies: None,
        budget: None,
        gone: Arc::default(),
        timer: ReadTimer::new(Instant::now() + shared.config.channel_timeout),
        stop: shared.stop.watch(),
        idle_since: None,
        readable: false,
    };
    let mut cut_off = CutOff(Some(Arc::clone(&session.stream)));
    if let Err(err) = session.serve().await {
        if shared.config.log_socket_errors && !is_disconnect(&err) {
            shared.log.log(Level::Error, format!("Socket error: {err}"));
        }
    }
    cut_off.0 = None;
    session.stream.shutdown_write();
    drop(permit);
}

/// Shuts the socket down both ways if the connection task is dropped before it ends (the
/// runtime torn down after a stop cut the drain short): a worker still inside the
/// application holds the socket through its `Responder`, and the client must not wait for
/// the application to return to see its connection closed.
struct CutOff<S: Transport>(Option<Arc<S>>);

impl<S: Transport> Drop for CutOff<S> {
    fn drop(&mut self) {
        if let Some(stream) = self.0.take() {
            stream.shutdown_both();
        }
    }
}

fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// A request body being received: memory first, then a temp file (SPEC §3.5).
enum Spool {
    Memory(Vec<u8>),
    File(std::fs::File),
}

impl Spool {
    fn push(&mut self, data: &[u8], overflow: usize) -> io::Result<()> {
        match self {
            Self::Memory(bytes) if bytes.len() + data.len() <= overflow => {
                bytes.extend_from_slice(data);
            }
            Self::Memory(bytes) => {
                let mut file = anonymous_file("waitress-body")?;
                file.write_all(bytes)?;
                file.write_all(data)?;
                *self = Self::File(file);
            }
            Self::File(file) => file.write_all(data)?,
        }
        Ok(())
    }

    fn finish(self) -> io::Result<RequestBody> {
        Ok(match self {
            Self::Memory(bytes) => RequestBody::Memory(bytes),
            Self::File(mut file) => {
                file.rewind()?;
                RequestBody::File(file)
            }
        })
    }
}

/// An unnamed temp file: created with a unique name, then unlinked at once.
pub(crate) fn anonymous_file(prefix: &str) -> io::Result<std::fs::File> {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{prefix}-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
    }
}

/// `fresh` in the `Arc` of `slot` when nothing else holds that any more (no allocation),
/// else in a new one; the slot keeps a handle on it for next time.
fn renewed<T>(slot: &mut Option<Arc<T>>, fresh: T) -> Arc<T> {
    let arc = match slot.take() {
        Some(mut arc) => match Arc::get_mut(&mut arc) {
            Some(inner) => {
                *inner = fresh;
                arc
            }
            None => Arc::new(fresh),
        },
        None => Arc::new(fresh),
    };
    *slot = Some(Arc::clone(&arc));
    arc
}

struct Session<'a, S> {
    stream: Arc<S>,
    conn: Conn,
    shared: &'a Shared,
    peer: Peer,
    listener: usize,
    out: Vec<u8>,
    date: DateCache,
    /// The reply channel, kept between requests (`respond`).
    replies: Option<(Arc<Line>, crate::reply::Receiver)>,
    /// The last request's output budget, reused by the next request when nothing else
    /// still holds it (`hand_over`).
    budget: Option<Arc<Budget>>,
    /// Whether the client is gone: one for the connection, shared by its requests, and set
    /// when the session ends (`Drop`).
    gone: Arc<ClientGone>,
    /// The connection's one read timer, moved only when a wait needs an earlier deadline
    /// (`read_until`): a request costs no timer registration (and no driver wake-up).
    timer: ReadTimer,
    /// The connection's registration for a stop (stop.rs rule 2).
    stop: StopWatch,
    /// When the last response ended, if it ended quietly (handler.rs rule 6): the idle
    /// timeout before the next request counts from there.
    idle_since: Option<Instant>,
    /// The socket was just seen readable (a quiet end found by the client's next request):
    /// the next read is tried before any wait (`read_until`).
    readable: bool,
}

enum Wait {
    Read,
    TimedOut,
    Stopped,
}

/// What woke a task that watches for a quiet end (`wait_reply`).
#[derive(Clone, Copy)]
enum Quiet {
    /// Socket input (or EOF).
    Input,
    /// A graceful stop.
    Stop,
    /// The idle timer.
    Timer,
}

impl<S> Drop for Session<'_, S> {
    fn drop(&mut self) {
        // The connection is over: a check an application kept now says so.
        self.gone.set();
    }
}

impl<S: Transport> Session<'_, S> {
    fn ident(&self) -> Option<&str> {
        self.shared.config.ident.as_deref()
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all_ready(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Read once from the socket into the parser, waiting for readiness first (with the
    /// deadline, and for a stop when `watch_stop`). The read buffer is the thread's
    /// (`SCRATCH`): idle connections hold none, and it is never zeroed.
    async fn read_until(&mut self, deadline: Instant, watch_stop: bool) -> io::Result<Wait> {
        let size = self.shared.config.recv_bytes.clamp(1024, 1 << 20);
        // The timer is moved only to an earlier deadline; one left at an earlier deadline
        // than this wait's fires early and is then moved on (deadlines move forward).
        if self.timer.deadline() > deadline {
            self.timer.reset(deadline);
        }
        // Seen readable just now (`wait_reply`): read first, and wait only if nothing came.
        if std::mem::take(&mut self.readable) && self.read_ready(size)?.is_some() {
            return Ok(Wait::Read);
        }
        loop {
            let stream = &self.stream;
            let timer = &mut self.timer;
            let ready = async {
                tokio::select! {
                    biased;
                    result = stream.wait_readable() => result.map(|()| None),
                    () = timer.wait() => Ok(Some(Wait::TimedOut)),
                }
            };
            let waited = if watch_stop {
                tokio::select! {
                    result = ready => result?,
                    () = self.stop.stopped(Stage::Graceful) => Some(Wait::Stopped),
                }
            } else {
                ready.await?
            };
            match waited {
                Some(Wait::TimedOut) if Instant::now() < deadline => {
                    self.timer.reset(deadline);
                    continue;
                }
                Some(waited) => return Ok(waited),
                None => {}
            }
            if self.read_ready(size)?.is_some() {
                return Ok(Wait::Read);
            }
        }
    }

    /// One non-blocking read of up to `size` bytes into the parser: Some(0) at EOF, None
    /// when the readiness was spurious.
    fn read_ready(&mut self, size: usize) -> io::Result<Option<usize>> {
        SCRATCH.with(|scratch| {
            // One buffer per driving thread, reused by every read: no allocation per read, and
            // no read buffer held by an idle connection.
            let mut buf = scratch.take();
            buf.clear();
            buf.reserve(size);
            let read = match self.stream.try_read_into(&mut buf) {
                Ok(0) => {
                    self.conn.receive_eof();
                    Ok(Some(0))
                }
                Ok(n) => {
                    self.conn.receive_data(buf.get(..n).unwrap_or_default());
                    Ok(Some(n))
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(err) => Err(err),
            };
            scratch.set(buf);
            read
        })
    }

    async fn serve(&mut self) -> io::Result<()> {
        loop {
            let Some((head, body)) = self.read_request().await? else {
                return Ok(());
            };
            let keep_alive = self.respond(head, body).await?;
            if !keep_alive {
                return Ok(());
            }
        }
    }

    /// Read one whole request. None: the connection is done (closed, timed out, refused).
    async fn read_request(&mut self) -> io::Result<Option<(RequestHead, RequestBody)>> {
        let config = &self.shared.config;
        let idle_deadline =
            self.idle_since.take().unwrap_or_else(Instant::now) + config.channel_timeout;
        let mut head_deadline: Option<Instant> = None;
        let mut head: Option<RequestHead> = None;
        let mut spool = Spool::Memory(Vec::new());
        loop {
            match self.conn.next_event() {
                Ok(Event::RequestHead(parsed)) => {
                    head = Some(parsed);
                    if self.conn.wants_continue() {
                        self.conn.send_continue(&mut self.out);
                        self.flush().await?;
                    }
                }
                Ok(Event::Data(data)) => spool.push(data, config.inbuf_overflow)?,
                Ok(Event::EndOfMessage) => {
                    let Some(head) = head else { return Ok(None) };
                    return Ok(Some((head, spool.finish()?)));
                }
                Ok(Event::Paused | Event::ConnectionClosed)
                | Err(ProtoError::IncompleteMessage) => {
                    return Ok(None);
                }
                Err(err) => {
                    let date = self.date.now().to_vec();
                    let ident = self.shared.config.ident.clone();
                    self.conn
                        .send_error(&mut self.out, err, ident.as_deref(), &date);
                    self.flush().await?;
                    return Ok(None);
                }
                Ok(Event::NeedData) => {
                    let waiting_for_head = head.is_none();
                    if waiting_for_head && head_deadline.is_none() && self.conn.buffered() > 0 {
                        head_deadline = Some(Instant::now() + config.header_timeout);
                    }
                    // Idle between requests: channel_timeout, and a stop closes it at once.
                    // Inside a head: header_timeout from its first byte. In a body:
                    // channel_timeout of inactivity (SPEC D7, D8).
                    let (deadline, idle) = match head_deadline {
                        Some(deadline) if waiting_for_head => (deadline, false),
                        _ if waiting_for_head => (idle_deadline, true),
                        _ => (Instant::now() + config.channel_timeout, false),
                    };
                    match self.read_until(deadline, idle).await? {
                        Wait::Read => {}
                        Wait::TimedOut if head_deadline.is_some() && waiting_for_head => {
                            let date = self.date.now().to_vec();
                            let ident = self.shared.config.ident.clone();
                            self.conn.send_status_error(
                                &mut self.out,
                                408,
                                "Timed out waiting for the request head",
                                ident.as_deref(),
                                &date,
                            );
                            self.flush().await?;
                            return Ok(None);
                        }
                        Wait::TimedOut | Wait::Stopped => return Ok(None),
                    }
                }
            }
        }
    }

    /// Encode the application's status and headers; an invalid head becomes a 500 instead
    /// (false).
    fn start_reply(
        &mut self,
        status: &str,
        headers: &[(String, String)],
        ident: Option<&str>,
        today: &[u8],
    ) -> bool {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let force_close = self.shared.stop.is_stopping();
        let planned =
            self.conn
                .start_response(&mut self.out, status, &pairs, ident, today, force_close);
        if planned.is_err() {
            self.conn.send_status_error(
                &mut self.out,
                500,
                "The server encountered an unexpected internal server error",
                ident,
                today,
            );
            return false;
        }
        true
    }

    /// Write output that waited in a spill file, in pieces (outbuf.rs rule 2).
    async fn write_spilled(&mut self, piece: &Spilled) -> io::Result<()> {
        let mut buf = vec![0u8; SPILL_READ.min(piece.len)];
        let mut done = 0;
        while done < piece.len {
            let want = (piece.len - done).min(buf.len());
            let chunk = buf.get_mut(..want).unwrap_or_default();
            let at = piece.offset.saturating_add(done as u64);
            piece.file.read_exact_at(chunk, at)?;
            let _ = self.conn.send_data(&mut self.out, chunk);
            self.flush().await?;
            done += want;
        }
        Ok(())
    }

    /// Write `len` bytes of `file` from `offset` with sendfile(2), after what is buffered.
    /// Send the head (what is buffered), then `len` bytes of `file` from `offset`, with the
    /// socket corked as nginx's `tcp_nopush` does: the head leaves with the file's first
    /// bytes, and sendfile's pieces go out as full segments. A corked socket sends its last
    /// partial segment only when uncorked (or after 200 ms), so it is uncorked however the
    /// sending ends. Measured on the 4 MiB file at 16 connections: 464–494 → 505–579 req/s
    /// against nginx's 499–550 (docs/benchmarks.md, Session 12).
    async fn write_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.stream.cork(true);
        let _uncork = Uncork(Arc::clone(&self.stream));
        self.write_file_corked(file, offset, len).await
    }

    async fn write_file_corked(
        &mut self,
        file: &File,
        mut offset: u64,
        len: u64,
    ) -> io::Result<()> {
        self.flush().await?;
        let end = offset.saturating_add(len);
        while offset < end {
            let want = usize::try_from(end - offset)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            if self.stream.send_file(file, &mut offset, want).await? == 0 {
                // The file is shorter than announced: the response cannot be completed.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ended before its announced length",
                ));
            }
        }
        Ok(())
    }

    /// Write `data` after what is buffered; written from where it is (no copy into `out`)
    /// when nothing is buffered, as for a large body.
    async fn write_through(&mut self, data: &[u8]) -> io::Result<()> {
        if self.out.is_empty() {
            return self.stream.write_all_ready(data).await;
        }
        self.out.extend_from_slice(data);
        self.flush().await
    }

    /// Write caller-framed `pieces` after what is buffered, from where they are.
    async fn write_pieces(&mut self, pieces: &[Piece]) -> io::Result<()> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(pieces.len() + 1);
        if !self.out.is_empty() {
            parts.push(&self.out);
        }
        parts.extend(pieces.iter().map(Piece::as_slice));
        self.stream.write_all_parts_ready(&parts).await?;
        self.out.clear();
        Ok(())
    }

    /// The last bytes of a caller-framed response, then its end. Returns keep-alive.
    async fn end_raw(&mut self, last: &[u8], keep_alive: bool) -> io::Result<bool> {
        self.write_through(last).await?;
        let keep_alive = keep_alive && !self.shared.stop.is_stopping();
        Ok(self.conn.end_raw_response(keep_alive))
    }

    /// The next reply from the worker (`Some(None)`: none will come). `None` when the wait
    /// ended otherwise, to wait again: with `channel_request_lookahead` > 0 the connection
    /// keeps reading while the application runs (SPEC §3.7, §3.13); those bytes are only
    /// buffered, never parsed before the response ends, and an EOF marks the client gone.
    /// While `watching` (handler.rs rule 6) a quiet end comes as the `EndRaw` the worker
    /// would have sent, and input, a stop or the idle timer wake the task to look for it.
    async fn wait_reply(
        &mut self,
        rx: &mut crate::reply::Receiver,
        line: &Line,
        watching: &mut bool,
    ) -> Option<Option<Reply>> {
        if *watching {
            if let Some(ended_at) = line.quiet_end() {
                return Some(Some(self.ended_quietly(ended_at)));
            }
        }
        let config = &self.shared.config;
        let watch = config.channel_request_lookahead > 0
            && !self.conn.is_peer_closed()
            && self.conn.buffered() < config.limits.max_request_header_size;
        let quiet = *watching;
        let woken = tokio::select! {
            biased;
            // Handler.rs rule 6: what wakes the task while the response may end quietly.
            // An error shows again at the next read.
            _ = self.stream.wait_readable(), if quiet => Quiet::Input,
            // One wait for both stops: a graceful one matters only while watching. Before
            // the replies, so a response that never pauses does not hold off a stop.
            () = self.stop.stopped(if quiet { Stage::Graceful } else { Stage::Now }) => {
                if self.shared.stop.reached(Stage::Now) {
                    return Some(None);
                }
                Quiet::Stop
            }
            reply = rx.recv() => return Some(reply),
            () = self.timer.wait(), if quiet => Quiet::Timer,
            ready = self.stream.wait_readable(), if watch => {
                let read = match ready {
                    Ok(()) => self.read_ready(LOOKAHEAD_READ),
                    Err(err) => Err(err),
                };
                // EOF (the parser already knows) or an error: the client is gone (§3.13).
                match read {
                    Ok(Some(n)) if n > 0 => {}
                    Ok(None) => {}
                    Ok(Some(_)) => self.gone.set(),
                    Err(_) => {
                        self.conn.receive_eof();
                        self.gone.set();
                    }
                }
                return None;
            }
        };
        // Input (or a stop) while the response runs: the task stops watching, so an end
        // from now on comes through the channel. The idle timer: if the response has not
        // ended, the timer waits another idle timeout. Either way, an end already recorded
        // is taken, and the idle wait goes on from it.
        let ended_at = match woken {
            Quiet::Input | Quiet::Stop => line.stop_watching(),
            Quiet::Timer => line.quiet_end(),
        };
        if let Some(ended_at) = ended_at {
            self.readable = matches!(woken, Quiet::Input);
            return Some(Some(self.ended_quietly(ended_at)));
        }
        match woken {
            Quiet::Input | Quiet::Stop => *watching = false,
            Quiet::Timer => self
                .timer
                .reset(Instant::now() + self.shared.config.channel_timeout),
        }
        None
    }

    /// The response ended quietly at `ended_at` (handler.rs rule 6): its end, as the
    /// worker would have sent it (nothing left to write, keep-alive).
    fn ended_quietly(&mut self, ended_at: std::time::Instant) -> Reply {
        self.idle_since = Some(Instant::from_std(ended_at));
        Reply::EndRaw {
            last: Vec::new(),
            keep_alive: true,
        }
    }

    /// Hand the request to the application, answering on the connection's `line`; returns
    /// the request's output budget.
    fn hand_over(&mut self, line: &Arc<Line>, head: RequestHead, body: RequestBody) -> Arc<Budget> {
        let config = &self.shared.config;
        let budget = renewed(
            &mut self.budget,
            Budget::new(config.outbuf_high_watermark, config.outbuf_overflow),
        );
        if self.conn.is_peer_closed() {
            self.gone.set();
        }
        let request = Request {
            head,
            body,
            peer: self.peer.clone(),
            listener: self.listener,
            gone: Arc::clone(&self.gone),
            closing: self.shared.stop.is_stopping(),
        };
        self.shared.handler.handle(
            request,
            Responder::new(Arc::clone(line), Arc::clone(&budget)),
        );
        budget
    }

    /// Hand the request to the application and write its response. Returns keep-alive.
    async fn respond(&mut self, head: RequestHead, body: RequestBody) -> io::Result<bool> {
        // One reply channel (and line) per connection, reused by each request (a response
        // that ends leaves it empty): nothing allocated per request.
        let (line, mut rx) = self.replies.take().unwrap_or_else(|| {
            let (tx, rx) = crate::reply::channel();
            let wire = Arc::clone(&self.stream) as Arc<dyn Wire>;
            let gone = Arc::clone(&self.gone);
            let line = Line::new(tx, wire, gone, self.shared.stop.clone());
            (Arc::new(line), rx)
        });
        // While a worker drives the I/O, requests are handed over one at a time (crew.rs).
        self.shared.crew.turn().await;
        let keep_alive = self.respond_on(&line, &mut rx, head, body).await;
        if matches!(keep_alive, Ok(true)) {
            self.replies = Some((line, rx));
        }
        keep_alive
    }

    /// `respond` with the connection's reply channel.
    async fn respond_on(
        &mut self,
        line: &Arc<Line>,
        rx: &mut crate::reply::Receiver,
        head: RequestHead,
        body: RequestBody,
    ) -> io::Result<bool> {
        // However this ends, a worker blocked on the budget wakes (outbuf.rs rule 3), unless
        // the response's own last reply ended it: its writer is gone then.
        // Handler.rs rule 6: a response may end quietly while the task watches the socket,
        // which it does unless the client already sent more (or its EOF) or lookahead reads
        // the socket anyway (then the end is always sent).
        let mut watching = self.shared.config.channel_request_lookahead == 0
            && !self.conn.is_peer_closed()
            && self.conn.buffered() == 0;
        // Set either way: a state left from the last response must not outlive it.
        line.expect_quiet_end(watching);
        let close = CloseOnDrop::new(self.hand_over(line, head, body));
        let budget = close.budget();
        let mut started = false;
        // A reply taken while batching pieces, handled next.
        let mut next: Option<Reply> = None;
        loop {
            let reply = match next.take() {
                Some(reply) => Some(reply),
                None => match self.wait_reply(rx, line, &mut watching).await {
                    Some(reply) => reply,
                    None => continue,
                },
            };
            let written = match reply {
                Some(Reply::Head { status, headers }) => {
                    let today = self.date.now().to_vec();
                    let ident = self.ident().map(str::to_owned);
                    if !self.start_reply(&status, &headers, ident.as_deref(), &today) {
                        let result = self.flush().await;
                        return result.map(|()| false);
                    }
                    started = true;
                    Ok(())
                }
                Some(Reply::Data(data)) => {
                    let _ = self.conn.send_data(&mut self.out, &data);
                    let written = self.flush().await;
                    budget.release(data.len());
                    written
                }
                Some(Reply::Raw(data)) => {
                    started = true;
                    let pieces = waiting_pieces(rx, data, &mut next);
                    let written = self.write_pieces(&pieces).await;
                    budget.release(pieces.iter().map(|p| p.as_slice().len()).sum());
                    written
                }
                Some(Reply::Spilled { raw: true, piece }) => {
                    started = true;
                    // Caller-framed bytes go from the spill file with sendfile(2).
                    let len = waiting_spill(rx, &piece, &mut next);
                    let written = self.write_file(&piece.file, piece.offset, len as u64).await;
                    budget.release(len);
                    written
                }
                Some(Reply::Spilled { raw: false, piece }) => {
                    let written = self.write_spilled(&piece).await;
                    budget.release(piece.len);
                    written
                }
                Some(Reply::File { file, offset, len }) => {
                    started = true;
                    self.write_file(&file, offset, len).await
                }
                Some(Reply::EndRaw { last, keep_alive }) => {
                    close.writer_done();
                    let ended = self.end_raw(&last, keep_alive).await;
                    if ended.is_err() {
                        self.gone.set();
                    }
                    return ended;
                }
                Some(Reply::End) => {
                    close.writer_done();
                    let end = self.conn.end_response(&mut self.out);
                    if end.short_by > 0 {
                        self.shared.log.log(Level::Warning, format!("application returned too few bytes ({}) for specified Content-Length", end.short_by));
                    }
                    self.flush().await?;
                    return Ok(end.keep_alive);
                }
                Some(Reply::Abort { detail, sent }) => {
                    close.writer_done();
                    if !started && !sent {
                        let today = self.date.now().to_vec();
                        let ident = self.ident().map(str::to_owned);
                        self.conn.send_status_error(
                            &mut self.out,
                            500,
                            &detail,
                            ident.as_deref(),
                            &today,
                        );
                        self.flush().await?;
                    }
                    return Ok(false);
                }
                None => return Ok(false),
            };
            if let Err(err) = written {
                self.gone.set();
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::renewed;

    #[test]
    fn renewed_reuses_what_nothing_else_holds_and_never_what_is_still_held() {
        let mut slot = None;
        let first = renewed(&mut slot, AtomicBool::new(true));
        assert!(first.load(Ordering::Acquire));
        // Still held by the last request (an application that kept its environ): the next
        // request gets its own flag, and the old one keeps its value.
        let second = renewed(&mut slot, AtomicBool::new(false));
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(first.load(Ordering::Acquire) && !second.load(Ordering::Acquire));
        // Let go of: the same allocation, with the fresh value.
        let address = Arc::as_ptr(&second);
        drop(second);
        let third = renewed(&mut slot, AtomicBool::new(true));
        assert_eq!(Arc::as_ptr(&third), address);
        assert!(third.load(Ordering::Acquire));
        assert_eq!(Arc::strong_count(&third), 2, "the slot keeps a handle");
    }
}
