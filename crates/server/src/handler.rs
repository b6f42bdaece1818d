//! The one boundary between the server and the application (DESIGN.md "Python binds, Rust
//! serves"): the server hands a complete request to a [`Handler`], which answers through a
//! [`Responder`] from any thread.
//!
//! Rules:
//! 1. `Handler::handle` is called inside the runtime (crew.rs) and must not block: it queues
//!    the request for a worker (`Crew::push`) and returns. Each
//!    connection has at most one request in the handler at a time, so a queue with room for
//!    `connection_limit` requests never overflows.
//! 2. The request is complete when handed over: the whole body has been received, in memory
//!    up to `inbuf_overflow` bytes, else in an anonymous temp file (SPEC §3.5).
//! 3. A `Responder` is used from one worker thread: `start`, any number of `write`, then
//!    `finish` (or `abort`). `write` blocks the calling thread while more than
//!    `outbuf_high_watermark` bytes wait to be written, and output past `outbuf_overflow`
//!    pending bytes waits in a temp file (outbuf.rs); the Python crate calls it with the GIL
//!    released. `send_file` hands over a stretch of a regular file, sent with sendfile(2).
//! 4. A `Responder` dropped without `finish` aborts the response: if nothing was sent the
//!    client gets a 500, otherwise the connection is closed (a truncated body is never
//!    followed by another response). Every way a response ends sends a message, a client
//!    found gone included: a connection's reply channel is reused by its next request, so
//!    the channel closing is never the signal.
//! 5. Caller-framed pieces of at least `DIRECT_MIN` bytes (`write_raw`; any size for a
//!    response's last ones, `finish_raw`) are written to the socket by the worker itself, without
//!    waiting, when everything handed over before has been written (the budget is
//!    drained): no copy and no hand-over for them. What the socket does not take at once
//!    goes to the connection task as before. After a `send_file` everything goes through
//!    the task.
//! 6. A response that ends with everything written, keep-alive, and nothing handed over
//!    before (a small response written whole by its worker: rule 5) may end **quietly**:
//!    the worker records the end in the connection's `Line` (`Line::end_quietly`) instead of
//!    sending it, and the connection's task is not woken for it. The task finds it when it
//!    next wakes anyway: for the client's next request (or EOF), a stop, or its idle timer;
//!    the idle timeout counts from the recorded end. The task allows it only while it
//!    watches the socket (`Line::expect_quiet_end`), and a task that stops watching says so
//!    first (`Line::stop_watching`): one compare-and-swap on each side decides which way
//!    the end goes, so it is neither lost nor told twice. A request so costs its task one
//!    wake, not two (one for the request and one for its end).

use std::any::Any;
use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use waitress_http::request::RequestHead;

use crate::outbuf::{Budget, Placement, Spill, Spilled};
use crate::StopHandle;

/// Where the request body is.
#[derive(Debug)]
pub enum RequestBody {
    /// The whole body, at most `inbuf_overflow` bytes.
    Memory(Vec<u8>),
    /// The whole body in an anonymous temp file, positioned at 0.
    File(File),
}

/// The peer of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A unix-socket peer (waitress reports it as `("localhost", None)`).
    Unix,
}

/// A complete request, handed to the application.
#[derive(Debug)]
pub struct Request {
    /// The validated head.
    pub head: RequestHead,
    /// The decoded body.
    pub body: RequestBody,
    /// Who sent it.
    pub peer: Peer,
    /// Index of the listener it came in on, in the order the server was given them.
    pub listener: usize,
    /// Whether the connection's client is gone (`waitress.client_disconnected`).
    pub gone: Arc<ClientGone>,
    /// The server was stopping when the request was handed over: its response must close
    /// the connection (SPEC D7).
    pub closing: bool,
}

/// Whether a connection's client is gone, shared by the connection and every request on it:
/// set once the server sees EOF or an error on the socket, or when the connection ends
/// (waitress's `not channel.connected`); never cleared. A handler may keep one value with
/// it for the connection's life (`keep`): the Python crate keeps the environ's check object
/// there, so a request on a kept-alive connection builds none.
#[derive(Debug, Default)]
pub struct ClientGone {
    flag: Arc<AtomicBool>,
    kept: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl ClientGone {
    /// True once the client is known to be gone.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// The client is gone.
    pub fn set(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// The flag itself, for a value that must read it without holding the connection's
    /// `ClientGone` (what `keep` holds must not, or the two would keep each other alive).
    pub fn flag(&self) -> &Arc<AtomicBool> {
        &self.flag
    }

    /// What `keep` stored, if it is a `T`.
    pub fn kept<T: Any>(&self) -> Option<&T> {
        self.kept.get()?.downcast_ref()
    }

    /// Keep `value` for the connection's life, unless something is kept already; returns
    /// what is kept, if it is a `T`.
    pub fn keep<T: Any + Send + Sync>(&self, value: T) -> Option<&T> {
        let _ = self.kept.set(Box::new(value));
        self.kept()
    }
}

/// Output bytes owned elsewhere and lent to the server without a copy (an application's
/// bytes object): kept until written, then dropped by whichever thread is done with them.
pub type Lent = Box<dyn AsRef<[u8]> + Send + Sync>;

/// A caller-framed piece of output on its way to the socket.
pub(crate) enum Piece {
    Owned(Vec<u8>),
    /// `bytes` from `start` on.
    Lent {
        bytes: Lent,
        start: usize,
    },
}

impl Piece {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Piece::Owned(data) => data,
            Piece::Lent { bytes, start } => (**bytes).as_ref().get(*start..).unwrap_or_default(),
        }
    }
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Piece::Owned(data) => write!(f, "Owned({} bytes)", data.len()),
            Piece::Lent { .. } => write!(f, "Lent({} bytes)", self.as_slice().len()),
        }
    }
}

/// What a worker sends back to the connection.
#[derive(Debug)]
pub(crate) enum Reply {
    Head {
        status: String,
        headers: Vec<(String, String)>,
    },
    Data(Vec<u8>),
    End,
    /// Bytes framed by the caller (head included), written as they are.
    Raw(Piece),
    /// `Data` (or `Raw` when `raw`) that waits in a spill file.
    Spilled {
        raw: bool,
        piece: Spilled,
    },
    /// `len` bytes of a regular file from `offset`, written as they are with sendfile(2).
    File {
        file: File,
        offset: u64,
        len: u64,
    },
    /// The end of a caller-framed response: its last bytes (sent as they are, outside the
    /// budget: nothing follows them), and the caller's keep-alive decision.
    EndRaw {
        last: Vec<u8>,
        keep_alive: bool,
    },
    /// The application failed: a 500 with `detail`, unless the worker already `sent` part
    /// of the response itself; then the connection closes.
    Abort {
        detail: String,
        sent: bool,
    },
}

/// The largest buffer `Ended::take_spare` gives back for a caller's next response.
const SPARE_OUTPUT: usize = 64 * 1024;

/// Smallest piece a worker writes to the socket itself (rule 5). Smaller ones (a typical
/// whole response) go to the connection task, which writes them with the end of the
/// response in one go (measured with the thread pool this crate had before crew.rs: direct
/// writes of small responses cost hello@16 a quarter of its throughput, while 16 KiB stream
/// chunks and 1 MiB bodies gained 34–44%).
const DIRECT_MIN: usize = 8 * 1024;

/// `parts` without their first `skip` bytes.
fn after<'a>(parts: &[&'a [u8]], mut skip: usize) -> Vec<&'a [u8]> {
    let mut rest = Vec::with_capacity(parts.len());
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        rest.push(part.get(skip..).unwrap_or_default());
        skip = 0;
    }
    rest
}

/// Parts of a vectored write described without an allocation (`io_slices`).
pub(crate) const FEW_PARTS: usize = 8;

/// `parts` as the slices of one vectored write: in `few` (on the caller's stack) when they
/// are at most `FEW_PARTS`, else in `many`.
pub(crate) fn io_slices<'s, 'a>(
    parts: &[&'a [u8]],
    few: &'s mut [std::io::IoSlice<'a>; FEW_PARTS],
    many: &'s mut Vec<std::io::IoSlice<'a>>,
) -> &'s mut [std::io::IoSlice<'a>] {
    if let Some(slots) = few.get_mut(..parts.len()) {
        for (slot, part) in slots.iter_mut().zip(parts) {
            *slot = std::io::IoSlice::new(part);
        }
        slots
    } else {
        many.extend(parts.iter().map(|p| std::io::IoSlice::new(p)));
        many.as_mut_slice()
    }
}

/// A socket a worker may write to directly, without waiting (module rule 5).
pub(crate) trait Wire: Send + Sync + std::fmt::Debug {
    /// Write what the socket takes of `parts`, in order, now; `WouldBlock` when it takes
    /// nothing.
    fn try_send(&self, parts: &[std::io::IoSlice<'_>]) -> std::io::Result<usize>;
}

/// Why a `Responder` call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespondError {
    /// The client is gone; nothing more can be sent (waitress `ClientDisconnected`).
    Disconnected,
    /// Calls out of order (`write` before `start`, `start` twice).
    OutOfOrder,
}

/// Where a response's quiet end stands (module rule 6).
mod quiet {
    /// The task does not watch the socket: an end is sent.
    pub(super) const OFF: u8 = 0;
    /// The task watches the socket: an end may be recorded instead.
    pub(super) const WATCHING: u8 = 1;
    /// The response ended quietly, at `Line::ended_at`.
    pub(super) const ENDED: u8 = 2;
}

/// What every response on one connection shares with it: the reply channel, the socket,
/// whether the client is gone and the server's stop. One per connection, so a request's
/// responder takes one reference to it, not one to each (a locked instruction apiece).
#[derive(Debug)]
pub(crate) struct Line {
    tx: crate::reply::Sender,
    wire: Arc<dyn Wire>,
    gone: Arc<ClientGone>,
    stop: StopHandle,
    /// A `quiet` state (rule 6).
    quiet: AtomicU8,
    /// When the last quiet end was recorded: nanoseconds since `born`.
    ended_at: AtomicU64,
    born: Instant,
}

impl Line {
    pub(crate) fn new(
        tx: crate::reply::Sender,
        wire: Arc<dyn Wire>,
        gone: Arc<ClientGone>,
        stop: StopHandle,
    ) -> Self {
        Self {
            tx,
            wire,
            gone,
            stop,
            quiet: AtomicU8::new(quiet::OFF),
            ended_at: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// Whether the task watches the socket while the request it hands over runs, so its
    /// response may end quietly (rule 6). Called before each request is handed over.
    pub(crate) fn expect_quiet_end(&self, watching: bool) {
        let state = if watching {
            quiet::WATCHING
        } else {
            quiet::OFF
        };
        self.quiet.store(state, Ordering::Release);
    }

    /// The task stops watching the socket: an end from now on is sent. Returns when the
    /// response ended, if it ended quietly before that.
    pub(crate) fn stop_watching(&self) -> Option<Instant> {
        match self.quiet.compare_exchange(
            quiet::WATCHING,
            quiet::OFF,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Err(quiet::ENDED) => self.take_quiet_end(),
            _ => None,
        }
    }

    /// When the response ended, if it ended quietly (the task then takes the end: the
    /// line is back to `OFF`).
    pub(crate) fn quiet_end(&self) -> Option<Instant> {
        if self.quiet.load(Ordering::Acquire) == quiet::ENDED {
            return self.take_quiet_end();
        }
        None
    }

    fn take_quiet_end(&self) -> Option<Instant> {
        self.quiet.store(quiet::OFF, Ordering::Relaxed);
        let nanos = self.ended_at.load(Ordering::Relaxed);
        self.born.checked_add(Duration::from_nanos(nanos))
    }

    /// The worker's side: record the end if the task is watching; false if it must be
    /// sent.
    fn end_quietly(&self) -> bool {
        let nanos = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.ended_at.store(nanos, Ordering::Relaxed);
        self.quiet
            .compare_exchange(
                quiet::WATCHING,
                quiet::ENDED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

/// Sends one response back to its connection, from a worker thread (module rules 3, 4).
#[derive(Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent facts about one response, each read on its own"
)]
pub struct Responder {
    line: Arc<Line>,
    /// False once the response ended (or the client is gone): nothing more is sent.
    open: bool,
    /// True while this responder may write to the socket directly (rule 5).
    direct: bool,
    /// True once this responder wrote bytes to the socket itself.
    sent_direct: bool,
    /// True once this responder handed a reply to the connection task.
    queued: bool,
    budget: Arc<Budget>,
    spill: Spill,
    started: bool,
}

impl Responder {
    pub(crate) fn new(line: Arc<Line>, budget: Arc<Budget>) -> Self {
        Self {
            line,
            open: true,
            direct: true,
            sent_direct: false,
            queued: false,
            budget,
            spill: Spill::default(),
            started: false,
        }
    }

    /// True once the server is stopping: a response not yet started should close the
    /// connection (SPEC D7).
    pub fn is_stopping(&self) -> bool {
        self.line.stop.is_stopping()
    }

    fn gone(&mut self) -> Result<(), RespondError> {
        if std::mem::replace(&mut self.open, false) {
            // The connection is told, not left waiting: its reply channel outlives this
            // response (it is reused for the next), so no closed channel would tell it.
            let _ = self.line.tx.send(Reply::Abort {
                detail: "Client disconnected".to_owned(),
                sent: true,
            });
        }
        self.line.gone.set();
        Err(RespondError::Disconnected)
    }

    fn send(&mut self, reply: Reply) -> Result<(), RespondError> {
        if !self.open {
            return Err(RespondError::Disconnected);
        }
        if self.line.tx.send(reply).is_err() {
            return self.gone();
        }
        self.queued = true;
        Ok(())
    }

    /// Write what the socket takes of `parts` (`total` bytes) now, if nothing handed over is
    /// still waiting (rule 5); returns how many bytes it took.
    fn write_direct(&mut self, parts: &[&[u8]], total: usize) -> Result<usize, RespondError> {
        self.write_direct_from(parts, total, DIRECT_MIN)
    }

    /// `write_direct` of `parts` if they are at least `min` bytes.
    fn write_direct_from(
        &mut self,
        parts: &[&[u8]],
        total: usize,
        min: usize,
    ) -> Result<usize, RespondError> {
        if !self.direct || total < min || total == 0 || !self.budget.is_drained() {
            return Ok(0);
        }
        // Described on the stack: no allocation for a response's few parts.
        let mut few = [std::io::IoSlice::new(&[]); FEW_PARTS];
        let mut many = Vec::new();
        let mut rest = io_slices(parts, &mut few, &mut many);
        std::io::IoSlice::advance_slices(&mut rest, 0); // drops leading empty parts
        let mut done = 0;
        let mut failed = false;
        while done < total && !rest.is_empty() {
            match self.line.wire.try_send(rest) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    std::io::IoSlice::advance_slices(&mut rest, n);
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if done > 0 {
            self.sent_direct = true;
        }
        if failed {
            self.direct = false;
            self.gone()?;
        }
        Ok(done)
    }

    /// Hand over output bytes: caller-framed ones are first offered to the socket (rule 5),
    /// the rest counted against the connection's budget (rule 3).
    fn send_bytes(&mut self, raw: bool, mut data: Vec<u8>) -> Result<(), RespondError> {
        if !self.open {
            return Err(RespondError::Disconnected);
        }
        if raw {
            let done = self.write_direct(&[&data], data.len())?;
            data.drain(..done);
        }
        self.queue_bytes(raw, data)
    }

    /// Hand bytes to the connection task, counted against the budget (rule 3).
    fn queue_bytes(&mut self, raw: bool, data: Vec<u8>) -> Result<(), RespondError> {
        if raw {
            return self.queue_piece(Piece::Owned(data));
        }
        if data.is_empty() {
            return Ok(());
        }
        match self.reserve(&data)? {
            Some(piece) => self.send(Reply::Spilled { raw, piece }),
            None => self.send(Reply::Data(data)),
        }
    }

    /// Hand a caller-framed piece to the connection task, counted against the budget.
    fn queue_piece(&mut self, piece: Piece) -> Result<(), RespondError> {
        if piece.as_slice().is_empty() {
            return Ok(());
        }
        match self.reserve(piece.as_slice())? {
            Some(spilled) => self.send(Reply::Spilled {
                raw: true,
                piece: spilled,
            }),
            None => self.send(Reply::Raw(piece)),
        }
    }

    /// Count `data` as pending (rule 3); past `outbuf_overflow` it is written to the spill
    /// file, and where it went there is returned.
    fn reserve(&mut self, data: &[u8]) -> Result<Option<Spilled>, RespondError> {
        let Some(placement) = self.budget.reserve(data.len()) else {
            self.gone()?;
            return Ok(None);
        };
        Ok(match placement {
            Placement::Memory => None,
            // A failed spill (disk full) keeps the bytes in memory rather than lose them.
            Placement::Spill => self.spill.append(data, self.budget.high_watermark()).ok(),
        })
    }

    /// Send the response head: the application's status and headers, already validated
    /// (no CR/LF/NUL, no hop-by-hop names).
    pub fn start(
        &mut self,
        status: &str,
        headers: Vec<(String, String)>,
    ) -> Result<(), RespondError> {
        if self.started {
            return Err(RespondError::OutOfOrder);
        }
        self.started = true;
        self.send(Reply::Head {
            status: status.to_owned(),
            headers,
        })
    }

    /// Send body bytes; blocks while the connection is behind (rule 3).
    pub fn write(&mut self, data: Vec<u8>) -> Result<(), RespondError> {
        if !self.started {
            return Err(RespondError::OutOfOrder);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.send_bytes(false, data)
    }

    /// The response is complete.
    pub fn finish(mut self) -> Result<(), RespondError> {
        if !self.started {
            return Err(RespondError::OutOfOrder);
        }
        let result = self.send(Reply::End);
        self.open = false;
        result
    }

    /// Send bytes the caller framed itself (status line, headers, chunking): the Python task
    /// layer's responses (docs/design.md). Blocks like `write`.
    pub fn write_raw(&mut self, data: Vec<u8>) -> Result<(), RespondError> {
        if data.is_empty() {
            return Ok(());
        }
        self.started = true;
        self.send_bytes(true, data)
    }

    /// `write_raw` of the concatenation of `parts`, borrowed: what the socket takes at once
    /// is written from where it is (rule 5), only the rest is copied.
    pub fn write_raw_parts(&mut self, parts: &[&[u8]]) -> Result<(), RespondError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Ok(());
        }
        self.started = true;
        if !self.open {
            return Err(RespondError::Disconnected);
        }
        let done = self.write_direct(parts, total)?;
        if done == total {
            return Ok(());
        }
        // The socket took what it could: the rest goes to the connection task.
        self.queue_bytes(true, after(parts, done).concat())
    }

    /// `write_raw_parts` of `before`, the lent bytes and `after`: what the socket does not
    /// take at once keeps the lent bytes where they are (no copy) until written. Returns
    /// them when nothing kept them, for the caller to drop where it likes.
    pub fn write_raw_lent(
        &mut self,
        before: &[u8],
        lent: Lent,
        after_lent: &[u8],
    ) -> Result<Option<Lent>, RespondError> {
        self.started = true;
        if !self.open {
            return Err(RespondError::Disconnected);
        }
        let body_len = (*lent).as_ref().len();
        let total = before.len() + body_len + after_lent.len();
        let done = self.write_direct(&[before, (*lent).as_ref(), after_lent], total)?;
        if done == total {
            return Ok(Some(lent));
        }
        // What the socket did not take is counted once; past the overflow it goes to the
        // spill file as one piece (one write, one message), else it waits in memory with
        // the lent bytes kept where they are.
        let Some(placement) = self.budget.reserve(total - done) else {
            return self.gone().map(|()| None);
        };
        if placement == Placement::Spill {
            let parts = after(&[before, (*lent).as_ref(), after_lent], done);
            // A failed spill (disk full) keeps the bytes in memory rather than lose them.
            if let Ok(piece) = self
                .spill
                .append_parts(&parts, self.budget.high_watermark())
            {
                self.send(Reply::Spilled { raw: true, piece })?;
                return Ok(Some(lent));
            }
        }
        if let Some(rest) = before.get(done..).filter(|rest| !rest.is_empty()) {
            self.send(Reply::Raw(Piece::Owned(rest.to_vec())))?;
        }
        let start = done.saturating_sub(before.len());
        let kept = if start < body_len {
            self.send(Reply::Raw(Piece::Lent { bytes: lent, start }))?;
            None
        } else {
            Some(lent)
        };
        let done_after = done.saturating_sub(before.len() + body_len);
        if let Some(rest) = after_lent.get(done_after..).filter(|rest| !rest.is_empty()) {
            self.send(Reply::Raw(Piece::Owned(rest.to_vec())))?;
        }
        Ok(kept)
    }

    /// Send `len` bytes of the regular file `file` from `offset`, as they are (the caller
    /// framed the response), with sendfile(2) by the connection task. Does not block.
    pub fn send_file(&mut self, file: File, offset: u64, len: u64) -> Result<(), RespondError> {
        if len == 0 {
            return Ok(());
        }
        self.started = true;
        // The file is sent by the connection task; nothing may overtake it (rule 5).
        self.direct = false;
        self.send(Reply::File { file, offset, len })
    }

    /// End a caller-framed response with its `last` bytes (a small response can be handed
    /// over in this one call); the connection is reused only if `keep_alive` and the
    /// protocol allows it.
    pub fn finish_raw(self, last: Vec<u8>, keep_alive: bool) -> Result<(), RespondError> {
        self.finish_raw_ended(last, keep_alive).map(Ended::tell)
    }

    /// `finish_raw`, with the bytes written or handed over but the connection not yet told
    /// the response ended: [`Ended`] tells it, when told to or dropped. A crew worker hands
    /// it to `Crew::next_after`, which tells the connection inside the runtime (crew.rs
    /// rule 2). `last` is written to the socket here whatever its size (rule 5): the client
    /// has its answer now, not when the connection's task next runs (after another request,
    /// if this worker runs one first), and a response written whole may end quietly (rule
    /// 6).
    pub fn finish_raw_ended(
        mut self,
        last: Vec<u8>,
        keep_alive: bool,
    ) -> Result<Ended, RespondError> {
        self.started = true;
        if !self.open {
            return Err(RespondError::Disconnected);
        }
        let mut last = last;
        let done = self.write_direct_from(&[&last], last.len(), 0)?;
        last.drain(..done);
        if !std::mem::replace(&mut self.open, false) {
            return Err(RespondError::Disconnected);
        }
        // Rule 6: everything is written and nothing waits in the channel before the end.
        let quiet = last.is_empty() && keep_alive && !self.queued && self.line.end_quietly();
        // All written: the buffer goes back to the caller (an end sent carries none), unless
        // it grew past `SPARE_OUTPUT`.
        let spare = if last.is_empty() && last.capacity() <= SPARE_OUTPUT {
            std::mem::take(&mut last)
        } else {
            Vec::new()
        };
        let reply = (!quiet).then_some(Reply::EndRaw { last, keep_alive });
        Ok(Ended {
            responder: self,
            reply,
            spare,
        })
    }

    /// The application failed: a 500 carrying `detail` if nothing was sent, else a close.
    pub fn abort(mut self, detail: &str) {
        let sent = self.sent_direct;
        let _ = self.send(Reply::Abort {
            detail: detail.to_owned(),
            sent,
        });
        self.open = false;
    }

    /// True when handing over `len` bytes now may take time: the write must wait for the
    /// connection to catch up (rule 3), or it is written to the socket here (rule 5). The
    /// Python crate releases the GIL around such writes and keeps it for the others.
    pub fn may_block(&self, len: usize) -> bool {
        self.budget.is_full() || (self.direct && len >= DIRECT_MIN)
    }

    /// True once the head has been handed to the connection.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// True once the server knows the client is gone.
    pub fn is_disconnected(&self) -> bool {
        self.line.gone.is_set()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            // Rule 4: never leave the connection waiting for a response that will not come.
            let _ = self.line.tx.send(Reply::Abort {
                detail: "The application did not finish its response".to_owned(),
                sent: self.sent_direct,
            });
        }
    }
}

/// The end of a response its worker finished (`Responder::finish_raw_ended`), not yet told
/// to the connection: `tell` tells it, waking its task, and so does dropping it, so an end
/// is never lost. A wake from inside the runtime costs no driver wake-up (an eventfd
/// write): a crew keeps an end for whoever next drives the runtime when nobody does.
#[derive(Debug)]
pub struct Ended {
    /// The responder that ended (closed: its own drop sends nothing), kept for its line.
    responder: Responder,
    reply: Option<Reply>,
    /// The caller's last bytes' buffer, emptied, when the socket took them all.
    spare: Vec<u8>,
}

impl Ended {
    /// Tell the connection (a connection already gone is not told).
    pub fn tell(self) {
        drop(self);
    }

    /// False when there is nothing to tell: the response ended quietly (rule 6), and
    /// dropping this anywhere costs no wake.
    pub fn is_pending(&self) -> bool {
        self.reply.is_some()
    }

    /// The buffer of the last bytes given to `finish_raw_ended`, empty with its capacity,
    /// when they were all written there and it holds at most `SPARE_OUTPUT` bytes (else a
    /// new empty one): for the caller's next response, which so needs no allocation for
    /// its bytes.
    pub fn take_spare(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.spare)
    }
}

impl Drop for Ended {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            let _ = self.responder.line.tx.send(reply);
        }
    }
}

/// The application side of the server.
pub trait Handler: Send + Sync + 'static {
    /// Queue `request` for a worker; answer through `responder`. Must not block (rule 1).
    fn handle(&self, request: Request, responder: Responder);

    /// Every worker is busy while requests handed over earlier (a leader's burst,
    /// crew.rs rule 2) still wait in the queue: they now wait for a busy worker. Called by
    /// the stand-by as it takes the lead (crew.rs rule 3); must not block.
    fn every_worker_busy(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A socket that takes at most `per_call` bytes a write, `calls` writes in all (then
    /// it is full), and keeps what it took.
    #[derive(Debug)]
    struct Partial {
        per_call: usize,
        calls: Mutex<usize>,
        taken: Mutex<Vec<u8>>,
    }

    impl Wire for Partial {
        fn try_send(&self, parts: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            let mut calls = self.calls.lock().unwrap();
            if *calls == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            *calls -= 1;
            let mut taken = self.taken.lock().unwrap();
            let mut room = self.per_call;
            for part in parts {
                let n = part.len().min(room);
                taken.extend_from_slice(&part[..n]);
                room -= n;
            }
            Ok(self.per_call - room)
        }
    }

    /// `write_raw_parts` of `parts()` through a socket that takes `per_call` bytes a write,
    /// `calls` writes in all: what the socket took, the connection task's end, and the
    /// responder (kept: dropped, it would end the response on that channel).
    fn write_parts(per_call: usize, calls: usize) -> (Vec<u8>, crate::reply::Receiver, Responder) {
        let wire = Arc::new(Partial {
            per_call,
            calls: Mutex::new(calls),
            taken: Mutex::default(),
        });
        let (tx, rx) = crate::reply::channel();
        let line = Line::new(
            tx,
            Arc::clone(&wire) as Arc<dyn Wire>,
            Arc::new(ClientGone::default()),
            StopHandle::new(),
        );
        let mut responder = Responder::new(Arc::new(line), Arc::new(Budget::new(1 << 20, 1 << 19)));
        let parts = parts();
        let borrowed: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        responder.write_raw_parts(&borrowed).unwrap();
        let taken = std::mem::take(&mut *wire.taken.lock().unwrap());
        (taken, rx, responder)
    }

    /// A responder on a line whose socket takes `calls` writes of any size, the line (to
    /// play the connection task's side), and its channel.
    fn on_line(calls: usize) -> (Responder, Arc<Line>, crate::reply::Receiver) {
        let wire = Arc::new(Partial {
            per_call: usize::MAX,
            calls: Mutex::new(calls),
            taken: Mutex::default(),
        });
        let (tx, rx) = crate::reply::channel();
        let line = Arc::new(Line::new(
            tx,
            wire,
            Arc::new(ClientGone::default()),
            StopHandle::new(),
        ));
        let budget = Arc::new(Budget::new(1 << 20, 1 << 19));
        (Responder::new(Arc::clone(&line), budget), line, rx)
    }

    /// Rule 6: a keep-alive response written whole while the task watches ends quietly:
    /// nothing is sent, and the task takes the end once.
    #[test]
    fn rule_6_a_response_written_whole_ends_quietly_while_the_task_watches() {
        let (responder, line, mut rx) = on_line(1);
        line.expect_quiet_end(true);
        let ended = responder.finish_raw_ended(b"hello".to_vec(), true).unwrap();
        assert!(!ended.is_pending());
        drop(ended);
        assert!(rx.try_recv().is_err(), "a quiet end was sent");
        assert!(line.quiet_end().is_some());
        assert!(line.quiet_end().is_none(), "the end was taken twice");
        assert!(line.stop_watching().is_none());
    }

    /// Rule 6: a task that stops watching first gets the end sent, and finds no quiet
    /// end; one that stops watching after a quiet end gets that end instead.
    #[test]
    fn rule_6_the_end_is_sent_once_the_task_stopped_watching_and_never_lost() {
        let (responder, line, mut rx) = on_line(1);
        line.expect_quiet_end(true);
        assert!(line.stop_watching().is_none());
        responder
            .finish_raw_ended(b"hello".to_vec(), true)
            .unwrap()
            .tell();
        assert!(
            matches!(rx.try_recv(), Ok(Reply::EndRaw { ref last, keep_alive: true }) if last.is_empty())
        );
        assert!(line.quiet_end().is_none());

        let (responder, line, mut rx) = on_line(1);
        line.expect_quiet_end(true);
        responder
            .finish_raw_ended(b"hello".to_vec(), true)
            .unwrap()
            .tell();
        assert!(line.stop_watching().is_some());
        assert!(rx.try_recv().is_err());
    }

    /// An end whose last bytes the socket took whole gives their buffer back, emptied, for
    /// the caller's next response; one whose bytes go to the task gives none.
    #[test]
    fn a_response_written_whole_gives_its_buffer_back() {
        let (responder, line, _rx) = on_line(1);
        line.expect_quiet_end(true);
        let mut last = Vec::with_capacity(300);
        last.extend_from_slice(b"hello");
        let mut ended = responder.finish_raw_ended(last, true).unwrap();
        let spare = ended.take_spare();
        assert!(spare.is_empty() && spare.capacity() >= 300);

        let (responder, _line, mut rx) = on_line(0);
        let mut last = Vec::with_capacity(300);
        last.extend_from_slice(b"hello");
        let mut ended = responder.finish_raw_ended(last, true).unwrap();
        assert_eq!(ended.take_spare().capacity(), 0);
        ended.tell();
        assert!(matches!(rx.try_recv(), Ok(Reply::EndRaw { ref last, .. }) if last == b"hello"));
    }

    /// A buffer of up to `SPARE_OUTPUT` bytes is given back (N-1 and N), a larger one is
    /// not (N+1).
    #[test]
    fn a_buffer_is_given_back_up_to_spare_output() {
        for (capacity, given) in [
            (SPARE_OUTPUT - 1, true),
            (SPARE_OUTPUT, true),
            (SPARE_OUTPUT + 1, false),
        ] {
            let (responder, line, _rx) = on_line(1);
            line.expect_quiet_end(true);
            let mut last = Vec::with_capacity(capacity);
            last.extend_from_slice(b"hello");
            let mut ended = responder.finish_raw_ended(last, true).unwrap();
            assert_eq!(
                ended.take_spare().capacity() >= capacity,
                given,
                "{capacity}"
            );
        }
    }

    /// Rule 6: an end is sent when the task does not watch, when the response closes the
    /// connection, when its last bytes are not all written, or when output was handed
    /// over before it (the end must come after that output).
    #[test]
    fn rule_6_only_a_watched_whole_keep_alive_response_ends_quietly() {
        let ends = |watching: bool, calls: usize, keep_alive: bool, handed_over: bool| {
            let (mut responder, line, mut rx) = on_line(calls);
            line.expect_quiet_end(watching);
            if handed_over {
                responder.write_raw(b"head".to_vec()).unwrap();
            }
            let ended = responder
                .finish_raw_ended(b"hello".to_vec(), keep_alive)
                .unwrap();
            let pending = ended.is_pending();
            drop(ended);
            let mut sent = 0;
            while rx.try_recv().is_ok() {
                sent += 1;
            }
            (pending, sent, line.quiet_end().is_some())
        };
        assert_eq!(ends(true, 1, true, false), (false, 0, true));
        assert_eq!(ends(false, 1, true, false), (true, 1, false));
        assert_eq!(ends(true, 1, false, false), (true, 1, false));
        assert_eq!(ends(true, 0, true, false), (true, 1, false));
        assert_eq!(ends(true, 1, true, true), (true, 2, false));
    }

    fn parts() -> Vec<Vec<u8>> {
        vec![
            Vec::new(),
            vec![b'a'; 4000],
            Vec::new(),
            vec![b'b'; 5000],
            b"c".to_vec(),
        ]
    }

    /// Rule 5: parts (empty ones among them) written straight to the socket in pieces that
    /// end inside a part and at a part's end arrive whole and in order.
    #[test]
    fn rule_5_a_direct_write_taken_in_pieces_sends_every_part_in_order() {
        let (taken, mut rx, _responder) = write_parts(1000, 100);
        assert_eq!(taken, parts().concat());
        assert!(rx.try_recv().is_err());
    }

    /// Rule 5: what the socket did not take at once goes to the connection task, starting
    /// exactly where the socket stopped (inside the second part).
    #[test]
    fn rule_5_what_a_full_socket_did_not_take_is_handed_over_from_where_it_stopped() {
        let (taken, mut rx, _responder) = write_parts(3000, 2);
        let whole = parts().concat();
        assert_eq!(taken, whole[..6000]);
        match rx.try_recv() {
            Ok(Reply::Raw(piece)) => assert_eq!(piece.as_slice(), &whole[6000..]),
            _ => panic!("the rest was not handed over as one raw piece"),
        }
    }
}
