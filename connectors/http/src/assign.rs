//! Splitting a list of symbols or entities, and a request budget, over tasks.

use sluice_sdk::Props;

/// How many tasks to run for `items` items, `max_tasks` allowed and per-task budgets that
/// must stay at least 1 request (`0` budgets mean unlimited and do not constrain).
pub fn task_count(items: usize, max_tasks: usize, budgets: &[u32]) -> usize {
    let mut count = items.min(max_tasks).max(1);
    for &budget in budgets {
        if budget > 0 {
            count = count.min(budget as usize);
        }
    }
    count.max(1)
}

/// `items` dealt round-robin into `groups` groups, order kept within each group.
pub fn round_robin(items: &[String], groups: usize) -> Vec<Vec<String>> {
    let groups = groups.max(1);
    let mut out = vec![Vec::new(); groups];
    for (i, item) in items.iter().enumerate() {
        out[i % groups].push(item.clone());
    }
    out
}

/// Task `index`'s share of `total` split over `tasks` (the first tasks get the remainder);
/// `0` (unlimited) stays `0`.
pub fn share(total: u32, tasks: usize, index: usize) -> u32 {
    if total == 0 {
        return 0;
    }
    let tasks = u32::try_from(tasks.max(1)).unwrap_or(u32::MAX);
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    total / tasks + u32::from(index < total % tasks)
}

/// `requests.per.minute`: a connector's request budget per minute, shared by its tasks.
pub const REQUESTS_PER_MINUTE: &str = "requests.per.minute";
/// `requests.per.day`: a connector's request budget per day, shared by its tasks.
pub const REQUESTS_PER_DAY: &str = "requests.per.day";

/// The task configs of a connector polling `items` within `budgets` (requests per minute,
/// per day): `items` dealt over at most `max_tasks` tasks, each task's share written under
/// `list_key` (comma-separated) and its share of each budget under the budget options.
pub fn split_over_tasks(
    props: &Props,
    list_key: &str,
    items: &[String],
    max_tasks: usize,
    (per_minute, per_day): (u32, u32),
) -> Vec<Props> {
    let count = task_count(items.len(), max_tasks, &[per_minute, per_day]);
    round_robin(items, count)
        .into_iter()
        .enumerate()
        .map(|(i, share_of_items)| {
            let mut task = props.clone();
            task.insert(list_key.into(), share_of_items.join(","));
            task.insert(
                REQUESTS_PER_MINUTE.into(),
                share(per_minute, count, i).to_string(),
            );
            task.insert(
                REQUESTS_PER_DAY.into(),
                share(per_day, count, i).to_string(),
            );
            task
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_split_without_losing_requests() {
        assert_eq!(
            (0..3).map(|i| share(5, 3, i)).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(share(0, 3, 1), 0);
        assert_eq!((0..4).map(|i| share(25, 4, i)).sum::<u32>(), 25);
    }

    #[test]
    fn tasks_never_outnumber_items_or_budget() {
        assert_eq!(task_count(10, 10, &[5, 25]), 5);
        assert_eq!(task_count(3, 10, &[5, 25]), 3);
        assert_eq!(task_count(3, 1, &[5, 25]), 1);
        assert_eq!(task_count(3, 10, &[0, 0]), 3);
        assert_eq!(task_count(0, 10, &[]), 1);
    }

    #[test]
    fn items_are_dealt_round_robin() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(
            round_robin(&items, 2),
            vec![vec!["a", "c", "e"], vec!["b", "d"]]
        );
    }
}
