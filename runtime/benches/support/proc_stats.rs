//! Process figures the runtime benches report, read from `/proc` (Linux). Each bench that
//! includes this file uses some of them (`#[allow(dead_code)]` where it is declared).

/// CPU seconds (user + system) used so far by the processes called `comm`, only our children
/// when `children_only`.
pub(crate) fn cpu_seconds(comm: &str, children_only: bool) -> f64 {
    let me = std::process::id().to_string();
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
            (name == comm && (!children_only || fields.get(1) == Some(&me.as_str())))
                .then(|| fields_cpu_seconds(&fields))
        })
        .sum()
}

/// CPU seconds (user + system, all threads) used so far by process `pid`.
pub(crate) fn pid_cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(") ")?;
            Some(fields_cpu_seconds(&rest.split(' ').collect::<Vec<_>>()))
        })
        .unwrap_or(0.0)
}

/// utime + stime of a `stat` line's fields after `(comm)`, in seconds (USER_HZ is 100).
fn fields_cpu_seconds(fields: &[&str]) -> f64 {
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
