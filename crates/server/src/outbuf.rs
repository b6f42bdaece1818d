//! Output of one response on its way from a worker thread to the connection (SPEC §3.14).
//!
//! Rules:
//! 1. Bytes count as pending from the moment a worker hands them over until the connection
//!    has written them. A worker's write blocks while more than `outbuf_high_watermark` bytes
//!    are pending (the Python crate waits with the GIL released), so a slow reader parks its
//!    worker instead of growing memory.
//! 2. A write handed over while `outbuf_overflow` or more bytes are already pending goes to an
//!    anonymous temp file instead of memory; a spill file is replaced by a fresh one once
//!    `outbuf_high_watermark` bytes went into it, so no file grows without bound. Memory per
//!    response therefore stays near `outbuf_overflow` plus the one write in hand.
//! 3. Once the connection is done with the response, the budget is closed: a blocked write
//!    wakes and fails, and so does every later one.
//! 4. The process keeps up to `SPARES` (16) spill files that took at most `SPARE_MAX` bytes,
//!    and a response that spills later reuses one (from offset 0) once no piece of it is
//!    waiting: no file created, unlinked and closed per spilling response, and the pages
//!    written before are already cached (stream: −15% CPU a response). Sixteen, so that
//!    as many responses spilling at once as a loaded server has (a connection each) find
//!    one free: with two, 16 connections streaming still made a file for 85% of their
//!    responses (session 13: 2 → 16, stream −21% kernel CPU a response, +13% req/s). At
//!    most 16 open deleted temp files of 4 MiB (64 MiB) stay between responses
//!    (docs/limits.md), and only on a server whose responses spilled.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// The pending-byte account shared by one response's writer and its connection.
#[derive(Debug)]
pub(crate) struct Budget {
    state: Mutex<State>,
    room: Condvar,
    high_watermark: usize,
    overflow: usize,
    /// `is_drained` and `is_full`, kept up to date under the lock and read without it: the
    /// writer asks before each direct write, and a lock is two locked instructions.
    drained: AtomicBool,
    full: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    pending: usize,
    closed: bool,
    /// Writers waiting in `reserve`: a notify is a syscall, so it is made only for them.
    waiting: usize,
}

/// Where a write went (rule 2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    Memory,
    Spill,
}

impl Budget {
    pub(crate) fn new(high_watermark: usize, overflow: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            high_watermark: high_watermark.max(1),
            overflow,
            drained: AtomicBool::new(true),
            full: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publish what `state` (just changed, still locked) means for `is_drained` and
    /// `is_full`.
    fn publish(&self, state: &State) {
        self.drained
            .store(state.pending == 0 && !state.closed, Ordering::Release);
        self.full.store(
            state.pending > self.high_watermark && !state.closed,
            Ordering::Release,
        );
    }

    /// Count `len` more bytes as pending, first waiting while more than the high watermark
    /// are (rule 1). `None` once the budget is closed.
    pub(crate) fn reserve(&self, len: usize) -> Option<Placement> {
        let mut state = self.lock();
        while state.pending > self.high_watermark && !state.closed {
            state.waiting += 1;
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        if state.closed {
            return None;
        }
        let placement = if state.pending >= self.overflow && self.overflow > 0 {
            Placement::Spill
        } else {
            Placement::Memory
        };
        state.pending = state.pending.saturating_add(len);
        self.publish(&state);
        Some(placement)
    }

    /// True when a `reserve` now would wait (rule 1). Only the writer adds pending bytes, so
    /// for the writer a false answer stays false until its next `reserve` (the connection
    /// only takes bytes away or closes); a true one may be a moment old, which costs at
    /// most a GIL release not needed.
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// True when every byte handed over has been written (and the connection still waits
    /// for more): the writer may then write to the socket itself, in order. Only the writer
    /// adds pending bytes, so a true answer stays true until its next `reserve` unless the
    /// connection closes, which it may do at any moment, read under the lock or not.
    pub(crate) fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }

    /// `len` pending bytes were written (or dropped).
    pub(crate) fn release(&self, len: usize) {
        let mut state = self.lock();
        state.pending = state.pending.saturating_sub(len);
        self.publish(&state);
        if state.pending <= self.high_watermark && state.waiting > 0 {
            self.room.notify_all();
        }
    }

    /// The connection is done with this response (rule 3).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.publish(&state);
        if state.waiting > 0 {
            self.room.notify_all();
        }
    }

    pub(crate) fn high_watermark(&self) -> usize {
        self.high_watermark
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().pending
    }
}

/// Closes the budget when the connection stops waiting for the response, however it stops
/// (rule 3), unless the writer said it is done (`writer_done`): a response that ended by
/// its own last reply has no writer left to wake or refuse, and the close would cost a
/// lock (two locked instructions) per request.
#[derive(Debug)]
pub(crate) struct CloseOnDrop {
    budget: Arc<Budget>,
    needed: std::cell::Cell<bool>,
}

impl CloseOnDrop {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Self {
            budget,
            needed: std::cell::Cell::new(true),
        }
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The writer ended the response (its last reply came): it writes no more.
    pub(crate) fn writer_done(&self) {
        self.needed.set(false);
    }
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if self.needed.get() {
            self.budget.close();
        }
    }
}

/// Spill files the process keeps for later responses (rule 4).
const SPARES: usize = 16;

/// The most bytes a spill file may have taken and still be kept as a spare (rule 4).
const SPARE_MAX: u64 = 4 << 20;

/// Spare spill files (rule 4).
#[derive(Debug)]
pub(crate) struct Spares(Mutex<Vec<Arc<File>>>);

impl Spares {
    pub(crate) const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<File>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A spill file for a response that starts spilling: a spare one that no waiting piece
    /// uses any more, else a new anonymous file.
    fn take(&self) -> io::Result<Arc<File>> {
        let free = {
            let mut spares = self.lock();
            // `get_mut` is the uniqueness check that synchronises with the last piece's drop.
            spares
                .iter_mut()
                .position(|file| Arc::get_mut(file).is_some())
                .map(|at| spares.swap_remove(at))
        };
        match free {
            Some(file) => Ok(file),
            None => Ok(Arc::new(crate::connection::anonymous_file("waitress-out")?)),
        }
    }

    /// Keep `file`, which took `written` bytes, as a spare: not one past `SPARE_MAX` (it
    /// closes once its pieces are written), and in place of one still in use when there
    /// are `SPARES` already.
    fn keep(&self, file: Arc<File>, written: u64) {
        if written > SPARE_MAX {
            return;
        }
        let mut spares = self.lock();
        if spares.len() < SPARES {
            spares.push(file);
        } else if let Some(old) = spares.iter_mut().find(|old| Arc::strong_count(old) > 1) {
            *old = file;
        }
    }
}

/// The process's spare spill files (rule 4).
static SPARE_FILES: Spares = Spares::new();

/// The writer's current spill file (rule 2).
#[derive(Debug)]
pub(crate) struct Spill {
    file: Option<Arc<File>>,
    written: u64,
    spares: &'static Spares,
}

impl Default for Spill {
    fn default() -> Self {
        Self::keeping_in(&SPARE_FILES)
    }
}

/// A stretch of a spill file holding pending output.
#[derive(Debug)]
pub(crate) struct Spilled {
    pub(crate) file: Arc<File>,
    pub(crate) offset: u64,
    pub(crate) len: usize,
}

impl Spill {
    /// A spill that takes and keeps its spare files in `spares`.
    pub(crate) fn keeping_in(spares: &'static Spares) -> Self {
        Self {
            file: None,
            written: 0,
            spares,
        }
    }

    /// Append `data` to the spill file, starting a fresh file when the current one has taken
    /// `rotate_after` bytes.
    pub(crate) fn append(&mut self, data: &[u8], rotate_after: usize) -> io::Result<Spilled> {
        self.append_parts(&[data], rotate_after)
    }

    /// Append `parts`, in order, as one spilled piece (one `pwritev` when the file takes
    /// them whole): a chunk's size line, bytes and CRLF go in one call, not three.
    pub(crate) fn append_parts(
        &mut self,
        parts: &[&[u8]],
        rotate_after: usize,
    ) -> io::Result<Spilled> {
        let rotate_after = u64::try_from(rotate_after).unwrap_or(u64::MAX);
        let file = match &self.file {
            Some(file) if self.written < rotate_after => Arc::clone(file),
            _ => {
                let file = self.spares.take()?;
                if let Some(old) = self.file.replace(Arc::clone(&file)) {
                    self.spares.keep(old, self.written);
                }
                self.written = 0;
                file
            }
        };
        let offset = self.written;
        let len = parts.iter().map(|part| part.len()).sum::<usize>();
        write_all_parts_at(&file, parts, offset)?;
        self.written = offset.saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
        Ok(Spilled { file, offset, len })
    }
}

/// `parts` written to `file` from `offset`, in order, whatever the file takes per call.
fn write_all_parts_at(file: &File, parts: &[&[u8]], offset: u64) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> =
        parts.iter().map(|part| io::IoSlice::new(part)).collect();
    let mut rest = slices.as_mut_slice();
    io::IoSlice::advance_slices(&mut rest, 0); // drops leading empty parts
    let mut at = offset;
    while !rest.is_empty() {
        match rustix::io::pwritev(file, rest, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                io::IoSlice::advance_slices(&mut rest, n);
                at = at.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            self.spares.keep(file, self.written);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::time::Duration;

    #[test]
    fn parts_spill_as_one_piece_in_order() -> io::Result<()> {
        let mut spill = Spill::default();
        let first = spill.append(b"ab", 1 << 20)?;
        let piece = spill.append_parts(&[b"4\r\n", b"", b"wxyz", b"\r\n"], 1 << 20)?;
        assert_eq!((piece.offset, piece.len), (2, 9));
        assert!(Arc::ptr_eq(&first.file, &piece.file));
        let mut back = [0u8; 11];
        piece.file.read_exact_at(&mut back, 0)?;
        assert_eq!(&back, b"ab4\r\nwxyz\r\n");
        let next = spill.append(b"!", 1 << 20)?;
        assert_eq!(next.offset, 11);
        Ok(())
    }

    #[test]
    fn writes_past_the_overflow_spill_and_the_rest_stay_in_memory() {
        let budget = Budget::new(100, 10);
        assert_eq!(budget.reserve(8), Some(Placement::Memory));
        assert_eq!(budget.reserve(8), Some(Placement::Memory));
        assert_eq!(budget.reserve(8), Some(Placement::Spill));
        assert_eq!(budget.pending(), 24);
        budget.release(24);
        assert_eq!(budget.reserve(50), Some(Placement::Memory));
    }

    #[test]
    fn a_writer_past_the_high_watermark_waits_for_the_connection() {
        let budget = Arc::new(Budget::new(10, 0));
        assert_eq!(budget.reserve(11), Some(Placement::Memory));
        let writer = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || budget.reserve(5))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !writer.is_finished(),
            "the writer must wait above the watermark"
        );
        budget.release(11);
        assert_eq!(writer.join().ok().flatten(), Some(Placement::Memory));
    }

    #[test]
    fn is_full_says_exactly_when_a_reserve_would_wait() {
        let budget = Budget::new(10, 0);
        assert!(!budget.is_full());
        assert_eq!(budget.reserve(10), Some(Placement::Memory));
        assert!(
            !budget.is_full(),
            "at the watermark a write still goes through"
        );
        assert_eq!(budget.reserve(1), Some(Placement::Memory));
        assert!(budget.is_full());
        budget.release(1);
        assert!(!budget.is_full());
        assert_eq!(budget.reserve(5), Some(Placement::Memory));
        budget.close();
        assert!(!budget.is_full(), "a closed budget never waits");
    }

    #[test]
    fn closing_wakes_a_blocked_writer_and_fails_later_ones() {
        let budget = Arc::new(Budget::new(1, 0));
        assert!(budget.reserve(2).is_some());
        let writer = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || budget.reserve(1))
        };
        drop(CloseOnDrop::new(Arc::clone(&budget)));
        assert_eq!(writer.join().ok().flatten(), None);
        assert_eq!(budget.reserve(1), None);
    }

    /// A response ended by its writer's last reply leaves its budget as it was: no writer is
    /// left to wake or refuse, so the close (a lock) is skipped.
    #[test]
    fn rule_3_a_budget_whose_writer_is_done_is_not_closed() {
        let budget = Arc::new(Budget::new(1, 0));
        let close = CloseOnDrop::new(Arc::clone(&budget));
        close.writer_done();
        drop(close);
        assert_eq!(budget.reserve(1), Some(Placement::Memory));
    }

    #[test]
    fn spill_files_rotate_after_the_watermark() -> io::Result<()> {
        let mut spill = Spill::default();
        let first = spill.append(b"abcdef", 8)?;
        let second = spill.append(b"ghij", 8)?;
        assert!(Arc::ptr_eq(&first.file, &second.file));
        assert_eq!(second.offset, 6);
        let third = spill.append(b"klm", 8)?;
        assert!(!Arc::ptr_eq(&first.file, &third.file));
        assert_eq!(third.offset, 0);
        let mut back = [0u8; 4];
        second.file.read_exact_at(&mut back, second.offset)?;
        assert_eq!(&back, b"ghij");
        Ok(())
    }

    #[test]
    fn a_spill_file_is_reused_once_no_piece_of_it_waits() -> io::Result<()> {
        static POOL: Spares = Spares::new();
        let mut spill = Spill::keeping_in(&POOL);
        let old = spill.append(b"first response", 1 << 20)?;
        let old_file = Arc::as_ptr(&old.file);
        drop(spill);
        drop(old);
        let mut spill = Spill::keeping_in(&POOL);
        let new = spill.append(b"second", 1 << 20)?;
        assert_eq!(Arc::as_ptr(&new.file), old_file, "the spare file is taken");
        assert_eq!(new.offset, 0);
        let mut back = [0u8; 6];
        new.file.read_exact_at(&mut back, 0)?;
        assert_eq!(&back, b"second");
        Ok(())
    }

    #[test]
    fn a_spill_file_with_a_piece_still_waiting_is_not_reused() -> io::Result<()> {
        static POOL: Spares = Spares::new();
        let mut spill = Spill::keeping_in(&POOL);
        let waiting = spill.append(b"still being sent", 1 << 20)?;
        drop(spill);
        let mut spill = Spill::keeping_in(&POOL);
        let new = spill.append(b"next response", 1 << 20)?;
        assert!(!Arc::ptr_eq(&new.file, &waiting.file));
        let mut back = [0u8; 16];
        waiting.file.read_exact_at(&mut back, waiting.offset)?;
        assert_eq!(&back, b"still being sent", "the waiting piece is intact");
        Ok(())
    }

    #[test]
    fn a_spill_file_past_the_spare_limit_is_not_kept() -> io::Result<()> {
        static POOL: Spares = Spares::new();
        let big = vec![7u8; usize::try_from(SPARE_MAX).unwrap_or(usize::MAX) + 1];
        let mut spill = Spill::keeping_in(&POOL);
        let piece = spill.append(&big, usize::MAX)?;
        drop(spill);
        drop(piece);
        assert_eq!(POOL.lock().len(), 0, "closed, not kept");
        let mut spill = Spill::keeping_in(&POOL);
        spill.append(b"small", usize::MAX)?;
        drop(spill);
        assert_eq!(POOL.lock().len(), 1);
        Ok(())
    }

    #[test]
    fn no_more_than_spares_files_are_kept() -> io::Result<()> {
        // SPARES - 1, SPARES and SPARES + 1 responses spilling at once: each response's
        // piece still waits, so each needs a file of its own; at most SPARES are kept.
        for (files, pool) in [
            (SPARES - 1, Box::leak(Box::new(Spares::new()))),
            (SPARES, Box::leak(Box::new(Spares::new()))),
            (SPARES + 1, Box::leak(Box::new(Spares::new()))),
        ] {
            let pool: &'static Spares = pool;
            let mut waiting = Vec::new();
            for _ in 0..files {
                let mut spill = Spill::keeping_in(pool);
                waiting.push(spill.append(b"in use", 1 << 20)?);
            }
            assert_eq!(
                pool.lock().len(),
                files.min(SPARES),
                "the rest close with their pieces ({files} files)"
            );
        }
        Ok(())
    }
}
