//! `status` on the destinations' SSM parameters, against moto: a SecureString is ok, a missing
//! parameter fails naming it and the command that creates it, a plain String warns.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::ParameterType;
use sgwatch::cmd::status::Level;
use sgwatch_tests::emulator::Moto;

#[tokio::test]
async fn each_destination_parameter_is_checked_by_name() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    for (name, kind) in [
        ("/sgwatch/secops-slack", ParameterType::SecureString),
        ("/sgwatch/plain", ParameterType::String),
    ] {
        ssm.put_parameter()
            .name(name)
            .value("https://hooks.slack.com/services/T/B/x")
            .r#type(kind)
            .send()
            .await
            .unwrap();
    }
    let params = BTreeMap::from([(
        "DestinationParameters".to_owned(),
        "/sgwatch/secops-slack,/sgwatch/missing,/sgwatch/plain".to_owned(),
    )]);
    let checks = sgwatch::deploy::destinations::checks(&config, &params).await;
    let seen: Vec<(Level, &str)> = checks
        .iter()
        .map(|c| (c.level, c.detail.as_str()))
        .collect();
    assert_eq!(checks.len(), 3, "{seen:?}");
    assert_eq!(seen[0], (Level::Ok, "/sgwatch/secops-slack (SecureString)"));
    assert_eq!(seen[1].0, Level::Fail);
    assert!(
        seen[1].1.starts_with("/sgwatch/missing does not exist")
            && seen[1]
                .1
                .contains("aws ssm put-parameter --type SecureString --name /sgwatch/missing"),
        "{}",
        seen[1].1
    );
    assert_eq!(seen[2].0, Level::Warn);
    assert!(seen[2].1.contains("not a SecureString"), "{}", seen[2].1);
    // A stack without destinations adds no check.
    assert!(
        sgwatch::deploy::destinations::checks(&config, &BTreeMap::new())
            .await
            .is_empty()
    );
}
