//! `pbi-bridge jobs`: the schedules `serve` keeps, the job list, and clear refusals, on a data directory of its own.

use crate::datadir::{Fresh, run, while_running};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_shows_the_schedules_serve_keeps_and_refuses_what_it_cannot_find() {
    tokio::task::spawn_blocking(|| {
        let fresh = Fresh::new();
        let added =
            run(&fresh.data(), &["users", "add", "--username", "admin", "--admin", "--password-stdin"], Some("a long enough password\n"));
        assert_eq!(added.code, Some(0), "{}", added.stderr);
        let none = run(&fresh.data(), &["jobs", "schedules", "--json"], None);
        assert_eq!((none.code, none.stdout.trim()), (Some(0), "[]"), "no schedule before serve has run: {}", none.stderr);

        // serve starts the engine, which makes sure of its schedules.
        while_running(&fresh.data(), &["serve", "--addr", "127.0.0.1:0"], |first| {
            assert!(first.starts_with("pbi-bridge server listening on "), "{first}")
        });
        let listed = run(&fresh.data(), &["jobs", "schedules", "--json"], None);
        assert_eq!(listed.code, Some(0), "{}", listed.stderr);
        let schedules: serde_json::Value = serde_json::from_str(&listed.stdout).expect("JSON");
        let kinds: Vec<(&str, &str)> = schedules
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| (s["kind"].as_str().unwrap_or_default(), s["recurrence"].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("connections.keepalive", "every 3600s"),
                ("connections.report", "every 86400s"),
                ("housekeeping.purge", "every 3600s"),
                ("registrations.key_check", "every 86400s")
            ],
            "{schedules}"
        );
        assert!(schedules[0]["nextRunAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{schedules}");
        let table = run(&fresh.data(), &["jobs", "schedules"], None);
        assert!(
            table.stdout.starts_with("KIND") && table.stdout.contains("housekeeping.purge") && table.stdout.contains("never"),
            "{}",
            table.stdout
        );
        // Nothing has been due yet: each schedule's first occurrence waits in the queue, scheduled.
        let jobs = run(&fresh.data(), &["jobs", "list", "--json"], None);
        assert_eq!(jobs.code, Some(0), "{}", jobs.stderr);
        let jobs: Value = serde_json::from_str(&jobs.stdout).expect("JSON");
        let mut waiting: Vec<(&str, &str)> =
            jobs.as_array().expect("a list").iter().filter_map(|j| Some((j["kind"].as_str()?, j["state"].as_str()?))).collect();
        waiting.sort();
        assert_eq!(
            waiting,
            [
                ("connections.keepalive", "scheduled"),
                ("connections.report", "scheduled"),
                ("housekeeping.purge", "scheduled"),
                ("registrations.key_check", "scheduled")
            ],
            "{jobs}"
        );

        for args in [&["jobs", "show", "424242"][..], &["jobs", "retry", "424242"][..], &["jobs", "cancel", "424242"][..]] {
            let missing = run(&fresh.data(), args, None);
            assert_eq!(missing.code, Some(2), "{args:?}: {}", missing.stderr);
            assert!(missing.stderr.contains("there is no job 424242; `pbi-bridge jobs list` shows them"), "{args:?}: {}", missing.stderr);
        }
        let bad = run(&fresh.data(), &["jobs", "list", "--state", "sleeping"], None);
        assert_eq!(bad.code, Some(2), "{}", bad.stderr);
        assert!(bad.stderr.contains("'sleeping' is not a job state; use one of available, scheduled"), "{}", bad.stderr);
    })
    .await
    .expect("task");
}
