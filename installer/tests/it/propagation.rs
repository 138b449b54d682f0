//! IAM propagation: on AWS, Config refuses the role the stack has just made
//! (`InvalidRoleException`, `InsufficientDeliveryPolicyException`) until IAM has propagated it.
//! `scripts/faultproxy.py` answers the first Put calls that way, and install must wait it out.

use sgwatch_tests::emulator::{FaultProxy, Moto};
use sgwatch_tests::fixture::{fake_handler_zip, scratch, SENDER};

/// The fault proxy answering the first calls of some operations with an AWS error.
fn answering(target: &str, answers: &[&str]) -> FaultProxy {
    let mut args = vec!["--rate", "0"];
    for a in answers {
        args.extend(["--answer", a]);
    }
    FaultProxy::start(target, &args)
}

#[tokio::test]
async fn install_waits_for_iam_to_propagate_the_config_role() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("propagation");
    let zip = fake_handler_zip(&dir);
    let proxy = answering(
        &moto.endpoint,
        &[
            "InvalidRoleException:2:PutConfigurationRecorder",
            "InsufficientDeliveryPolicyException:2:PutDeliveryChannel",
        ],
    );
    let out = crate::sgwatch_at(&proxy.endpoint)
        .args(["install", "--sender", SENDER, "--handler-zip"])
        .arg(&zip)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "install failed:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    for code in [
        "InvalidRoleException",
        "InsufficientDeliveryPolicyException",
    ] {
        assert!(
            stderr.contains("waiting")
                && stderr.contains("IAM to propagate")
                && stderr.contains(code),
            "no progress line for {code}:\n{stderr}"
        );
    }
    let config_client = aws_sdk_config::Client::new(&config);
    let recorders = config_client
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap();
    assert_eq!(
        recorders
            .configuration_recorders()
            .first()
            .and_then(|r| r.name()),
        Some("sgwatch")
    );
    let channels = config_client
        .describe_delivery_channels()
        .send()
        .await
        .unwrap();
    assert_eq!(channels.delivery_channels().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
