//! The artifacts bucket's name is predictable: one created first by another account must be
//! refused, never written to (ExpectedBucketOwner on every call; moto honours it through a bridge
//! in `scripts/moto.py`).

use sgwatch_tests::emulator::{role_arn, Moto, ACCOUNT};
use sgwatch_tests::fixture::{fake_handler_zip, scratch, SENDER};

const SQUATTER: &str = "210987654321";

#[tokio::test]
async fn install_refuses_an_artifacts_bucket_another_account_owns() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let bucket = format!("sgwatch-artifacts-{ACCOUNT}-us-east-1");
    let theirs = moto.sdk_config(Some(&role_arn(SQUATTER, "squatter"))).await;
    let their_s3 = sgwatch_handler::aws::s3_client(&theirs);
    their_s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();

    let dir = scratch("owner");
    let zip = fake_handler_zip(&dir);
    let out = crate::sgwatch_at(&moto.endpoint)
        .args(["install", "--sender", SENDER, "--handler-zip"])
        .arg(&zip)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "install used another account's bucket:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "s3://{bucket} is not a bucket of account {ACCOUNT}"
        )) && stderr.contains("another account owns it"),
        "{stderr}"
    );
    let listed = their_s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty(), "written into: {listed:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
