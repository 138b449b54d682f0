//! Interruptions: `sgwatch install` killed (SIGKILL) at several points, then run again, converges
//! to the state of an uninterrupted install; teardown after an interrupted install removes
//! everything it had made.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sgwatch_tests::cli::text;
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture::{self, scratch, SENDER};
use sgwatch_tests::inventory::Inventory;

/// Where install is killed: as the call it names is sent.
const MARKERS: [&str; 3] = [
    "WRITE PutObject /sgwatch-artifacts-123456789012-us-east-1/handler/",
    "DescribeStackEvents",
    "PutConfigurationRecorder",
];

fn command(endpoint: &str, args: &[&str], log: &Path) -> Command {
    let mut c = crate::sgwatch_at(endpoint);
    c.args(args).env("SGWATCH_CALL_LOG", log);
    c
}

fn run(endpoint: &str, args: &[&str], dir: &Path) -> Output {
    command(endpoint, args, &dir.join("calls-run.log"))
        .output()
        .unwrap()
}

/// Starts install and kills it as soon as its call log shows `marker`. Returns whether the kill
/// came before install finished on its own.
fn install_killed_at(endpoint: &str, zip: &str, dir: &Path, marker: &str) -> bool {
    let log = dir.join(format!("calls-{}.log", marker.replace(['/', ' '], "_")));
    let _ = std::fs::remove_file(&log);
    let mut child = command(
        endpoint,
        &["install", "--sender", SENDER, "--handler-zip", zip],
        &log,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!("install finished ({status}) before {marker:?} was seen");
            return false;
        }
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(marker)
        {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        assert!(Instant::now() < deadline, "{marker:?} never appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The kinds of resources present and how many of each: what an install leaves, independent of
/// generated names.
async fn kinds(moto: &Moto) -> BTreeMap<&'static str, usize> {
    let config = moto.sdk_config(None).await;
    Inventory::take(&config).await.unwrap().counts()
}

#[tokio::test]
async fn install_killed_anywhere_and_run_again_converges() {
    // The reference: an uninterrupted install in an account of its own.
    let reference = Moto::start();
    let dir = scratch("interrupt");
    let zip = fixture::fake_handler_zip(&dir);
    let zip = zip.to_str().unwrap();
    let config = reference.sdk_config(None).await;
    reference.verify_sender(&config, SENDER).await;
    assert!(run(
        &reference.endpoint,
        &["install", "--sender", SENDER, "--handler-zip", zip],
        &dir
    )
    .status
    .success());
    let expected = kinds(&reference).await;

    // After the upload, while the stack is being followed, and as Config is being set up.
    // (Not in the middle of the ExecuteChangeSet request itself: moto builds the whole stack inside
    // that request, and a client killed mid-request can leave moto's stack half made yet
    // CREATE_COMPLETE, which AWS, finishing the change set server-side, never does.)
    for marker in MARKERS {
        let moto = Moto::start();
        let config = moto.sdk_config(None).await;
        moto.verify_sender(&config, SENDER).await;
        let killed = install_killed_at(&moto.endpoint, zip, &dir, marker);
        assert!(
            killed,
            "install finished before {marker:?}: it was never interrupted there"
        );
        let mut runs = 0;
        loop {
            runs += 1;
            let o = run(
                &moto.endpoint,
                &["install", "--sender", SENDER, "--handler-zip", zip],
                &dir,
            );
            if o.status.success() {
                break;
            }
            assert!(
                runs < 3,
                "after a kill at {marker:?}, install still fails: {}",
                text(&o)
            );
        }
        let again = run(
            &moto.endpoint,
            &["install", "--sender", SENDER, "--handler-zip", zip],
            &dir,
        );
        assert!(
            String::from_utf8_lossy(&again.stdout).contains("no changes"),
            "{marker:?}: {}",
            text(&again)
        );
        let status = run(&moto.endpoint, &["status"], &dir);
        assert!(status.status.success(), "{marker:?}: {}", text(&status));
        let lines = String::from_utf8_lossy(&status.stdout).into_owned();
        for check in ["stack", "config recorder exists", "records security groups"] {
            assert!(
                lines
                    .lines()
                    .any(|l| l.trim_start().starts_with("ok") && l.contains(&format!(" {check} "))),
                "{marker:?}: no ok line for {check}: {lines}"
            );
        }
        assert!(!lines.contains("FAIL"), "{marker:?}: {lines}");
        assert_eq!(kinds(&moto).await, expected, "killed at {marker:?}");
        eprintln!("killed at {marker:?}; converged in {runs} run(s)");
    }
}

#[tokio::test]
async fn teardown_after_an_interrupted_install_removes_everything() {
    let dir = scratch("interrupt-td");
    let zip = fixture::fake_handler_zip(&dir);
    let zip = zip.to_str().unwrap();
    for marker in &MARKERS[1..] {
        let moto = Moto::start();
        let config = moto.sdk_config(None).await;
        moto.verify_sender(&config, SENDER).await;
        let before = kinds(&moto).await;
        assert!(
            install_killed_at(&moto.endpoint, zip, &dir, marker),
            "install finished before {marker:?}: it was never interrupted there"
        );
        let o = run(&moto.endpoint, &["teardown", "--yes"], &dir);
        assert!(o.status.success(), "{marker:?}: {}", text(&o));
        assert_eq!(
            kinds(&moto).await,
            before,
            "teardown after a kill at {marker:?}: {}",
            text(&o)
        );
    }
}
