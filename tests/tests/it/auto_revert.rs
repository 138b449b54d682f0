//! Auto-revert against moto, in process: Department B opens RDP to the world (and SSH from the
//! office) on Department A's group; with auto-revert on, the handler removes the RDP rule and
//! nothing else, and says how to put it back; in shadow mode it only says what it would have
//! done; a trusted pipeline's change and a group that opts out are never touched.
//!
//! Who made the change comes from the actor feed: the CloudTrail event of the call actually made
//! in moto, given to the handler before AWS Config's notification, as EventBridge delivers it.

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::operation::RequestId;
use aws_sdk_ec2::types::{IpPermission, IpRange};
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_synth::cloudtrail::{self, Call, Identity};
use sgwatch_synth::{self as synth, Capture};
use sgwatch_tests::emulator::{Moto, SentEmail, ACCOUNT, REGION};
use sgwatch_tests::fixture::{self, open, open_to_the_world, security_group, SENDER, TABLE};

const OWNER: &str = "dept-a@corp.example";
const DEPT_B: &str = "arn:aws:iam::123456789012:user/dept-b-admin";
const PIPELINE: &str = "arn:aws:iam::123456789012:user/deploy-bot";
const TRUSTED: &str = "arn:aws:iam::123456789012:user/deploy-*";

struct World {
    moto: Moto,
    ec2: aws_sdk_ec2::Client,
    settings: Settings,
    services: Services,
    group: String,
}

async fn world(mode: &str, group_tags: &[(&str, &str)]) -> World {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    fixture::idempotency_table(&config, TABLE).await;
    let settings = fixture::settings(&[
        ("SGWATCH_AUTO_REVERT", mode),
        ("SGWATCH_TRUSTED_PRINCIPALS", TRUSTED),
        ("SGWATCH_EARLY_WARNING", "off"),
    ]);
    let services = Services::new(&config, &settings);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let mut tags = vec![("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)];
    tags.extend_from_slice(group_tags);
    let group = security_group(&ec2, "dept-a-web", "Department A's web servers", &tags)
        .await
        .unwrap();
    open(&ec2, &group, 80).await.unwrap();
    World {
        moto,
        ec2,
        settings,
        services,
        group,
    }
}

/// SSH from the office's range.
fn office_ssh() -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(IpRange::builder().cidr_ip("203.0.113.0/24").build())
        .build()
}

impl World {
    /// `who` opens RDP to the world and SSH from the office in one call; the handler gets the
    /// call's CloudTrail event (the actor feed), then AWS Config's notification of the change.
    async fn opened_by(&self, who: &str, id: &str) {
        let before = synth::describe(&self.ec2, &self.group).await.unwrap();
        let at = DateTime::from(SystemTime::now());
        let permissions = [open_to_the_world(3389), office_ssh()];
        let out = self
            .ec2
            .authorize_security_group_ingress()
            .group_id(&self.group)
            .set_ip_permissions(Some(permissions.to_vec()))
            .send()
            .await
            .unwrap();
        let call = Call {
            event_name: "AuthorizeSecurityGroupIngress".into(),
            request_parameters: cloudtrail::authorize_ingress_parameters(&self.group, &permissions),
            response_elements: json!({"_return": true}),
            request_id: out.request_id().unwrap_or("moto").to_owned(),
            region: REGION.into(),
            time: at,
        };
        let identity = Identity {
            arn: who.into(),
            account: ACCOUNT.into(),
            source_ip: "203.0.113.7".into(),
            user_agent: "aws-cli/2.15.30".into(),
        };
        let feed = cloudtrail::api_call_event(&call, &identity).unwrap();
        handle(&feed, &self.settings, &self.services).await.unwrap();
        let after = synth::describe(&self.ec2, &self.group).await.unwrap();
        self.notify(&before, &after, id).await;
    }

    /// AWS Config's notification of the change from `before` to `after`, to the handler.
    async fn notify(&self, before: &Value, after: &Value, id: &str) {
        let capture = Capture {
            account: ACCOUNT.into(),
            region: REGION.into(),
            time: DateTime::from(SystemTime::now() + Duration::from_secs(2)),
        };
        let item = synth::item_change(Some(before), Some(after), &capture).unwrap();
        handle(&fixture::sns(&item, id), &self.settings, &self.services)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }

    /// The group's ingress rules now, as `tcp/PORT from CIDR`, sorted.
    async fn ingress(&self) -> Vec<String> {
        let now = synth::describe(&self.ec2, &self.group).await.unwrap();
        let mut rules = Vec::new();
        for p in now["ipPermissions"].as_array().into_iter().flatten() {
            for r in p["ipv4Ranges"].as_array().into_iter().flatten() {
                rules.push(format!(
                    "{}/{} from {}",
                    p["ipProtocol"].as_str().unwrap_or_default(),
                    p["fromPort"],
                    r["cidrIp"].as_str().unwrap_or_default()
                ));
            }
        }
        rules.sort();
        rules
    }

    async fn owner_mail(&self) -> Vec<SentEmail> {
        self.moto
            .ses_messages()
            .await
            .into_iter()
            .filter(|m| m.destinations == [OWNER])
            .collect()
    }
}

const ALL_THREE: [&str; 3] = [
    "tcp/22 from 203.0.113.0/24",
    "tcp/3389 from 0.0.0.0/0",
    "tcp/80 from 0.0.0.0/0",
];

#[tokio::test]
async fn on_reverts_the_rdp_rule_the_change_added_and_nothing_else() {
    let w = world("on", &[]).await;
    w.opened_by(DEPT_B, "config-rdp").await;
    assert_eq!(
        w.ingress().await,
        ["tcp/22 from 203.0.113.0/24", "tcp/80 from 0.0.0.0/0"]
    );
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let text = mail[0].text.as_deref().unwrap();
    assert!(
        text.contains("ingress tcp/3389 from 0.0.0.0/0 was reverted by sgwatch at ") && text.contains(&format!(
            "to restore it: aws ec2 authorize-security-group-ingress --region {REGION} --group-id {} --ip-permissions 'IpProtocol=tcp,FromPort=3389,ToPort=3389,IpRanges=[{{CidrIp=0.0.0.0/0}}]'",
            w.group
        )),
        "{text}"
    );
    // The rule is gone: no command or link to remove it.
    assert!(!text.contains("revoke-security-group-ingress"), "{text}");

    // AWS Config then reports the revert itself: told at INFO, as sgwatch's doing.
    let before: Value = {
        let mut v = synth::describe(&w.ec2, &w.group).await.unwrap();
        // The state Config last recorded held RDP; the revert removed it.
        v["ipPermissions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389,
                "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"], "ipv6Ranges": [],
                "prefixListIds": [], "userIdGroupPairs": []}));
        v
    };
    let after = synth::describe(&w.ec2, &w.group).await.unwrap();
    w.notify(&before, &after, "config-revert").await;
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 2, "{mail:#?}");
    let subject = mail[1].subject.as_deref().unwrap();
    assert!(subject.starts_with("[sgwatch INFO]"), "{subject}");
    assert!(mail[1]
        .text
        .as_deref()
        .unwrap()
        .contains("ingress tcp/3389 from 0.0.0.0/0 was reverted automatically by sgwatch at "));
}

#[tokio::test]
async fn shadow_reverts_nothing_and_says_what_it_would_have_done() {
    let w = world("shadow", &[]).await;
    w.opened_by(DEPT_B, "config-rdp").await;
    assert_eq!(w.ingress().await, ALL_THREE);
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let text = mail[0].text.as_deref().unwrap();
    assert!(
        text.contains(
            "sgwatch would have reverted ingress tcp/3389 from 0.0.0.0/0 (auto-revert in shadow mode)"
        ),
        "{text}"
    );
    assert!(!text.contains("tcp/22 from 203.0.113.0/24 (auto-revert"));
}

#[tokio::test]
async fn a_trusted_pipelines_change_is_never_reverted_and_the_alert_says_why() {
    let w = world("on", &[]).await;
    w.opened_by(PIPELINE, "config-pipeline").await;
    assert_eq!(w.ingress().await, ALL_THREE);
    let mail = w.owner_mail().await;
    let text = mail[0].text.as_deref().unwrap();
    assert!(
        text.contains(&format!(
            "not reverted: ingress tcp/3389 from 0.0.0.0/0 (made by a trusted principal (pattern {TRUSTED}))"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_group_tagged_to_opt_out_is_never_touched() {
    let w = world("on", &[("sgwatch:auto-revert", "no")]).await;
    w.opened_by(DEPT_B, "config-rdp").await;
    assert_eq!(w.ingress().await, ALL_THREE);
    let text = w.owner_mail().await[0].text.clone().unwrap();
    assert!(
        text.contains("not reverted: ingress tcp/3389 from 0.0.0.0/0 (the group is tagged sgwatch:auto-revert=no)"),
        "{text}"
    );
}

/// With early warning on, the revert happens when CloudTrail's event arrives, seconds after
/// the call: the early warning says so, and AWS Config's notification adds nothing by email.
#[tokio::test]
async fn with_early_warning_the_rule_is_reverted_seconds_after_the_call() {
    let mut w = world("on", &[]).await;
    w.settings = fixture::settings(&[
        ("SGWATCH_AUTO_REVERT", "on"),
        ("SGWATCH_TRUSTED_PRINCIPALS", TRUSTED),
        ("SGWATCH_EARLY_WARNING", "critical"),
    ]);
    w.opened_by(DEPT_B, "config-rdp").await;
    assert_eq!(
        w.ingress().await,
        ["tcp/22 from 203.0.113.0/24", "tcp/80 from 0.0.0.0/0"]
    );
    let mail = w.owner_mail().await;
    let warning = mail
        .iter()
        .find(|m| {
            m.text
                .as_deref()
                .unwrap_or_default()
                .contains("Early warning")
        })
        .unwrap_or_else(|| panic!("no early warning: {mail:#?}"));
    assert!(warning
        .text
        .as_deref()
        .unwrap()
        .contains("ingress tcp/3389 from 0.0.0.0/0 was reverted by sgwatch at "));
}
