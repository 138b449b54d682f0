//! Faults: install and teardown converge through 10 % injected AWS errors (throttling, 500/503,
//! dropped connections before and after the request is served), and the handler under SES
//! throttling loses no notification of a batch and sends none twice. The faults come from
//! `scripts/faultproxy.py`, between the code under test and moto server.

use std::process::Output;

use serde_json::json;
use sgwatch_tests::cli::{calls, text};
use sgwatch_tests::emulator::{handler_loader, FaultProxy, Moto};
use sgwatch_tests::fixture::{self, idempotency_table, scratch, SENDER};

/// The fault proxy between sgwatch and moto, injecting `faults` into a share `rate` of calls.
fn proxy(target: &str, rate: f64, seed: u64, faults: &str) -> FaultProxy {
    let (rate, seed) = (rate.to_string(), seed.to_string());
    FaultProxy::start(
        target,
        &["--rate", &rate, "--seed", &seed, "--faults", faults],
    )
}

fn sgwatch(endpoint: &str, args: &[&str]) -> Output {
    crate::sgwatch_at(endpoint).args(args).output().unwrap()
}

/// Runs a command until it succeeds, as a user would re-run it; returns how many runs it took.
fn converge(endpoint: &str, args: &[&str]) -> usize {
    for attempt in 1..=6 {
        let out = sgwatch(endpoint, args);
        if out.status.success() {
            return attempt;
        }
        eprintln!(
            "{args:?} run {attempt} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!("{args:?} did not converge in 6 runs");
}

#[tokio::test]
async fn install_and_teardown_converge_through_ten_percent_faults() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("faults");
    let zip = fixture::fake_handler_zip(&dir);
    let zip = zip.to_str().unwrap();
    let install = ["install", "--sender", SENDER, "--handler-zip", zip];
    for seed in [1, 2, 3] {
        let proxy = proxy(
            &moto.endpoint,
            0.1,
            seed,
            "503,500,throttle,drop-before,drop-after",
        );
        let runs = converge(&proxy.endpoint, &install);
        // Converged: the same state as an uninterrupted install, so a fault-free run has nothing to do.
        let out = sgwatch(&moto.endpoint, &install);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("no changes"),
            "seed {seed}: {}",
            text(&out)
        );
        let status = sgwatch(&moto.endpoint, &["status"]);
        assert!(
            status.status.success(),
            "seed {seed}: {}",
            String::from_utf8_lossy(&status.stdout)
        );
        let teardown_runs = converge(&proxy.endpoint, &["teardown", "--yes"]);
        let out = sgwatch(&moto.endpoint, &["teardown", "--yes"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("nothing to remove"),
            "seed {seed}"
        );
        let stats = proxy.stats();
        eprintln!(
            "seed {seed}: install in {runs} run(s), teardown in {teardown_runs}; proxy {stats}"
        );
        let injected: u64 = ["503", "500", "throttle", "drop-before", "drop-after"]
            .iter()
            .map(|k| stats[k].as_u64().unwrap())
            .sum();
        assert!(injected > 0, "seed {seed} injected nothing: {stats}");
    }
}

#[tokio::test]
async fn the_handler_under_ses_throttling_loses_nothing_and_sends_nothing_twice() {
    use sgwatch_handler::process::{handle, Services};
    let moto = Moto::start();
    let direct = moto.sdk_config(None).await;
    moto.verify_sender(&direct, SENDER).await;
    idempotency_table(&direct, "idem").await;
    // 40 % of requests fail (throttled, 500, 503, dropped before reaching SES): answers are never lost.
    let proxy = proxy(&moto.endpoint, 0.4, 11, "503,500,throttle,drop-before");
    let faulty = handler_loader(&proxy.endpoint).load().await;
    let settings = fixture::settings(&[("SGWATCH_IDEMPOTENCY_TABLE", "idem")]);
    let services = Services::new(&faulty, &settings);
    // A batch of five notifications: five groups.
    let records: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            let mut m = fixture::json("rdp-opened.json");
            m["configurationItem"]["resourceId"] = json!(format!("sg-{i:017x}"));
            m["configurationItem"]["resourceName"] = json!(format!("group-{i}"));
            json!({"Sns": {"MessageId": format!("m-{i}"), "Message": m.to_string()}})
        })
        .collect();
    let event = json!({ "Records": records });
    // Lambda retries a failed invocation with the same event; here, until it succeeds.
    let mut invocations = 0;
    loop {
        invocations += 1;
        match handle(&event, &settings, &services).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    invocations < 20,
                    "still failing after {invocations} invocations: {e}"
                );
            }
        }
    }
    let mail = moto.ses_messages().await;
    let mut subjects: Vec<String> = mail.iter().map(|m| m.subject.clone().unwrap()).collect();
    subjects.sort();
    let expected: Vec<String> = (0..5)
        .map(|i| format!("[sgwatch CRITICAL] sg-{i:017x} (group-{i}) 123456789012/us-east-1: +ingress tcp/3389 from 0.0.0.0/0"))
        .collect();
    assert_eq!(
        subjects,
        expected,
        "each notification exactly once ({invocations} invocations; proxy {})",
        proxy.stats()
    );
    eprintln!(
        "5 notifications delivered exactly once in {invocations} invocation(s); proxy {}",
        proxy.stats()
    );
}

/// The call log (`SGWATCH_CALL_LOG`) names each call once, by the SDK's operation name, and each
/// retry of it apart, so "how many calls" is not inflated by faults.
#[tokio::test]
async fn the_call_log_counts_retries_apart_from_calls() {
    let moto = Moto::start();
    let proxy = proxy(&moto.endpoint, 0.5, 7, "503");
    let log = std::env::temp_dir().join(format!("sgwatch-retries-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let out = crate::sgwatch_at(&proxy.endpoint)
        .arg("status")
        .env("SGWATCH_CALL_LOG", &log)
        .output()
        .unwrap();
    let lines = calls(&log);
    let retries: Vec<&String> = lines.iter().filter(|l| l.starts_with("RETRY ")).collect();
    assert!(
        !retries.is_empty(),
        "half the calls fail once at least, yet no retry was logged: {lines:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for retry in &retries {
        let operation = retry.split_whitespace().nth(1).unwrap();
        assert!(
            lines.iter().any(|l| l == &format!("READ {operation}")
                || l.starts_with(&format!("READ {operation} "))),
            "{retry} retries a call the log does not show: {lines:?}"
        );
    }
    assert!(
        lines.contains(&"READ GetCallerIdentity".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("READ ") || l.starts_with("RETRY ")),
        "status only reads: {lines:?}"
    );
}
