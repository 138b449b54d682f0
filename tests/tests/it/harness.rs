//! The harness itself: moto starts, SDK clients reach it, and the mail it accepts can be read back.

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use sgwatch_tests::emulator::{role_arn, Moto, SentEmail, ACCOUNT, REGION};
use sgwatch_tests::fixture::{self, SENDER};

async fn send(config: &aws_config::SdkConfig, subject: &str, to: &[&str], cc: &[&str]) {
    let text = |data: &str| Content::builder().data(data).build().unwrap();
    let destination = Destination::builder()
        .set_to_addresses(Some(to.iter().map(|s| s.to_string()).collect()))
        .set_cc_addresses(Some(cc.iter().map(|s| s.to_string()).collect()))
        .build();
    let message = Message::builder()
        .subject(text(subject))
        .body(
            Body::builder()
                .text(text("a text part"))
                .html(text("<p>an HTML part</p>"))
                .build(),
        )
        .build();
    aws_sdk_sesv2::Client::new(config)
        .send_email()
        .from_email_address(SENDER)
        .destination(destination)
        .content(EmailContent::builder().simple(message).build())
        .send()
        .await
        .expect("SendEmail");
}

#[tokio::test]
async fn sent_email_can_be_read_back() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    assert!(moto.ses_messages().await.is_empty());

    moto.verify_sender(&config, SENDER).await;
    send(
        &config,
        "[sgwatch CRITICAL] a subject",
        &["dept-a@corp.example", "dept-b@corp.example"],
        &["secops@corp.example"],
    )
    .await;

    let messages = moto.ses_messages().await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let SentEmail {
        source,
        destinations,
        subject,
        text,
        html,
        region,
        account,
        ..
    } = messages[0].clone();
    assert_eq!(source, SENDER);
    assert_eq!(
        destinations,
        [
            "dept-a@corp.example",
            "dept-b@corp.example",
            "secops@corp.example"
        ]
    );
    assert_eq!(subject.as_deref(), Some("[sgwatch CRITICAL] a subject"));
    // moto itself keeps only the HTML part; moto.py keeps both.
    assert_eq!(text.as_deref(), Some("a text part"));
    assert_eq!(html.as_deref(), Some("<p>an HTML part</p>"));
    assert_eq!((region.as_str(), account.as_str()), (REGION, ACCOUNT));
}

#[tokio::test]
async fn unverified_sender_is_rejected() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    let err = aws_sdk_sesv2::Client::new(&config)
        .send_email()
        .from_email_address(SENDER)
        .destination(
            Destination::builder()
                .to_addresses("a@corp.example")
                .build(),
        )
        .content(
            EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(Content::builder().data("s").build().unwrap())
                        .body(
                            Body::builder()
                                .text(Content::builder().data("t").build().unwrap())
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("moto rejects mail from an identity that does not exist");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("MessageRejected")
    );
    assert!(moto.ses_messages().await.is_empty());
}

#[tokio::test]
async fn assumed_role_acts_in_its_account_and_region() {
    let moto = Moto::start();
    let other = "444455556666";
    let config = moto
        .sdk_config_in(
            "eu-west-1",
            Some(&role_arn(other, "OrganizationAccountAccessRole")),
        )
        .await;
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(identity.account(), Some(other));

    moto.verify_sender(&config, SENDER).await;
    send(&config, "from another account", &["a@corp.example"], &[]).await;
    let messages = moto
        .wait_for_ses_messages(1, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(
        (messages[0].account.as_str(), messages[0].region.as_str()),
        (other, "eu-west-1")
    );

    // The identity belongs to that account and region only.
    let home = moto.sdk_config(None).await;
    let identities = aws_sdk_sesv2::Client::new(&home)
        .list_email_identities()
        .send()
        .await
        .expect("ListEmailIdentities");
    assert!(identities.email_identities().is_empty());
}

/// moto's own `/moto-api/data.json` fails once a Lambda function exists; our route must not.
#[tokio::test]
async fn messages_survive_a_lambda_function() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    let role = aws_sdk_iam::Client::new(&config)
        .create_role()
        .role_name("sgwatch-handler")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .expect("CreateRole");
    // An empty zip archive: moto stores the code but never runs it.
    let empty_zip = [b"PK\x05\x06".as_slice(), &[0u8; 18]].concat();
    aws_sdk_lambda::Client::new(&config)
        .create_function()
        .function_name("sgwatch")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role.role().expect("role").arn())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(empty_zip.into())
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction");

    moto.verify_sender(&config, SENDER).await;
    send(&config, "after lambda", &["a@corp.example"], &[]).await;
    assert_eq!(moto.ses_messages().await.len(), 1);
}

#[test]
fn servers_started_together_get_their_own_ports() {
    let a = std::thread::spawn(Moto::start);
    let b = std::thread::spawn(Moto::start);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_ne!(a.endpoint, b.endpoint);
    assert!(
        a.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        a.endpoint
    );
}

#[test]
fn fixtures_load() {
    let message = fixture::json("rdp-opened.json");
    assert!(message.get("messageType").is_some(), "{message}");
}
