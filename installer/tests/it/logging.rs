//! `-v` and `RUST_LOG` show sgwatch's and the AWS SDK's debug lines on standard error; without
//! them, none.

use std::process::Output;

fn status(extra: &[&str], rust_log: Option<&str>) -> Output {
    // Nothing listens on port 9: the call fails fast, after the SDK has logged its attempt.
    let mut c = crate::sgwatch_at("http://127.0.0.1:9");
    c.arg("status")
        .args(extra)
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("RUST_LOG");
    if let Some(spec) = rust_log {
        c.env("RUST_LOG", spec);
    }
    c.output().unwrap()
}

#[test]
fn verbose_shows_our_and_the_sdks_debug_lines() {
    let quiet = status(&[], None);
    let err = String::from_utf8_lossy(&quiet.stderr);
    assert!(!err.contains("DEBUG"), "{err}");

    let verbose = status(&["-v"], None);
    let err = String::from_utf8_lossy(&verbose.stderr);
    assert!(err.contains("DEBUG sgwatch::aws"), "{err}");
    assert!(err.contains("DEBUG aws_"), "{err}");

    let ours = status(&[], Some("sgwatch=debug"));
    let err = String::from_utf8_lossy(&ours.stderr);
    assert!(err.contains("DEBUG sgwatch::aws"), "{err}");
    assert!(!err.contains("DEBUG aws_"), "{err}");
}
