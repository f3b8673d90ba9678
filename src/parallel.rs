//! Ed25519 work spread over the cores: the gateway signs, the hub verifies, each message on its
//! own, so a large batch is cut into one part per core and the results come back in order.

/// Cores to use (at most four). Asked once: the answer reads cgroup files, which costs more than
/// signing a message.
pub fn cores() -> usize {
    static CORES: std::sync::LazyLock<usize> =
        std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4));
    *CORES
}

/// `f(i, item)` for every item, in order; on several cores when there are at least
/// `min_parallel` items (below that, a thread costs more than it saves).
pub fn map_in_order<T: Send, R: Send>(
    items: &mut [T],
    min_parallel: usize,
    f: impl Fn(usize, &mut T) -> R + Sync,
) -> Vec<R> {
    let cores = cores();
    if items.len() < min_parallel.max(2) || cores < 2 {
        return items.iter_mut().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let per = items.len().div_ceil(cores);
    let f = &f;
    let part = move |c: usize, chunk: &mut [T]| -> Vec<R> {
        chunk.iter_mut().enumerate().map(|(i, t)| f(c * per + i, t)).collect()
    };
    std::thread::scope(|scope| {
        let mut chunks = items.chunks_mut(per);
        // The first part on the calling thread (one thread fewer to start and to wait for).
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks.enumerate().map(|(c, chunk)| scope.spawn(move || part(c + 1, chunk))).collect();
        let mut out: Vec<R> = part(0, first);
        // A part that panicked is a bug in `f`: the panic goes on rather than misaligning results.
        for p in others {
            out.extend(p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_with_their_index_whatever_the_split() {
        for n in [0usize, 1, 5, 63, 64, 65, 1000, 1001] {
            let mut items: Vec<u64> = (0..n as u64).map(|i| i * 7).collect();
            let out = map_in_order(&mut items, 64, |i, x| {
                *x += 1;
                (i, *x)
            });
            let want: Vec<(usize, u64)> = (0..n).map(|i| (i, i as u64 * 7 + 1)).collect();
            assert_eq!(out, want, "n = {n}");
            assert!(items.iter().enumerate().all(|(i, x)| *x == i as u64 * 7 + 1));
        }
    }
}
