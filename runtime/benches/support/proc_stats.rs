//! Process figures the runtime benches report, read from `/proc` (Linux).

/// CPU seconds (user + system) used so far by the processes called `comm`, only our children
/// when `children_only`.
pub(crate) fn cpu_seconds(comm: &str, children_only: bool) -> f64 {
    let me = std::process::id().to_string();
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ppid ... utime(14) stime(15)
            let (head, rest) = stat.rsplit_once(") ")?;
            let name = head.split_once(" (")?.1;
            let fields: Vec<&str> = rest.split(' ').collect();
            (name == comm && (!children_only || fields.get(1) == Some(&me.as_str()))).then(|| {
                let utime: f64 = fields[11].parse().unwrap_or(0.0);
                let stime: f64 = fields[12].parse().unwrap_or(0.0);
                (utime + stime) / ticks
            })
        })
        .sum()
}
