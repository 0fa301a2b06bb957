//! Work spread over the machine's cores on scoped threads: the parts of a transform batch
//! (`delivery/transform.rs`) and the groups of a gzip object (`compress.rs`).

/// The machine's cores (at least 1).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` of each input, in the inputs' order: the first on this thread, each other one on a
/// scoped thread of its own (none for a single input). A panic on another thread is resumed
/// here: `f` is kpipe's code (user code runs under catch_unwind), so it is a bug, and stops
/// the caller as any other does.
pub(crate) fn map_on_threads<I: Send, R: Send>(
    inputs: Vec<I>,
    f: impl Fn(I) -> R + Sync,
) -> Vec<R> {
    let mut inputs = inputs.into_iter();
    let Some(first) = inputs.next() else {
        return Vec::new();
    };
    let f = &f;
    std::thread::scope(|scope| {
        let others: Vec<_> = inputs.map(|input| scope.spawn(move || f(input))).collect();
        let mut all = Vec::with_capacity(others.len() + 1);
        all.push(f(first));
        for other in others {
            all.push(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        all
    })
}
