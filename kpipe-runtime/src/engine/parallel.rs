//! Work spread over the machine's cores on scoped threads: the parts of a transform batch
//! (`delivery/transform.rs`) and the groups of a gzip object (`compress.rs`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The machine's cores (at least 1).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` of each input, in the inputs' order, worked out by up to `threads` threads: this one
/// and scoped ones, each taking the next input nobody has taken yet. A thread slowed down
/// (another busy thread on its core) takes fewer inputs, so all of them finish at about the
/// same time. A panic on another thread is resumed here: `f` is kpipe's code (user code runs
/// under catch_unwind), so it is a bug, and stops the caller as any other does.
pub(crate) fn map_on_threads<I: Send, R: Send>(
    inputs: Vec<I>,
    threads: usize,
    f: impl Fn(I) -> R + Sync,
) -> Vec<R> {
    let n = inputs.len();
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return inputs.into_iter().map(f).collect();
    }
    let inputs: Vec<Mutex<Option<I>>> = inputs.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = inputs.get(i) else {
                return done;
            };
            let input = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .expect("parallel: each input is taken once");
            done.push((i, f(input)));
        }
    };
    let work = &work;
    let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mine = work();
        for (i, r) in others
            .into_iter()
            .flat_map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .chain(mine)
        {
            results[i] = Some(r);
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("parallel: each input is worked out"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_is_worked_out_once_and_answers_keep_their_order() {
        for threads in [1, 2, 3, 8] {
            let calls = AtomicUsize::new(0);
            let out = map_on_threads((0..100).collect(), threads, |i: u32| {
                calls.fetch_add(1, Ordering::Relaxed);
                i * 2
            });
            assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
            assert_eq!(calls.into_inner(), 100);
        }
        assert!(map_on_threads(Vec::<u32>::new(), 4, |i| i).is_empty());
    }
}
