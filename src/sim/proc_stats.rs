//! What benchmarks read of a process in /proc (CPU seconds, memory), and percentiles of what they
//! measured.

/// (utime, stime) of a process in seconds.
pub fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0) / 100.0; // USER_HZ
    (field(11), field(12))
}

pub fn cpu_seconds(pid: u32) -> f64 {
    let (u, s) = cpu_split(pid);
    u + s
}

pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The parent pid of a process (0 when it is gone).
fn parent(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    after.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `pid` and every process below it (a browser's renderer, GPU and utility processes).
pub fn tree(pid: u32) -> Vec<u32> {
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let parents: Vec<(u32, u32)> = all.iter().map(|&p| (p, parent(p))).collect();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// CPU seconds of `pid` and the processes below it now.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    tree(pid).into_iter().map(cpu_seconds).sum()
}

/// The whole machine's CPU time from `/proc/stat`, in ticks: what a virtual machine's host took
/// away (`steal`) is how much of a slow phase is the host's doing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineTimes {
    /// Every tick: user, nice, system, idle, iowait, irq, softirq, steal.
    pub total: u64,
    /// Ticks the hypervisor ran something else while this machine wanted to run.
    pub steal: u64,
    /// Ticks not idle and not stolen: this machine's own work.
    pub busy: u64,
}

impl MachineTimes {
    pub fn now() -> MachineTimes {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        MachineTimes::parse(stat.lines().next().unwrap_or(""))
    }

    /// The aggregate `cpu` line of `/proc/stat`.
    fn parse(line: &str) -> MachineTimes {
        let mut words = line.split_whitespace();
        if words.next() != Some("cpu") {
            return MachineTimes::default();
        }
        let f: Vec<u64> = words.take(8).map(|w| w.parse().unwrap_or(0)).collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        let total: u64 = f.iter().sum();
        let (idle, iowait, steal) = (at(3), at(4), at(7));
        MachineTimes { total, steal, busy: total - idle - iowait - steal }
    }

    /// Percent of the machine's time since `earlier` that was stolen, and that was busy.
    pub fn since(&self, earlier: &MachineTimes) -> (f64, f64) {
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        let pct = |now: u64, then: u64| now.saturating_sub(then) as f64 / total * 100.0;
        (pct(self.steal, earlier.steal), pct(self.busy, earlier.busy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_process_is_in_its_parents_tree() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let t = tree(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(t[0], std::process::id());
        assert!(t.contains(&child.id()), "{t:?}");
    }

    #[test]
    fn the_machine_line_is_read_field_by_field() {
        // /proc/stat's aggregate line: user nice system idle iowait irq softirq steal guest guest_nice
        let t = MachineTimes::parse("cpu  100 5 40 800 10 3 2 40 0 0");
        assert_eq!(t, MachineTimes { total: 1000, steal: 40, busy: 150 });
        let later = MachineTimes::parse("cpu  200 5 90 1300 10 3 2 140 0 0");
        assert_eq!(later.since(&t), (100.0 / 750.0 * 100.0, 150.0 / 750.0 * 100.0));
        assert_eq!(MachineTimes::parse("cpu0 1 2 3"), MachineTimes::default());
        let now = MachineTimes::now();
        assert!(now.total > 0 && now.steal + now.busy <= now.total, "{now:?}");
    }
}
