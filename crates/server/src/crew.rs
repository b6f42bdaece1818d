//! The worker threads and the I/O: whoever is free drives it (leader/followers).
//!
//! A request costs least when the thread that reads it also runs it and writes its answer:
//! no hand-over to another thread and no wake-up of one (docs/design.md "Thread model").
//! So the worker threads take turns at driving the server's one tokio runtime:
//!
//! 1. An idle worker with no queued request **leads**: it drives the runtime (accepts,
//!    reads, parses, timeouts, writes) until a connection hands over a complete request,
//!    then leaves the runtime and runs that request itself. Leaving makes the lead
//!    **vacant**; the worker takes it again when it is done, unless someone else has it.
//! 2. While a worker leads, a pass of the runtime lets through a **burst**: at most `BURST`
//!    requests, or one for the leader and one for each idle worker when that is more
//!    (`turn`: the queue holds no more than that); the others wait their turn in their
//!    connections, in order, and the leader lets as many through each time it comes back.
//!    The leader runs what it was handed in turn (with the GIL, one thread at a time runs
//!    Python anyway): a worker that finishes takes a queued request before it leads again,
//!    and ends the response it ran on the way (its worker wrote the answer itself:
//!    handler.rs rule 5; a quiet end has nothing to tell, rule 6). The connection is told of the
//!    end (`Ended`: its task woken) inside the runtime, where a wake costs no driver
//!    wake-up (an eventfd write): with the lead vacant the end is **kept** for whoever
//!    takes the lead next, who drives the runtime anyway (session 11: this replaced a
//!    `block_on` of the ending alone, ~790 instructions, per request). Its task would not
//!    run any sooner: nobody drives the runtime until then (the stand-by's check bounds
//!    that, rule 3). One `epoll_wait` and
//!    one runtime pass so serve a whole burst, not each request (session 8: pinned hello
//!    CPU −31%; session 10: a burst of up to 16 rather than `idle + 1`, −3%). A burst is not
//!    a queue of requests waiting for a busy thread: a free worker (the leader) runs it, so
//!    `push` says so (`Pushed::ToLeader`) and the queue-depth warning (SPEC §3.15) stays for
//!    requests queued while no worker is free to lead (`Pushed::Queued`); and a request
//!    that runs long does not hold the ones behind it past the stand-by's next check (rule
//!    3), which hands them to idle workers.
//! 3. The **stand-by** (the thread that called `serve`) never runs a request. It checks
//!    every `WATCH` whether the lead stayed vacant, or the front of the queue stayed the
//!    same, since its last check: a request that takes longer than that must not hold
//!    anyone else's. It then wakes an idle worker, to lead or to take the waiting request;
//!    with no worker idle it leads itself, so accepts, timeouts and output never wait for
//!    an application, and tells the handler when requests (a burst's) are left in the
//!    queue waiting for those busy workers (`Handler::every_worker_busy`: the queue-depth
//!    warning). It hands the lead back as soon as a worker is idle.
//! 4. The stand-by sleeps without a timeout once nothing changed for `QUIET_CHECKS` checks;
//!    the next vacancy wakes it. An idle server makes no wake-ups.
//!
//! With no workers at all (a Rust handler with its own threads) the stand-by leads for the
//! whole run: the one-I/O-thread model.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::handler::{Ended, Handler, Request, Responder};

/// A complete request and the responder for its answer.
pub type Job = (Request, Responder);

/// How long a vacant lead or a waiting request may go unnoticed (module rule 3).
const WATCH: Duration = Duration::from_millis(1);

/// Checks with nothing changed before the stand-by sleeps until woken (module rule 4).
const QUIET_CHECKS: u32 = 20;

/// The most requests a pass lets through while a worker leads, unless the idle workers
/// and the leader are more (module rule 2). A pass costs ~3.7k instructions and an
/// `epoll_wait` (Session 10: callgrind, hello@16 −700 instructions a request against
/// `idle + 1` = 4); sixteen quick requests take ~0.25 ms, well inside the stand-by's check.
const BURST: usize = 16;

/// Where `push` put a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A worker leads: that free worker (or an idle one) runs it, in turn.
    ToLeader,
    /// No worker leads (the stand-by does, every worker being busy): it waits for one.
    Queued,
    /// The crew is closed: refused with a 500.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    Vacant,
    Worker,
    Standby,
}

struct State {
    /// Queued requests, each with its sequence number (for the stand-by's check).
    queue: VecDeque<(u64, Job)>,
    pushed: u64,
    lead: Lead,
    /// Counts the times the lead became vacant.
    vacated: u64,
    /// Workers waiting in `next` for a request or the lead.
    idle: usize,
    /// A worker found the stand-by leading and waits for the lead.
    lead_wanted: bool,
    /// The leading worker's wait for a request, woken by `push`.
    leader_waker: Option<Waker>,
    /// The leading stand-by's wait for an idle worker or the end.
    standby_waker: Option<Waker>,
    /// Connections waiting for their turn to hand over a request (`turn`), in ticket order.
    waiting: VecDeque<(u64, Waker)>,
    /// Ends of responses run while the lead was vacant, for whoever next takes the lead to
    /// tell inside the runtime (module rule 2).
    ended: Vec<Ended>,
    /// Tickets given out, and the highest let through.
    tickets: u64,
    admitted: u64,
    /// The stand-by sleeps until woken (module rule 4).
    standby_asleep: bool,
    runtime: Option<Arc<Runtime>>,
    phase: Phase,
}

/// Where the run is; each phase includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// The server's main task ended: the stand-by stops.
    Finished,
    /// No more requests are taken.
    Closed,
}

/// The worker threads' shared queue and turn at the I/O (module header).
pub struct Crew {
    state: Mutex<State>,
    /// `BURST`, or another size for a test.
    burst: usize,
    /// Idle workers wait here.
    workers: Condvar,
    /// The stand-by waits here between checks.
    standby: Condvar,
}

impl std::fmt::Debug for Crew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crew")
    }
}

impl Default for Crew {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                pushed: 0,
                lead: Lead::Vacant,
                vacated: 0,
                idle: 0,
                lead_wanted: false,
                leader_waker: None,
                standby_waker: None,
                waiting: VecDeque::new(),
                ended: Vec::new(),
                tickets: 0,
                admitted: 0,
                standby_asleep: false,
                runtime: None,
                phase: Phase::Serving,
            }),
            workers: Condvar::new(),
            standby: Condvar::new(),
            burst: BURST,
        }
    }
}

impl Crew {
    /// A crew for one run of [`crate::serve`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The most requests a pass lets through (module rule 2).
    fn burst(&self, state: &State) -> usize {
        self.burst.max(state.idle + 1)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a request for a worker (called by the `Handler`, on the thread leading), and
    /// say whether a free worker runs it or it waits for a busy one. Once the crew is
    /// closed the request is refused with a 500 instead.
    pub fn push(&self, job: Job) -> Pushed {
        let mut state = self.lock();
        if state.phase == Phase::Closed {
            drop(state);
            job.1.abort("The server is not accepting requests");
            return Pushed::Refused;
        }
        state.pushed += 1;
        let seq = state.pushed;
        state.queue.push_back((seq, job));
        match state.lead {
            // The leader leaves the runtime and runs it (module rule 1).
            Lead::Worker => {
                if let Some(waker) = state.leader_waker.take() {
                    drop(state);
                    waker.wake();
                }
                Pushed::ToLeader
            }
            // The stand-by never runs requests: an idle worker takes it.
            Lead::Standby | Lead::Vacant => {
                let wake = state.idle > 0;
                drop(state);
                if wake {
                    self.workers.notify_one();
                }
                Pushed::Queued
            }
        }
    }

    /// The first queued request, taken without waiting, with `first` run on the way as
    /// `next_after` runs it then; `first` is given back when nothing is queued, for
    /// `next_after`. A worker that holds the GIL takes a burst's next request this way
    /// without letting the GIL go and taking it again (it needs it for the request anyway):
    /// `first` then runs with the GIL held, so it must not block.
    pub fn take_queued<F>(&self, first: F) -> Result<Job, F>
    where
        F: FnOnce() -> Option<Ended>,
    {
        let mut state = self.lock();
        match state.queue.pop_front() {
            Some((_, job)) => {
                self.end_then_take(state, first);
                Ok(job)
            }
            None => Err(first),
        }
    }

    /// A worker's next request: the first queued, or the first one found while leading.
    /// Blocks; None once the crew is closed and nothing is queued.
    pub fn next(&self) -> Option<Job> {
        self.next_after(|| None)
    }

    /// `next`, running `first` before it waits. `first` ends the response just run and
    /// returns that end ([`Ended`]) for the crew to tell its connection inside the runtime
    /// (module rule 2): at once when this worker leads; when the lead is vacant, kept for
    /// whoever takes it next, who drives the runtime anyway; only with another thread
    /// leading, here (its driver must wake for it). A wake from inside the runtime costs
    /// no driver wake-up (an eventfd write), and keeping the end costs no runtime entry.
    pub fn next_after(&self, first: impl FnOnce() -> Option<Ended>) -> Option<Job> {
        let mut first = Some(first);
        let mut state = self.lock();
        loop {
            match state.queue.pop_front() {
                Some((_, job)) => {
                    if let Some(first) = first.take() {
                        self.end_then_take(state, first);
                    }
                    return Some(job);
                }
                None if state.phase == Phase::Closed => {
                    drop(state);
                    if let Some(first) = first.take() {
                        drop(first());
                    }
                    return None;
                }
                None => {}
            }
            // Cloned only to lead: an idle worker holds no handle to the runtime, so the
            // last one is never dropped on a worker with the lock held.
            let runtime = (state.lead == Lead::Vacant)
                .then(|| state.runtime.clone())
                .flatten();
            if let Some(runtime) = runtime {
                state.lead = Lead::Worker;
                let ended = std::mem::take(&mut state.ended);
                drop(state);
                // However the lead ends (a panic included), it is vacated.
                let leading = Leading(self);
                let first = first.take();
                let job = runtime.block_on(async {
                    drop(ended);
                    if let Some(first) = first {
                        drop(first());
                    }
                    self.until_request().await
                });
                // The runtime is let go before the lock is taken again: the last handle
                // to it may be this one (`close`).
                drop(runtime);
                drop(leading);
                if job.is_some() {
                    return job;
                }
                state = self.lock();
                continue;
            }
            // Not leading: `first` runs here, then everything is looked at again.
            if let Some(first) = first.take() {
                drop(state);
                drop(first());
                state = self.lock();
                continue;
            }
            if state.lead == Lead::Standby && !state.lead_wanted {
                state.lead_wanted = true;
                if let Some(waker) = state.standby_waker.take() {
                    waker.wake();
                }
            }
            state = self.wait_idle(state);
        }
    }

    /// A queued request is a worker's next: the response it just ran is ended on the way
    /// (`first`), and its end kept for the next to lead
    /// while the lead stays vacant (rule 2), else told here.
    fn end_then_take(&self, state: MutexGuard<'_, State>, first: impl FnOnce() -> Option<Ended>) {
        let vacant = state.lead == Lead::Vacant;
        drop(state);
        // A quiet end (handler.rs rule 6) has nothing to tell: nothing to keep either.
        let Some(ended) = first().filter(Ended::is_pending) else {
            return;
        };
        if vacant {
            let mut state = self.lock();
            // Whoever takes the lead takes the kept ends with it, under this lock.
            if state.lead == Lead::Vacant && state.phase != Phase::Closed {
                state.ended.push(ended);
                return;
            }
        }
        ended.tell();
    }

    fn wait_idle<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.idle += 1;
        let mut state = self
            .workers
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
        state.idle -= 1;
        state
    }

    fn vacate(&self, state: &mut State) {
        state.lead = Lead::Vacant;
        state.vacated += 1;
        if state.standby_asleep {
            state.standby_asleep = false;
            self.standby.notify_one();
        }
    }

    /// The leading worker's wait: until a request is queued (taken) or the crew closes.
    /// The next connection waiting its turn is let through (module rule 2).
    async fn until_request(&self) -> Option<Job> {
        poll_fn(|cx| {
            let mut state = self.lock();
            if let Some((_, job)) = state.queue.pop_front() {
                return Poll::Ready(Some(job));
            }
            if state.phase == Phase::Closed {
                return Poll::Ready(None);
            }
            state.leader_waker = Some(cx.waker().clone());
            for _ in 0..self.burst(&state) {
                let Some((ticket, waker)) = state.waiting.pop_front() else {
                    break;
                };
                state.admitted = ticket;
                waker.wake();
            }
            Poll::Pending
        })
        .await
    }

    /// Let every connection waiting its turn through (the stand-by leads: requests queue).
    fn admit_all(state: &mut State) {
        state.admitted = state.tickets;
        for (_, waker) in state.waiting.drain(..) {
            waker.wake();
        }
    }

    /// A connection's wait before it hands over a request (module rule 2): at once unless
    /// a worker leads and already has a request, or others wait before it.
    pub(crate) async fn turn(&self) {
        let mut ticket = None;
        poll_fn(|cx| {
            let mut state = self.lock();
            if state.lead != Lead::Worker {
                return Poll::Ready(());
            }
            let room = state.queue.len() < self.burst(&state);
            match ticket {
                // Not let through yet (a spurious poll): keep the place.
                Some(mine) if mine > state.admitted => return Poll::Pending,
                Some(_) => {
                    if room {
                        return Poll::Ready(());
                    }
                }
                None => {
                    if room && state.waiting.is_empty() {
                        return Poll::Ready(());
                    }
                }
            }
            state.tickets += 1;
            let mine = state.tickets;
            state.waiting.push_back((mine, cx.waker().clone()));
            ticket = Some(mine);
            Poll::Pending
        })
        .await;
    }

    /// The leading stand-by's wait: until a worker is idle and wants the lead, or the crew
    /// closes.
    async fn until_worker_idle(&self) {
        poll_fn(|cx| {
            let mut state = self.lock();
            Self::admit_all(&mut state);
            if state.lead_wanted || state.phase >= Phase::Finished {
                return Poll::Ready(());
            }
            state.standby_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// The stand-by's part (module rules 3, 4), run by the thread that called `serve`
    /// until `finish`. `handler` is told when it takes the lead from busy workers while
    /// requests wait in the queue.
    pub(crate) fn stand_by(&self, runtime: &Arc<Runtime>, handler: &dyn Handler) {
        let mut state = self.lock();
        state.runtime = Some(Arc::clone(runtime));
        self.workers.notify_all();
        let mut seen_vacated = None;
        let mut seen_front = None;
        let mut quiet = 0;
        while state.phase == Phase::Serving {
            let front = state.queue.front().map(|(seq, _)| *seq);
            let stuck_lead = state.lead == Lead::Vacant && seen_vacated == Some(state.vacated);
            let stuck_queue = front.is_some() && front == seen_front;
            if stuck_lead && state.idle == 0 {
                state.lead = Lead::Standby;
                let waiting = !state.queue.is_empty();
                let ended = std::mem::take(&mut state.ended);
                drop(state);
                if waiting {
                    handler.every_worker_busy();
                }
                runtime.block_on(async {
                    drop(ended);
                    self.until_worker_idle().await;
                });
                state = self.lock();
                state.lead_wanted = false;
                state.standby_waker = None;
                self.vacate(&mut state);
                state.standby_asleep = false;
                self.workers.notify_all();
                seen_vacated = None;
                continue;
            }
            if stuck_lead || stuck_queue {
                // An idle worker leads, or takes the request that waited.
                let wanted = if stuck_queue { state.queue.len() } else { 1 };
                for _ in 0..wanted.min(state.idle) {
                    self.workers.notify_one();
                }
            }
            let changed = seen_vacated != Some(state.vacated) || seen_front != front;
            quiet = if changed { 0 } else { quiet + 1 };
            seen_vacated = Some(state.vacated);
            seen_front = front;
            if quiet >= QUIET_CHECKS && state.lead != Lead::Vacant && front.is_none() {
                state.standby_asleep = true;
                while state.standby_asleep && state.phase == Phase::Serving {
                    state = self
                        .standby
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                quiet = 0;
            } else {
                state = self
                    .standby
                    .wait_timeout(state, WATCH)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        drop(state);
    }

    /// The server is done: the stand-by returns from `stand_by`.
    pub(crate) fn finish(&self) {
        let mut state = self.lock();
        state.phase = state.phase.max(Phase::Finished);
        state.standby_asleep = false;
        if let Some(waker) = state.standby_waker.take() {
            waker.wake();
        }
        drop(state);
        self.standby.notify_all();
    }

    /// No more requests: workers leave once the queue is empty. Waits until no worker
    /// drives the runtime, then gives it back (for the caller to drop).
    pub fn close(&self) -> Option<Arc<Runtime>> {
        let mut state = self.lock();
        state.phase = Phase::Closed;
        // Requests still queued lost their connections (the drain was cut short): they are
        // answered by no one, as waitress cancels its pending tasks. Dropped unlocked.
        let cancelled: Vec<_> = state.queue.drain(..).collect();
        if let Some(waker) = state.leader_waker.take() {
            waker.wake();
        }
        self.workers.notify_all();
        while state.lead == Lead::Worker {
            state = self
                .standby
                .wait_timeout(state, WATCH)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let runtime = state.runtime.take();
        // Ends kept for a lead no one will take: told here.
        let ended = std::mem::take(&mut state.ended);
        drop(state);
        drop(cancelled);
        drop(ended);
        runtime
    }
}

/// A worker's lead: vacated when dropped, however `block_on` ends.
struct Leading<'a>(&'a Crew);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        self.0.vacate(&mut state);
    }
}

/// Tells the crew the server is done when dropped, however the main task ends.
pub(crate) struct FinishOnDrop(pub(crate) Arc<Crew>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use crate::ClientGone;
    use std::thread;
    use std::time::Instant;

    use waitress_http::request::HeadParser;
    use waitress_http::Limits;

    use super::*;
    use crate::handler::{Line, Reply, RequestBody, Wire};
    use crate::outbuf::Budget;
    use crate::{Peer, StopHandle};

    /// A socket that never takes anything.
    #[derive(Debug)]
    struct NoWire;

    impl Wire for NoWire {
        fn try_send(&self, _parts: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::WouldBlock.into())
        }
    }

    /// A job whose request says which "connection" (`listener`) it came from.
    fn job(connection: usize) -> Job {
        job_told(connection).0
    }

    /// `job`, and what its connection is told.
    fn job_told(connection: usize) -> (Job, crate::reply::Receiver) {
        let head = HeadParser::new(Limits::default())
            .parse(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let (tx, rx) = crate::reply::channel();
        let gone = Arc::new(ClientGone::default());
        let line = Line::new(tx, Arc::new(NoWire), Arc::clone(&gone), StopHandle::new());
        let responder = Responder::new(Arc::new(line), Arc::new(Budget::new(1 << 20, 1 << 19)));
        let request = Request {
            head,
            body: RequestBody::Memory(Vec::new()),
            peer: Peer::Unix,
            listener: connection,
            gone,
            closing: false,
        };
        ((request, responder), rx)
    }

    /// A crew with its runtime and its stand-by thread, as `serve` sets them up.
    fn crew() -> (Arc<Crew>, Arc<Runtime>, thread::JoinHandle<()>) {
        crew_with_burst(BURST)
    }

    /// `crew`, whose passes let through at most `burst` requests (or one for the leader
    /// and one for each idle worker when that is more).
    fn crew_with_burst(burst: usize) -> (Arc<Crew>, Arc<Runtime>, thread::JoinHandle<()>) {
        let crew = Arc::new(Crew {
            burst,
            ..Crew::default()
        });
        let runtime = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        );
        let standby = {
            let crew = Arc::clone(&crew);
            let runtime = Arc::clone(&runtime);
            thread::spawn(move || crew.stand_by(&runtime, &Told::default()))
        };
        (crew, runtime, standby)
    }

    /// A handler that counts the stand-by's `every_worker_busy` (the crew never calls
    /// `handle`: the tests push their requests themselves).
    #[derive(Debug, Default)]
    struct Told(std::sync::atomic::AtomicUsize);

    impl Handler for Told {
        fn handle(&self, _request: Request, responder: Responder) {
            responder.abort("test");
        }

        fn every_worker_busy(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Count `idle` workers as waiting in `next` (none runs: the thread under test takes
    /// every request), then wait for the stand-by to hand out the runtime. The stand-by,
    /// which leads only when no worker is idle, then never takes the lead first.
    fn count_idle(crew: &Crew, idle: usize) {
        crew.lock().idle += idle;
        while crew.lock().runtime.is_none() {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Spawn `task` once the thread under test leads (from another thread): the leading
    /// worker runs it, never the stand-by, however late the test thread gets to `next`.
    fn spawn_when_led(
        crew: &Arc<Crew>,
        runtime: &Arc<Runtime>,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> thread::JoinHandle<()> {
        let crew = Arc::clone(crew);
        let runtime = Arc::clone(runtime);
        thread::spawn(move || {
            while crew.lock().lead != Lead::Worker {
                thread::sleep(Duration::from_micros(100));
            }
            runtime.spawn(task);
        })
    }

    /// A worker that ran the request of `first` takes `more` requests in turn, ending each
    /// response on its way to the next (`next_after`), then ends the last. Returns the
    /// connections found (`first` included) and, for each ending, whether it ran inside the
    /// runtime.
    fn run_in_turn(
        crew: &Crew,
        first: usize,
        responder: Responder,
        more: usize,
    ) -> (Vec<usize>, Vec<bool>) {
        let mut found = vec![first];
        let mut told = Vec::new();
        let mut ending = Some(responder);
        for _ in 0..more {
            let (request, responder) = crew
                .next_after(|| {
                    told.push(tokio::runtime::Handle::try_current().is_ok());
                    if let Some(responder) = ending.take() {
                        responder.abort("test");
                    }
                    None
                })
                .unwrap();
            found.push(request.listener);
            ending = Some(responder);
        }
        if let Some(responder) = ending.take() {
            responder.abort("test");
        }
        (found, told)
    }

    fn end(crew: &Crew, standby: thread::JoinHandle<()>) {
        crew.finish();
        standby.join().unwrap();
        drop(crew.close());
    }

    /// A burst (rule 2): three connections with a request each and one worker, so none
    /// idle. One pass lets all three through (they are fewer than `BURST`), each pushed
    /// for the leader (`Pushed::ToLeader`: no queue-depth warning), and the worker runs
    /// them in order, ending each response inside the runtime on its way to the next.
    #[test]
    fn rule_2_a_pass_lets_a_burst_through_for_the_leader_to_run_in_turn() {
        let (crew, runtime, standby) = crew();
        let pushed = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::clone(&crew);
        let put = Arc::clone(&pushed);
        let spawner = spawn_when_led(&crew, &runtime, async move {
            for connection in 0..3 {
                connections.turn().await;
                let result = connections.push(job(connection));
                put.lock().unwrap().push(result);
            }
        });
        let (request, responder) = crew.next().unwrap();
        spawner.join().unwrap();
        assert_eq!(crew.lock().queue.len(), 2);
        assert!(crew.lock().waiting.is_empty());
        let (found, told) = run_in_turn(&crew, request.listener, responder, 2);
        assert_eq!(found, [0, 1, 2]);
        assert_eq!(told, [false, false]);
        assert_eq!(*pushed.lock().unwrap(), [Pushed::ToLeader; 3]);
        end(&crew, standby);
    }

    /// A worker that ends a response on its way to a queued request, with the lead
    /// vacant, keeps the end for the next to lead (rule 2): its connection is not told
    /// then, and nothing is lost. Here the worker stays busy, so the stand-by takes the
    /// lead (rule 3) and tells it, inside the runtime.
    #[test]
    fn rule_2_an_end_made_while_the_lead_is_vacant_is_told_by_the_next_to_lead() {
        let (crew, runtime, standby) = crew();
        let (first, mut told) = job_told(0);
        let connections = Arc::clone(&crew);
        let spawner = spawn_when_led(&crew, &runtime, async move {
            connections.turn().await;
            connections.push(first);
            connections.turn().await;
            connections.push(job(1));
        });
        let (request, responder) = crew.next().unwrap();
        spawner.join().unwrap();
        assert_eq!(request.listener, 0);
        // The stand-by must not lead before the end is kept: it counts this worker idle.
        crew.lock().idle += 1;
        let (second, _) = crew
            .next_after(|| {
                assert!(tokio::runtime::Handle::try_current().is_err());
                responder.finish_raw_ended(b"ok".to_vec(), true).ok()
            })
            .unwrap();
        assert_eq!(second.listener, 1);
        assert_eq!(crew.lock().ended.len(), 1);
        assert!(told.try_recv().is_err(), "told before anyone led");
        crew.lock().idle -= 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        let reply = loop {
            if let Ok(reply) = told.try_recv() {
                break reply;
            }
            assert!(Instant::now() < deadline, "the kept end was never told");
            thread::sleep(Duration::from_millis(1));
        };
        assert!(matches!(reply, Reply::EndRaw { ref last, keep_alive: true } if last == b"ok"));
        assert!(crew.lock().ended.is_empty());
        assert_eq!(crew.lock().lead, Lead::Standby);
        end(&crew, standby);
    }

    /// A worker that holds the GIL takes a queued request without waiting, ending its
    /// last response on the way (outside the runtime, as `next_after` ends it then); with
    /// nothing queued it gets the ending back, not run, to wait in `next_after`.
    #[test]
    fn rule_2_a_queued_request_is_taken_without_waiting_and_the_last_response_ended_first() {
        let (crew, _runtime, standby) = crew();
        let mut ran = Vec::new();
        let back = crew.take_queued(|| {
            ran.push(tokio::runtime::Handle::try_current().is_ok());
            None
        });
        assert!(back.is_err(), "nothing was queued");
        drop(back);
        assert!(ran.is_empty(), "the ending ran with no request to take");
        assert_eq!(crew.push(job(3)), Pushed::Queued);
        let taken = crew.take_queued(|| {
            ran.push(tokio::runtime::Handle::try_current().is_ok());
            None
        });
        let Ok((request, _responder)) = taken else {
            panic!("the queued request was not taken");
        };
        assert_eq!(request.listener, 3);
        assert_eq!(ran, [false]);
        assert!(crew.lock().queue.is_empty());
        end(&crew, standby);
    }

    /// Three connections with a request each; one worker, so none idle, and a burst of
    /// one. The first hands over at once, the others wait their turn (rule 2): the worker
    /// finds them one at a time, in order, and never more than one waits in the queue.
    #[test]
    fn rule_2_with_no_worker_idle_requests_are_handed_over_one_at_a_time_in_order() {
        let (crew, runtime, standby) = crew_with_burst(1);
        for connection in 0..3 {
            let crew = Arc::clone(&crew);
            runtime.spawn(async move {
                crew.turn().await;
                crew.push(job(connection));
            });
        }
        let mut found = Vec::new();
        for _ in 0..3 {
            let (request, responder) = crew.next().unwrap();
            assert!(crew.lock().queue.is_empty());
            found.push(request.listener);
            responder.abort("test");
        }
        assert_eq!(found, [0, 1, 2]);
        end(&crew, standby);
    }

    /// With two workers idle, a leading worker's pass lets through a request for each of
    /// them and one for itself; the rest wait their turn (rule 2). The leader runs those in
    /// turn, ending each response on its way to the next (outside the runtime), then leads
    /// again for the rest (that ending inside it).
    #[test]
    fn rule_2_a_pass_hands_over_a_request_per_idle_worker_and_the_leader_runs_them_in_turn() {
        let (crew, runtime, standby) = crew_with_burst(1);
        count_idle(&crew, 2);
        for connection in 0..5 {
            let crew = Arc::clone(&crew);
            runtime.spawn(async move {
                crew.turn().await;
                crew.push(job(connection));
            });
        }
        let (request, responder) = crew.next().unwrap();
        assert_eq!(request.listener, 0);
        assert_eq!(crew.lock().queue.len(), 2);
        assert_eq!(crew.lock().waiting.len(), 2);
        let (found, told) = run_in_turn(&crew, request.listener, responder, 4);
        assert_eq!(found, [0, 1, 2, 3, 4]);
        assert_eq!(told, [false, false, true, false]);
        crew.lock().idle -= 2;
        end(&crew, standby);
    }

    /// The one worker is inside a request for 300 ms: the stand-by notices the vacant lead
    /// and drives the runtime, so another connection's request is read and queued long
    /// before the worker is free (rule 3), as one that waits for a busy worker
    /// (`Pushed::Queued`: the queue-depth warning's case), and the worker takes it from the
    /// queue.
    #[test]
    fn rule_3_the_stand_by_leads_while_every_worker_is_busy() {
        let (crew, runtime, standby) = crew();
        let first = Arc::clone(&crew);
        let (tx, rx) = std::sync::mpsc::channel();
        let first_tx = tx.clone();
        runtime.spawn(async move {
            let _ = first_tx.send(first.push(job(0)));
        });
        let (_, responder) = crew.next().unwrap();
        let busy_since = Instant::now();
        let second = Arc::clone(&crew);
        runtime.spawn(async move {
            second.turn().await;
            let _ = tx.send(second.push(job(1)));
        });
        let deadline = busy_since + Duration::from_millis(300);
        let mut queued_after = None;
        while Instant::now() < deadline {
            if queued_after.is_none() && !crew.lock().queue.is_empty() {
                queued_after = Some(busy_since.elapsed());
            }
            thread::sleep(Duration::from_millis(1));
        }
        responder.abort("test");
        assert!(queued_after.unwrap() < Duration::from_millis(100));
        let (request, responder) = crew.next().unwrap();
        assert_eq!(request.listener, 1);
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            [Pushed::ToLeader, Pushed::Queued]
        );
        responder.abort("test");
        end(&crew, standby);
    }

    /// Rule 3: the one worker is busy and a request waits in the queue for it; the
    /// stand-by, taking the lead, tells the handler every worker is busy (the queue-depth
    /// warning's case for requests of a burst). With the queue empty it says nothing.
    #[test]
    fn rule_3_the_stand_by_says_when_requests_wait_for_busy_workers() {
        let crew = Crew::new();
        let runtime = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        );
        let told = Arc::new(Told::default());
        let standby = {
            let crew = Arc::clone(&crew);
            let runtime = Arc::clone(&runtime);
            let told = Arc::clone(&told);
            thread::spawn(move || crew.stand_by(&runtime, &*told))
        };
        // Busy with an empty queue: the stand-by leads and says nothing.
        let first = Arc::clone(&crew);
        runtime.spawn(async move {
            first.push(job(0));
        });
        let (_, responder) = crew.next().unwrap();
        thread::sleep(Duration::from_millis(50));
        assert_eq!(told.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        responder.abort("test");
        // Busy with a request queued behind it (pushed while this worker leads, as a
        // burst's is): told once the stand-by takes the lead.
        let (tx, rx) = std::sync::mpsc::channel();
        let burst = Arc::clone(&crew);
        let spawner = spawn_when_led(&crew, &runtime, async move {
            let _ = tx.send((burst.push(job(1)), burst.push(job(2))));
        });
        let (_, responder) = crew.next().unwrap();
        spawner.join().unwrap();
        assert_eq!(rx.recv().unwrap(), (Pushed::ToLeader, Pushed::ToLeader));
        let deadline = Instant::now() + Duration::from_millis(500);
        while told.0.load(std::sync::atomic::Ordering::SeqCst) == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(told.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        responder.abort("test");
        let (request, responder) = crew.next().unwrap();
        assert_eq!(request.listener, 2);
        responder.abort("test");
        crew.finish();
        standby.join().unwrap();
        drop(crew.close());
    }

    /// `close` wakes a worker that leads while nothing comes, and it leaves with None.
    #[test]
    fn close_ends_a_leading_worker_with_none() {
        let (crew, _runtime, standby) = crew();
        let worker = {
            let crew = Arc::clone(&crew);
            thread::spawn(move || crew.next().is_none())
        };
        while crew.lock().lead != Lead::Worker {
            thread::sleep(Duration::from_millis(1));
        }
        end(&crew, standby);
        assert!(worker.join().unwrap());
    }

    /// Requests still queued when the crew closes lost their connections (a drain cut
    /// short): no worker runs them after the close.
    #[test]
    fn close_cancels_the_requests_still_queued() {
        let crew = Crew::new();
        assert_eq!(crew.push(job(0)), Pushed::Queued);
        assert_eq!(crew.push(job(1)), Pushed::Queued);
        drop(crew.close());
        assert!(crew.lock().queue.is_empty());
        assert!(crew.next().is_none());
        assert_eq!(crew.push(job(2)), Pushed::Refused);
    }

    /// A worker whose lead ends in a panic leaves the lead vacant, so the stand-by (or
    /// another worker) can drive the runtime and a stop can finish.
    #[test]
    fn a_panic_while_leading_vacates_the_lead() {
        let (crew, _runtime, standby) = crew();
        // So this thread, not the stand-by, takes the vacant lead.
        count_idle(&crew, 1);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crew.next_after(|| panic!("in the first step"))
        }));
        assert!(unwound.is_err());
        assert_eq!(crew.lock().lead, Lead::Vacant);
        crew.lock().idle -= 1;
        end(&crew, standby);
    }
}
