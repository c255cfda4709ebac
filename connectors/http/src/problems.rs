//! The problems a task is working around, reported to its status as one line.
//!
//! A task polls several symbols or entities; some may fail (a bad symbol, an outage) while
//! the others keep flowing. The task stays RUNNING and its status shows every current
//! problem, e.g. `symbol 'XXXX': Alpha Vantage refused it: Invalid API call...`. A problem
//! disappears from the status once the thing it names works again.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_sdk::SourceTaskContext;

/// The subject of a long wait for the request budget.
pub const BUDGET_SUBJECT: &str = "request budget";

/// Current problems by subject, and what was last reported.
#[derive(Debug, Default)]
pub struct ProblemBoard {
    problems: BTreeMap<String, String>,
    reported: Option<String>,
    ctx: Option<Arc<SourceTaskContext>>,
}

impl ProblemBoard {
    /// A board that reports to `ctx`'s status.
    pub fn new(ctx: Arc<SourceTaskContext>) -> Self {
        Self {
            ctx: Some(ctx),
            ..Self::default()
        }
    }

    /// Records that `subject` has `problem`, logging it when it is new or changed.
    pub fn set(&mut self, subject: &str, problem: String) {
        if self.problems.get(subject) != Some(&problem) {
            tracing::warn!(subject, problem = %problem, "problem");
            self.problems.insert(subject.to_string(), problem);
        }
    }

    /// Records that `subject` works again.
    pub fn clear(&mut self, subject: &str) {
        if self.problems.remove(subject).is_some() {
            tracing::info!(subject, "recovered");
        }
    }

    /// The problem of `subject`, if any.
    pub fn get(&self, subject: &str) -> Option<&str> {
        self.problems.get(subject).map(String::as_str)
    }

    /// The status line: every problem, `; `-separated, or `None`.
    pub fn summary(&self) -> Option<String> {
        if self.problems.is_empty() {
            return None;
        }
        Some(
            self.problems
                .iter()
                .map(|(subject, problem)| format!("{subject}: {problem}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// Sends the status line to the task's status if it changed since the last call.
    pub fn publish(&mut self) {
        let summary = self.summary();
        if summary != self.reported {
            if let Some(ctx) = &self.ctx {
                ctx.report_problem(summary.clone());
            }
            self.reported = summary;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{OffsetSnapshot, TaskStatusReporter};
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Option<String>>>);

    impl TaskStatusReporter for Recorder {
        fn report_problem(&self, problem: Option<String>) {
            self.0.lock().unwrap().push(problem);
        }
    }

    #[test]
    fn only_changes_are_reported() {
        let recorder = Arc::new(Recorder::default());
        let ctx = SourceTaskContext::new(
            "c",
            0,
            Default::default(),
            Arc::new(OffsetSnapshot::default()),
            recorder.clone(),
        );
        let mut board = ProblemBoard::new(Arc::new(ctx));
        board.publish();
        board.set("symbol 'X'", "refused".into());
        board.publish();
        board.publish();
        board.set("rate limit", "slow down".into());
        board.publish();
        board.clear("symbol 'X'");
        board.clear("rate limit");
        board.publish();
        assert_eq!(
            *recorder.0.lock().unwrap(),
            vec![
                Some("symbol 'X': refused".to_string()),
                Some("rate limit: slow down; symbol 'X': refused".to_string()),
                None,
            ]
        );
    }
}
