//! A small persistent thread pool for the kernels.
//!
//! Work is handed out in chunks that threads take in turn (dynamic scheduling). The caller
//! works too, and a job is over as soon as every chunk is done: a worker the OS has not
//! scheduled yet simply misses the job instead of stalling it — important on a small, shared
//! machine, where a decode step's hundreds of small matrix-vector products cannot afford a
//! thread wake-up each. Workers spin briefly between jobs, then sleep.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Body = *const (dyn Fn(Range<usize>) + Sync);

struct Task {
    body: Option<Body>,
    n: usize,
    chunk: usize,
    n_chunks: usize,
}

struct Shared {
    task: UnsafeCell<Task>,
    /// `generation << 1 | open`; odd while a job accepts helpers.
    state: AtomicU64,
    next: AtomicUsize,
    done: AtomicUsize,
    /// Workers currently inside (or about to enter) a job.
    active: AtomicUsize,
    sleepers: AtomicUsize,
    shutdown: std::sync::atomic::AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

// SAFETY: `task` is written only by the submitter while the state is closed and no worker is
// active (see `submit`); workers read it only between a successful open-state check (with
// `active` raised) and lowering `active`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

impl Shared {
    /// Takes and runs chunks until none are left.
    fn work(&self) {
        // SAFETY: called only while the job is open and this thread is counted (see above).
        let task = unsafe { &*self.task.get() };
        let Some(body) = task.body else { return };
        // SAFETY: the submitter keeps the closure alive until `active` is zero.
        let f: &(dyn Fn(Range<usize>) + Sync) = unsafe { &*body };
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= task.n_chunks {
                break;
            }
            f(c * task.chunk..((c + 1) * task.chunk).min(task.n));
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// A fixed set of worker threads executing data-parallel loops.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
    submit: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadPool({} threads)", self.n_threads)
    }
}

const SPIN: Duration = Duration::from_micros(200);

fn wait_until(cond: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !cond() {
        spins += 1;
        if spins < 4096 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl ThreadPool {
    /// A pool of `n_threads` threads in all (the calling thread counts as one); 0 means the
    /// number of available cores.
    pub fn new(n_threads: usize) -> ThreadPool {
        let n = if n_threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            n_threads
        };
        let shared = Arc::new(Shared {
            task: UnsafeCell::new(Task {
                body: None,
                n: 0,
                chunk: 1,
                n_chunks: 0,
            }),
            state: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            shutdown: std::sync::atomic::AtomicBool::new(false),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        });
        let workers = (1..n)
            .map(|idx| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("engram-kernel-{idx}"))
                    .spawn(move || worker(s))
                    .expect("spawning a kernel thread")
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            n_threads: n,
            submit: Mutex::new(()),
        }
    }

    /// Number of threads (including the caller).
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Splits `0..n` into chunks of `chunk` items that the threads take in turn, running
    /// `f(range)` for each, and returns when all are done. With one thread `f` gets the
    /// whole range in one call.
    pub fn for_chunks(&self, n: usize, chunk: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        let chunk = chunk.max(1);
        let n_chunks = n.div_ceil(chunk);
        if self.n_threads == 1 || n_chunks <= 1 {
            if n > 0 {
                f(0..n);
            }
            return;
        }
        let _guard = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        let closed = s.state.load(Ordering::SeqCst);
        debug_assert_eq!(closed & 1, 0);
        // SAFETY: the state is closed and `active` is zero (established at the end of the
        // previous job), so no worker reads `task` now. The lifetime is erased because we
        // do not return before every user of the closure has left (`active == 0`).
        unsafe {
            let body: Body = std::mem::transmute::<&(dyn Fn(Range<usize>) + Sync), Body>(f);
            *s.task.get() = Task {
                body: Some(body),
                n,
                chunk,
                n_chunks,
            };
        }
        s.next.store(0, Ordering::Relaxed);
        s.done.store(0, Ordering::Relaxed);
        let open = (closed + 2) | 1;
        s.state.store(open, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.cv.notify_all();
        }
        s.work();
        wait_until(|| s.done.load(Ordering::Acquire) == n_chunks);
        s.state.store(open + 1, Ordering::SeqCst); // close
        wait_until(|| s.active.load(Ordering::SeqCst) == 0);
    }

    /// Splits `0..n` into one contiguous range per thread and runs `f(range)` in parallel.
    pub fn for_ranges(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        self.for_chunks(n, n.div_ceil(self.n_threads), f);
    }
}

fn worker(s: Arc<Shared>) {
    let mut last_open = 0u64;
    loop {
        let start = Instant::now();
        let mut i = 0u32;
        let open = loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let st = s.state.load(Ordering::Acquire);
            if st & 1 == 1 && st != last_open {
                break st;
            }
            std::hint::spin_loop();
            i += 1;
            if i.is_multiple_of(128) && start.elapsed() > SPIN {
                let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                loop {
                    let st = s.state.load(Ordering::SeqCst);
                    if (st & 1 == 1 && st != last_open) || s.shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    g = s.cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        };
        last_open = open;
        s.active.fetch_add(1, Ordering::SeqCst);
        if s.state.load(Ordering::SeqCst) == open {
            s.work();
        }
        s.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _l = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.cv.notify_all();
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
    fn chunks_cover_everything_once() {
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            for (n, c) in [(0usize, 4usize), (1, 4), (7, 2), (1000, 64), (1000, 1)] {
                for _ in 0..200 {
                    let sum = AtomicUsize::new(0);
                    pool.for_chunks(n, c, &|r| {
                        assert!(threads == 1 || r.len() <= c);
                        sum.fetch_add(r.map(|x| x + 1).sum::<usize>(), Ordering::Relaxed);
                    });
                    assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) / 2);
                }
            }
        }
    }

    #[test]
    fn ranges_cover_everything_once() {
        let pool = ThreadPool::new(2);
        for n in [0usize, 1, 2, 7, 1000] {
            let sum = AtomicUsize::new(0);
            pool.for_ranges(n, &|r| {
                sum.fetch_add(r.map(|x| x + 1).sum::<usize>(), Ordering::Relaxed);
            });
            assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) / 2);
        }
    }

    #[test]
    fn slow_chunks_are_all_waited_for() {
        let pool = ThreadPool::new(2);
        let sum = AtomicUsize::new(0);
        pool.for_chunks(8, 1, &|r| {
            std::thread::sleep(Duration::from_millis(2));
            sum.fetch_add(r.len(), Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 8);
    }
}
