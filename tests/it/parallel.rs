//! Cells of a long matrix test run a few at a time: each cell has its own peers and database
//! and mostly waits on child processes, so running them in series only made the suite slower.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `cell` on every item, `threads` at a time, each thread on its own current-thread
/// runtime; the results come back in the order of `items`. A panic in a cell fails the test
/// (after the other threads finish their current cell).
pub fn in_parallel<T, R, F, Fut>(items: &[T], threads: usize, cell: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Fut + Sync,
    Fut: Future<Output = R>,
{
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = rt.block_on(cell(item));
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every cell ran"))
        .collect()
}
