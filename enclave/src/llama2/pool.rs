//! A small persistent thread pool for splitting one forward pass's matrix
//! products over cores.
//!
//! A job is a closure called once per chunk index `0..chunks`; the calling
//! thread and the workers take chunks from a shared counter, so a worker
//! that the OS has not scheduled yet costs nothing: the caller does the
//! chunks it does not take. [`Pool::try_run`] returns once every chunk is done.
//!
//! Workers spin briefly between jobs (a token's jobs come microseconds
//! apart), then sleep on a condition variable until the next job.
//!
//! Safety protocol (the closure lives on the caller's stack, workers see it
//! through a raw pointer):
//! - `epoch` is odd while the caller (re)writes the job and even once it is
//!   published; a worker registers in `in_flight` and then re-reads
//!   `epoch`, backing off if it changed, so it never reads a job being
//!   written (the caller waits for `in_flight == 0` after making `epoch`
//!   odd, before writing);
//! - a worker calls the closure only for a chunk index it took below
//!   `chunks`, and `run` returns only after all chunks are done, so no call
//!   outlives the borrow.
//!
//! One job runs at a time: [`Pool::try_run`] takes `&self` but holds a lock; a
//! second caller meanwhile (another request on another connection) runs
//! its job on its own thread instead of waiting ([`Pool::try_run`]).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

type Task<'a> = dyn Fn(usize) + Sync + 'a;

struct Job {
    task: *const Task<'static>,
    chunks: usize,
}

struct Inner {
    epoch: AtomicUsize,
    job: UnsafeCell<Job>,
    next: AtomicUsize,
    done: AtomicUsize,
    in_flight: AtomicUsize,
    sleepers: AtomicUsize,
    stop: AtomicBool,
    /// A worker's chunk panicked during the current job.
    worker_panicked: AtomicBool,
    bell: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the caller holding `Pool::busy` while no
// worker is in flight (see the module doc); the task it points to is Sync.
unsafe impl Sync for Inner {}
unsafe impl Send for Inner {}

/// Worker threads plus the calling thread.
pub struct Pool {
    inner: Arc<Inner>,
    busy: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads())
    }
}

impl Pool {
    /// A pool of `threads` in all (the caller counts as one), so
    /// `threads - 1` workers. Fails only if a thread cannot be spawned.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let inner = Arc::new(Inner {
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(Job {
                task: std::ptr::null::<fn(usize)>() as *const Task<'static>,
                chunks: 0,
            }),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            worker_panicked: AtomicBool::new(false),
            bell: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = Pool {
            inner,
            busy: Mutex::new(()),
            workers: Vec::new(),
        };
        for i in 1..threads.max(1) {
            let inner = pool.inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("lagic-matmul-{i}"))
                .spawn(move || work(&inner))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Threads that run a job (workers plus the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Call `task(c)` for every `c` in `0..chunks`, spread over the pool's
    /// threads, or all on this thread if another job is running.
    pub fn try_run(&self, chunks: usize, task: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || chunks < 2 {
            return (0..chunks).for_each(task);
        }
        match self.busy.try_lock() {
            Ok(_guard) => self.run_locked(chunks, task),
            Err(TryLockError::Poisoned(e)) => {
                let _guard = e.into_inner();
                self.run_locked(chunks, task)
            }
            Err(TryLockError::WouldBlock) => (0..chunks).for_each(task),
        }
    }

    fn run_locked(&self, chunks: usize, task: &(dyn Fn(usize) + Sync)) {
        let inner = &*self.inner;
        // Odd epoch: nobody may start on the old job any more.
        inner.epoch.fetch_add(1, SeqCst);
        let mut waited = 0u32;
        while inner.in_flight.load(SeqCst) != 0 {
            pause(&mut waited);
        }
        // SAFETY: no worker is in flight and the epoch is odd, so none will
        // read the job until it is published below. The lifetime is erased;
        // the module doc explains why no call outlives this function.
        unsafe {
            let task: *const Task<'_> = task;
            *inner.job.get() = Job {
                task: std::mem::transmute::<*const Task<'_>, *const Task<'static>>(task),
                chunks,
            };
        }
        inner.next.store(0, SeqCst);
        inner.done.store(0, SeqCst);
        inner.epoch.fetch_add(1, SeqCst);
        if inner.sleepers.load(SeqCst) > 0 {
            let _bell = inner.bell.lock().unwrap_or_else(|e| e.into_inner());
            inner.wake.notify_all();
        }
        // A panicking chunk still counts as done, so that the wait below ends;
        // the panic then continues on this thread.
        let mut panic = None;
        loop {
            let c = inner.next.fetch_add(1, SeqCst);
            if c >= chunks {
                break;
            }
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(c))) {
                panic.get_or_insert(p);
            }
            inner.done.fetch_add(1, SeqCst);
        }
        let mut waited = 0u32;
        while inner.done.load(SeqCst) < chunks {
            pause(&mut waited);
        }
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        if inner.worker_panicked.swap(false, SeqCst) {
            panic!("a matrix-product chunk panicked on a worker thread");
        }
    }
}

/// Wait a little for another thread: spin first (chunks take microseconds),
/// then yield, so that a worker the OS preempted mid-chunk on a busy
/// machine gets the core back sooner.
fn pause(waited: &mut u32) {
    *waited += 1;
    if *waited < 4096 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn work(inner: &Inner) {
    let mut seen = 0usize;
    loop {
        // Wait for a published epoch we have not worked on.
        let mut spun = Instant::now();
        let epoch = loop {
            if inner.stop.load(SeqCst) {
                return;
            }
            let e = inner.epoch.load(SeqCst);
            if e.is_multiple_of(2) && e != seen {
                break e;
            }
            if spun.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            inner.sleepers.fetch_add(1, SeqCst);
            let bell = inner.bell.lock().unwrap_or_else(|e| e.into_inner());
            let e = inner.epoch.load(SeqCst);
            if e == seen && !inner.stop.load(SeqCst) {
                drop(
                    inner
                        .wake
                        .wait_timeout(bell, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner()),
                );
            } else {
                drop(bell);
            }
            inner.sleepers.fetch_sub(1, SeqCst);
            spun = Instant::now();
        };
        seen = epoch;
        inner.in_flight.fetch_add(1, SeqCst);
        if inner.epoch.load(SeqCst) == epoch {
            // SAFETY: registered in flight under an unchanged even epoch: the
            // job is published and will not be rewritten until we leave.
            let (task, chunks) = unsafe {
                let job = &*inner.job.get();
                (job.task, job.chunks)
            };
            loop {
                let c = inner.next.fetch_add(1, SeqCst);
                if c >= chunks {
                    break;
                }
                // SAFETY: c < chunks, so `run_locked` is still waiting for
                // this chunk and the task is alive.
                let task = unsafe { &*task };
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(c))).is_err() {
                    inner.worker_panicked.store(true, SeqCst);
                }
                inner.done.fetch_add(1, SeqCst);
            }
        }
        inner.in_flight.fetch_sub(1, SeqCst);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.stop.store(true, SeqCst);
        {
            let _bell = self.inner.bell.lock().unwrap_or_else(|e| e.into_inner());
            self.inner.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once_across_many_jobs() {
        for threads in [1, 2, 3, 4] {
            let pool = Pool::new(threads).unwrap();
            for round in 0..2000 {
                let chunks = 1 + round % 37;
                let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                pool.try_run(chunks, &|c| {
                    hits[c].fetch_add(1, SeqCst);
                });
                assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "round {round}");
            }
            // After the workers have gone to sleep, a job still runs.
            std::thread::sleep(Duration::from_millis(5));
            let sum = AtomicUsize::new(0);
            pool.try_run(10, &|c| {
                sum.fetch_add(c, SeqCst);
            });
            assert_eq!(sum.load(SeqCst), 45);
        }
    }

    #[test]
    fn concurrent_callers_all_complete() {
        let pool = Pool::new(2).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        let sum = AtomicUsize::new(0);
                        pool.try_run(8, &|c| {
                            sum.fetch_add(c + 1, SeqCst);
                        });
                        assert_eq!(sum.load(SeqCst), 36);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller() {
        let pool = Pool::new(2).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.try_run(4, &|c| assert!(c != 1, "chunk 1 fails"));
        }));
        assert!(r.is_err());
        let sum = AtomicUsize::new(0);
        pool.try_run(4, &|c| {
            sum.fetch_add(c, SeqCst);
        });
        assert_eq!(sum.load(SeqCst), 6);
    }
}
