//! What a test starts from: the JSON fixtures in `tests/fixtures/` and the events Lambda wraps
//! them in, the handler's settings, scratch directories and handler zips, and the resources an
//! account already holds before sgwatch comes (security groups, the ledger's table, a queue, an
//! organisation's own AWS Config recorder and channel).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;
use aws_sdk_config::types::{ConfigurationRecorder, DeliveryChannel, RecordingGroup};
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use serde_json::{json, Value};
use sgwatch_handler::settings::Settings;

use crate::emulator::REGION;
use crate::repo_root;

/// The SES sender the tests install and run the handler with.
pub const SENDER: &str = "alerts@example.com";
/// The delivery ledger's table, for tests that make it themselves.
pub const TABLE: &str = "sgwatch-idempotency";

/// The JSON fixture `tests/fixtures/NAME`.
pub fn json(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The SNS event Lambda receives for one notification: `message` as the JSON string SNS delivers,
/// under SNS message id `id`.
pub fn sns(message: &Value, id: &str) -> Value {
    json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": id, "Message": message.to_string()}}]})
}

/// The handler's settings from exactly the environment `vars`; of two with one name, the later.
pub fn settings_from(vars: &[(&str, &str)]) -> Settings {
    Settings::from_lookup(|k| {
        vars.iter()
            .rev()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// The settings most handler tests run with: [`SENDER`], the actor lookup off (moto has no
/// CloudTrail `LookupEvents`) and the ledger in [`TABLE`]; then `extra`.
pub fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![
        ("SGWATCH_SENDER", SENDER),
        ("SGWATCH_LOOKUP_ACTOR", "false"),
        ("SGWATCH_IDEMPOTENCY_TABLE", TABLE),
    ];
    vars.extend_from_slice(extra);
    settings_from(&vars)
}

/// A directory of this test process's own for `name`'s files, made if need be.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sgwatch-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating scratch directory {}: {e}", dir.display()));
    dir
}

/// A stand-in handler zip in `dir`: an executable `bootstrap` script. moto's Lambda cannot run
/// code, so for installer tests only the zip's shape matters.
pub fn fake_handler_zip(dir: &Path) -> PathBuf {
    let path = dir.join("bootstrap.zip");
    let file =
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let mut z = zip::ZipWriter::new(file);
    z.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .expect("a zip entry");
    z.write_all(b"#!/bin/sh\n").expect("the zip entry's bytes");
    z.finish().expect("a finished zip");
    path
}

/// Creates the idempotency table with the stack's key (`pk`, a string), for the handler's claims.
pub async fn idempotency_table(config: &SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating table {name}: {e:?}"));
}

/// Creates SQS queue `name` (a failure queue for the handler to park in); its URL.
pub async fn queue(config: &SdkConfig, name: &str) -> String {
    aws_sdk_sqs::Client::new(config)
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {name}: {e:?}"))
        .queue_url()
        .expect("a queue URL")
        .to_owned()
}

/// The messages waiting in the queue at `url` (ten at most), each body read as JSON.
pub async fn queued(config: &SdkConfig, url: &str) -> Vec<Value> {
    let got = aws_sdk_sqs::Client::new(config)
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap_or_else(|e| panic!("receiving from {url}: {e:?}"));
    got.messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

/// Creates security group `name` tagged with `tags` (none: untagged); its id.
pub async fn security_group(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    description: &str,
    tags: &[(&str, &str)],
) -> Result<String> {
    let mut request = ec2
        .create_security_group()
        .group_name(name)
        .description(description);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
        for (key, value) in tags {
            spec = spec.tags(Tag::builder().key(*key).value(*value).build());
        }
        request = request.tag_specifications(spec.build());
    }
    let out = request
        .send()
        .await
        .with_context(|| format!("creating security group {name} in {REGION}"))?;
    out.group_id()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("CreateSecurityGroup {name} returned no group id"))
}

/// A network interface in a default subnet that uses `group`, with an Elastic IP address
/// associated: what a public instance would put behind the group. Returns the interface and its
/// public address.
pub async fn public_interface(ec2: &aws_sdk_ec2::Client, group: &str) -> Result<(String, String)> {
    let subnets = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("default-for-az")
                .values("true")
                .build(),
        )
        .send()
        .await
        .context("listing the default subnets")?;
    let subnet = subnets
        .subnets()
        .first()
        .and_then(|s| s.subnet_id())
        .ok_or_else(|| anyhow!("no default subnet"))?
        .to_owned();
    let eni = ec2
        .create_network_interface()
        .subnet_id(&subnet)
        .groups(group)
        .send()
        .await
        .context("creating a network interface")?
        .network_interface()
        .and_then(|n| n.network_interface_id())
        .ok_or_else(|| anyhow!("CreateNetworkInterface returned no id"))?
        .to_owned();
    let address = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .context("allocating an Elastic IP address")?;
    let (allocation, ip) = (
        address.allocation_id().unwrap_or_default().to_owned(),
        address.public_ip().unwrap_or_default().to_owned(),
    );
    ec2.associate_address()
        .allocation_id(&allocation)
        .network_interface_id(&eni)
        .send()
        .await
        .context("associating the Elastic IP address")?;
    Ok((eni, ip))
}

/// tcp/`port` from anywhere.
pub fn open_to_the_world(port: i32) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

/// Allows tcp/`port` from anywhere into `group`; returns EC2's request id.
pub async fn open(ec2: &aws_sdk_ec2::Client, group: &str, port: i32) -> Result<String> {
    use aws_sdk_ec2::operation::RequestId;
    let out = ec2
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(open_to_the_world(port))
        .send()
        .await
        .with_context(|| format!("allowing tcp/{port} from 0.0.0.0/0 into {group}"))?;
    Ok(out.request_id().unwrap_or_default().to_owned())
}

/// A multi-region trail that is logging in `account`, as most accounts (and every AWS Control
/// Tower one) have; its bucket is the trail's own. Returns the trail's name.
pub async fn logging_trail(config: &SdkConfig, account: &str) -> Result<String> {
    let name = "org-trail";
    let bucket = format!("sgwatch-demo-trail-{account}");
    sgwatch_handler::aws::s3_client(config)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .with_context(|| format!("creating the trail's bucket {bucket}"))?;
    let ct = aws_sdk_cloudtrail::Client::new(config);
    ct.create_trail()
        .name(name)
        .s3_bucket_name(&bucket)
        .is_multi_region_trail(true)
        .send()
        .await
        .with_context(|| format!("creating trail {name}"))?;
    ct.start_logging()
        .name(name)
        .send()
        .await
        .with_context(|| format!("starting trail {name}"))?;
    Ok(name.to_owned())
}

/// An AWS Config recorder the account already has, as an organisation's baseline sets one up:
/// `name`, acting as `role_arn`, recording `recording`. Not started: that needs a channel
/// ([`delivery_channel`]).
pub async fn recorder(config: &SdkConfig, name: &str, role_arn: &str, recording: RecordingGroup) {
    aws_sdk_config::Client::new(config)
        .put_configuration_recorder()
        .configuration_recorder(
            ConfigurationRecorder::builder()
                .name(name)
                .role_arn(role_arn)
                .recording_group(recording)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("putting configuration recorder {name}: {e:?}"));
}

/// The delivery channel `name` of the account's recorder `recorder` (see [`recorder`]): its own
/// `bucket` (created here) and `topic`; then the recorder is started.
pub async fn delivery_channel(
    config: &SdkConfig,
    recorder: &str,
    name: &str,
    bucket: &str,
    topic: &str,
) {
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    // Outside us-east-1, S3 wants the bucket's region named.
    let location = (region != "us-east-1").then(|| {
        aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                region.as_str(),
            ))
            .build()
    });
    sgwatch_handler::aws::s3_client(config)
        .create_bucket()
        .bucket(bucket)
        .set_create_bucket_configuration(location)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e:?}"));
    let cfg = aws_sdk_config::Client::new(config);
    cfg.put_delivery_channel()
        .delivery_channel(
            DeliveryChannel::builder()
                .name(name)
                .s3_bucket_name(bucket)
                .sns_topic_arn(topic)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("putting delivery channel {name}: {e:?}"));
    cfg.start_configuration_recorder()
        .configuration_recorder_name(recorder)
        .send()
        .await
        .unwrap_or_else(|e| panic!("starting configuration recorder {recorder}: {e:?}"));
}

/// The event a Lambda function URL gives its function (payload format 2.0) for `method` on
/// `url`: the query string on a GET (as a mail scanner or a person opening the link sends it),
/// the form the confirmation page posts on a POST.
pub fn function_url_event(method: &str, url: &str) -> Value {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let host = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": query,
        "headers": {"host": host, "user-agent": "Mozilla/5.0"},
        "requestContext": {"http": {"method": method, "path": "/", "protocol": "HTTP/1.1",
            "sourceIp": "198.51.100.7", "userAgent": "Mozilla/5.0"}},
        "isBase64Encoded": false,
    });
    if method == "POST" {
        event["body"] = Value::String(query.to_owned());
        event["headers"]["content-type"] = "application/x-www-form-urlencoded".into();
    }
    event
}

/// The findings Security Hub holds. The SDK reads a finding's resource details (a struct of
/// some 30 KB, every resource type's) with deep frames: in a debug build that takes more than a
/// test thread's stack, so the read runs on a thread of its own with room for it.
pub async fn security_hub_findings(
    config: &SdkConfig,
) -> Vec<aws_sdk_securityhub::types::AwsSecurityFinding> {
    let client = aws_sdk_securityhub::Client::new(config);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let got = runtime.block_on(async { client.get_findings().send().await });
            let _ = tx.send(
                got.map(|o| o.findings().to_vec())
                    .map_err(|e| format!("{e:?}")),
            );
        })
        .unwrap();
    rx.await.unwrap().unwrap()
}
