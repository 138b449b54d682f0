//! The owners act on an alert: Department A clicks **Revert** on the RDP rule Department B
//! opened, or **Keep** on a rule it means to keep.
//!
//! The handler and the `act` function run in-process against moto with the settings a stack
//! gives them; moto serves no function URL, so each click is the function URL's event (payload
//! 2.0) given to `act`, and its KMS does not honour `KeySpec` for keys made through
//! CloudFormation, so the test's HMAC key is made through the KMS API. Everything the tests
//! check is read back from EC2, the ledger table and SES.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{SecurityGroupRuleRequest, SecurityGroupRuleUpdate};
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use sgwatch_handler::act::{self, ActServices};
use sgwatch_handler::core::page::Page;
use sgwatch_handler::dedupe::epoch_secs;
use sgwatch_handler::link::{self, Grant};
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_synth::{self as synth, Capture};
use sgwatch_tests::emulator::{Moto, SentEmail, ACCOUNT, REGION};
use sgwatch_tests::fixture::{self, open, SENDER, TABLE};

const OWNER: &str = "team-a@corp.example";
const SECURITY: &str = "secops@corp.example";
const ACT_URL: &str = "https://act.example.test/";

/// An HMAC key for the links, made as the stack's would be.
async fn hmac_key(config: &SdkConfig) -> String {
    let out = aws_sdk_kms::Client::new(config)
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
        .description("sgwatch links")
        .send()
        .await
        .expect("an HMAC key");
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

struct World {
    moto: Moto,
    config: SdkConfig,
    ec2: aws_sdk_ec2::Client,
    settings: Settings,
    services: Services,
    act: ActServices,
    group: String,
}

async fn world() -> World {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    fixture::idempotency_table(&config, TABLE).await;
    let key = hmac_key(&config).await;
    let settings = fixture::settings(&[
        ("SGWATCH_FALLBACK_RECIPIENT", SECURITY),
        ("SGWATCH_ACT_URL", ACT_URL),
        ("SGWATCH_ACT_KEY", &key),
        ("SGWATCH_EARLY_WARNING", "off"),
    ]);
    let services = Services::new(&config, &settings);
    let act = ActServices::new(&config, TABLE);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let group = fixture::security_group(
        &ec2,
        "shared-http",
        "Department A's web servers",
        &[("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)],
    )
    .await
    .unwrap();
    open(&ec2, &group, 80).await.unwrap();
    World {
        moto,
        config,
        ec2,
        settings,
        services,
        act,
        group,
    }
}

impl World {
    /// Makes a change with `edit` and gives the handler its AWS Config notification.
    async fn change<F, Fut>(&self, id: &str, edit: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let before = synth::describe(&self.ec2, &self.group).await.unwrap();
        edit().await;
        let after = synth::describe(&self.ec2, &self.group).await.unwrap();
        let capture = Capture {
            account: ACCOUNT.into(),
            region: REGION.into(),
            time: DateTime::from(SystemTime::now()),
        };
        let item = synth::item_change(Some(&before), Some(&after), &capture).unwrap();
        handle(&fixture::sns(&item, id), &self.settings, &self.services)
            .await
            .unwrap_or_else(|e| panic!("the handler failed on {id}: {e}"));
    }

    /// The group's ingress rules now, as `tcp/PORT from CIDR`.
    async fn ingress(&self) -> Vec<String> {
        let out = self
            .ec2
            .describe_security_group_rules()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-id")
                    .values(&self.group)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut rules: Vec<String> = out
            .security_group_rules()
            .iter()
            .filter(|r| r.is_egress() == Some(false))
            .map(|r| {
                format!(
                    "{}/{} from {}",
                    r.ip_protocol().unwrap_or_default(),
                    r.from_port().unwrap_or_default(),
                    r.cidr_ipv4().unwrap_or_default()
                )
            })
            .collect();
        rules.sort();
        rules
    }

    /// The rule id of the ingress rule for tcp/`port`.
    async fn rule_id(&self, port: i32) -> String {
        let out = self
            .ec2
            .describe_security_group_rules()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-id")
                    .values(&self.group)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.security_group_rules()
            .iter()
            .find(|r| r.is_egress() == Some(false) && r.from_port() == Some(port))
            .and_then(|r| r.security_group_rule_id())
            .unwrap()
            .to_owned()
    }

    /// What the link `url` answers to `method` (a POST sends the page's form).
    async fn click(&self, method: &str, url: &str) -> Page {
        act::respond(
            &url_event(method, url),
            &self.settings,
            &self.act,
            SystemTime::now(),
        )
        .await
    }

    /// The items the ledger table holds whose key starts with `prefix`.
    async fn ledger(&self, prefix: &str) -> Vec<String> {
        let out = aws_sdk_dynamodb::Client::new(&self.config)
            .scan()
            .table_name(TABLE)
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .filter_map(|i| i.get("pk").and_then(|v| v.as_s().ok()).cloned())
            .filter(|k| k.starts_with(prefix))
            .collect()
    }
}

fn url_event(method: &str, url: &str) -> Value {
    fixture::function_url_event(method, url)
}

/// The `Revert this rule:` and `Keep it:` links of the email's text, in order.
fn links(mail: &SentEmail) -> (String, String) {
    let text = mail.text.as_deref().unwrap_or_default();
    let find = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` in the email:\n{text}"))
            .trim()
            .to_owned()
    };
    (find("Revert this rule:"), find("Keep it:"))
}

fn to(mail: &[SentEmail], who: &str) -> Vec<SentEmail> {
    mail.iter()
        .filter(|m| m.destinations.iter().any(|d| d == who))
        .cloned()
        .collect()
}

#[tokio::test]
async fn department_a_reverts_the_rdp_rule_in_one_click_and_nothing_else_changes() {
    let w = world().await;
    w.change("sns-rdp", || async {
        open(&w.ec2, &w.group, 3389).await.unwrap();
    })
    .await;
    let mail = w.moto.ses_messages().await;
    let alert = &to(&mail, OWNER)[0];
    let (revert, keep) = links(alert);
    assert!(
        revert.starts_with(&format!("{ACT_URL}?do=revert&t=1.")),
        "{revert}"
    );
    let html = alert.html.as_deref().unwrap();
    assert!(html.contains(">Revert this rule</a>") && html.contains(">Keep it</a>"));

    // A mail scanner opens every link, more than once: nothing changes.
    for (method, url) in [
        ("GET", &revert),
        ("HEAD", &revert),
        ("GET", &keep),
        ("GET", &revert),
    ] {
        let page = w.click(method, url).await;
        assert_eq!(page.status(), 200, "{method} {url}: {page:?}");
        assert!(matches!(page, Page::Confirm { .. }), "{page:?}");
    }
    assert_eq!(
        w.ingress().await,
        ["tcp/3389 from 0.0.0.0/0", "tcp/80 from 0.0.0.0/0"]
    );
    assert!(w.ledger("act/").await.is_empty());
    assert!(w.ledger("kept/").await.is_empty());
    let confirm = w.click("GET", &revert).await.html();
    assert!(confirm.contains("<form method=\"post\">"), "{confirm}");
    assert!(confirm.contains(&format!("holds it now as {}", w.rule_id(3389).await)));

    // Department A presses the button.
    let page = w.click("POST", &revert).await;
    assert!(matches!(page, Page::Reverted { .. }), "{page:?}");
    assert_eq!(w.ingress().await, ["tcp/80 from 0.0.0.0/0"]);

    // The link acted once: a second click, either link, says so and does nothing.
    for (method, url) in [("POST", &revert), ("GET", &revert), ("POST", &keep)] {
        let page = w.click(method, url).await;
        assert_eq!(page.status(), 409, "{page:?}");
        assert!(
            page.lines()[0].starts_with("It was used to revert at "),
            "{:?}",
            page.lines()
        );
    }
    assert!(w.ledger("kept/").await.is_empty());
    assert_eq!(w.ingress().await, ["tcp/80 from 0.0.0.0/0"]);
}

#[tokio::test]
async fn the_change_a_revert_causes_is_told_at_info_as_a_revert() {
    let w = world().await;
    w.change("sns-rdp", || async {
        open(&w.ec2, &w.group, 3389).await.unwrap();
    })
    .await;
    let (revert, _) = links(&to(&w.moto.ses_messages().await, OWNER)[0]);
    // The Config notification of the revert: the item before the click, and after it.
    let before = synth::describe(&w.ec2, &w.group).await.unwrap();
    assert!(matches!(
        w.click("POST", &revert).await,
        Page::Reverted { .. }
    ));
    let after = synth::describe(&w.ec2, &w.group).await.unwrap();
    let capture = Capture {
        account: ACCOUNT.into(),
        region: REGION.into(),
        time: DateTime::from(SystemTime::now()),
    };
    let item = synth::item_change(Some(&before), Some(&after), &capture).unwrap();
    handle(&fixture::sns(&item, "sns-revert"), &w.settings, &w.services)
        .await
        .unwrap();
    let owner = to(&w.moto.ses_messages().await, OWNER);
    assert_eq!(owner.len(), 2, "{owner:#?}");
    let told = &owner[1];
    let subject = told.subject.as_deref().unwrap();
    assert!(subject.starts_with("[sgwatch INFO]"), "{subject}");
    let text = told.text.as_deref().unwrap();
    assert!(
        text.contains("ingress tcp/3389 from 0.0.0.0/0 was reverted through sgwatch at ")
            && text.contains(&format!("by a link sent to {OWNER}")),
        "{text}"
    );
}

#[tokio::test]
async fn a_forged_altered_or_expired_link_is_refused_and_changes_nothing() {
    let w = world().await;
    w.change("sns-rdp", || async {
        open(&w.ec2, &w.group, 3389).await.unwrap();
    })
    .await;
    let (revert, _) = links(&to(&w.moto.ses_messages().await, OWNER)[0]);
    let token = revert.split("t=").nth(1).unwrap().to_owned();
    let (text, mac) = token.rsplit_once('.').unwrap();

    // Another MAC on the same claims.
    let mut forged_mac = mac.to_owned().into_bytes();
    forged_mac[3] = if forged_mac[3] == b'A' { b'B' } else { b'A' };
    let forged = format!(
        "{ACT_URL}?do=revert&t={text}.{}",
        String::from_utf8(forged_mac).unwrap()
    );
    // The same MAC on other claims: the HTTP rule instead of the RDP one.
    let claims = text.strip_prefix("1.").unwrap();
    let decoded = aws_smithy_types::base64::decode(
        claims.replace('-', "+").replace('_', "/") + &"=".repeat((4 - claims.len() % 4) % 4),
    )
    .unwrap();
    let mut grant: Value = serde_json::from_slice(&decoded).unwrap();
    grant["k"] = json!({"p": "tcp", "f": 80, "t": 80, "c": "0.0.0.0/0"});
    let altered_text = format!(
        "1.{}",
        sgwatch_handler::link::base64url(&serde_json::to_vec(&grant).unwrap())
    );
    let altered = format!("{ACT_URL}?do=revert&t={altered_text}.{mac}");
    for url in [&forged, &altered] {
        for method in ["GET", "POST"] {
            let page = w.click(method, url).await;
            assert_eq!(page.status(), 403, "{page:?}");
            assert_eq!(
                page.lines(),
                ["this is not a link sgwatch made (its signature does not match)"]
            );
        }
    }
    let garbage = w.click("POST", &format!("{ACT_URL}?do=revert&t=1.x")).await;
    assert_eq!(garbage.status(), 403);

    // A link the stack's own key signed, whose day is over.
    let mut grant: Grant = serde_json::from_value(grant).unwrap();
    grant.rule.from_port = Some(3389);
    grant.rule.to_port = Some(3389);
    grant.expires = epoch_secs(SystemTime::now() - Duration::from_secs(60));
    let signed = grant.signed_text();
    let mac = aws_sdk_kms::Client::new(&w.config)
        .generate_mac()
        .key_id(w.settings.act.key.as_deref().unwrap())
        .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
        .message(aws_sdk_kms::primitives::Blob::new(signed.as_bytes()))
        .send()
        .await
        .unwrap();
    let old = link::url(
        ACT_URL,
        link::Act::Revert,
        &link::token(&signed, mac.mac().unwrap().as_ref()),
    );
    for method in ["GET", "POST"] {
        let expired = w.click(method, &old).await;
        assert_eq!(expired.status(), 403, "{expired:?}");
        assert!(
            expired.lines()[0].starts_with("this link expired at "),
            "{expired:?}"
        );
    }

    assert_eq!(
        w.ingress().await,
        ["tcp/3389 from 0.0.0.0/0", "tcp/80 from 0.0.0.0/0"]
    );
    assert!(w.ledger("act/").await.is_empty());
}

#[tokio::test]
async fn a_rule_changed_between_the_alert_and_the_click_is_not_reverted() {
    let w = world().await;
    w.change("sns-rdp", || async {
        open(&w.ec2, &w.group, 3389).await.unwrap();
    })
    .await;
    let (revert, _) = links(&to(&w.moto.ses_messages().await, OWNER)[0]);
    // Someone narrows the rule in place: same rule id, the office's range only.
    let id = w.rule_id(3389).await;
    w.ec2
        .modify_security_group_rules()
        .group_id(&w.group)
        .security_group_rules(
            SecurityGroupRuleUpdate::builder()
                .security_group_rule_id(&id)
                .security_group_rule(
                    SecurityGroupRuleRequest::builder()
                        .ip_protocol("tcp")
                        .from_port(3389)
                        .to_port(3389)
                        .cidr_ipv4("10.0.0.0/8")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let page = w.click("POST", &revert).await;
    assert_eq!(page.status(), 409, "{page:?}");
    let lines = page.lines().join("\n");
    assert!(lines.contains("changed since the alert"), "{lines}");
    assert!(lines.contains("nothing was removed"), "{lines}");
    assert_eq!(
        w.ingress().await,
        ["tcp/3389 from 10.0.0.0/8", "tcp/80 from 0.0.0.0/0"]
    );
    assert!(w.ledger("act/").await.is_empty(), "the link is not used up");
}

#[tokio::test]
async fn a_kept_rule_is_told_once_to_the_security_contact_and_never_alerts_again() {
    let w = world().await;
    w.change("sns-ssh", || async {
        open(&w.ec2, &w.group, 22).await.unwrap();
    })
    .await;
    let (_, keep) = links(&to(&w.moto.ses_messages().await, OWNER)[0]);
    let page = w.click("POST", &keep).await;
    assert!(matches!(page, Page::Kept { .. }), "{page:?}");
    assert_eq!(w.ledger("kept/").await.len(), 1);
    let mail = w.moto.ses_messages().await;
    let kept: Vec<&SentEmail> = mail
        .iter()
        .filter(|m| {
            m.subject
                .as_deref()
                .is_some_and(|s| s.starts_with("[sgwatch] kept:"))
        })
        .collect();
    assert_eq!(kept.len(), 1, "{mail:#?}");
    assert_eq!(kept[0].destinations, [OWNER, SECURITY]);
    assert!(kept[0]
        .text
        .as_deref()
        .unwrap()
        .contains("No alert repeats for this rule until "));

    // The rule goes and comes back, critical as ever: no alert repeats for it.
    let sent = w.moto.ses_messages().await.len();
    w.change("sns-ssh-gone", || async {
        w.ec2
            .revoke_security_group_ingress()
            .group_id(&w.group)
            .ip_permissions(fixture::open_to_the_world(22))
            .send()
            .await
            .unwrap();
    })
    .await;
    let after_removal = w.moto.ses_messages().await.len();
    assert_eq!(
        after_removal,
        sent + 1,
        "the removal is told as any removal"
    );
    w.change("sns-ssh-again", || async {
        open(&w.ec2, &w.group, 22).await.unwrap();
    })
    .await;
    assert_eq!(
        w.moto.ses_messages().await.len(),
        after_removal,
        "kept: not told again"
    );

    // Gone again; then back with another rule in the same change: that one is told, alone.
    w.change("sns-ssh-gone-again", || async {
        w.ec2
            .revoke_security_group_ingress()
            .group_id(&w.group)
            .ip_permissions(fixture::open_to_the_world(22))
            .send()
            .await
            .unwrap();
    })
    .await;
    w.change("sns-ssh-and-rdp", || async {
        open(&w.ec2, &w.group, 22).await.unwrap();
        open(&w.ec2, &w.group, 3389).await.unwrap();
    })
    .await;
    let owner = to(&w.moto.ses_messages().await, OWNER);
    let last = owner.last().unwrap();
    let subject = last.subject.as_deref().unwrap();
    assert!(
        subject.contains("tcp/3389") && !subject.contains("tcp/22"),
        "{subject}"
    );
    let text = last.text.as_deref().unwrap();
    assert!(!text.contains("tcp/22"), "{text}");
}

/// `install --act-links on` deploys the act function from the handler's zip, behind a public
/// function URL, with an HMAC key and a role that may revoke only on groups that opt in; the
/// handler signs with that key and points at that URL. A custom opt-in tag is refused first.
#[tokio::test(flavor = "multi_thread")]
async fn install_with_act_links_deploys_act_its_url_its_key_and_a_narrow_role() {
    use sgwatch_tests::cli::{sgwatch, Programs};
    use sgwatch_tests::inventory::deployed_function_env;

    let programs = Programs::build_for("act-install");
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let zip = programs.handler_zip().unwrap().display().to_string();
    let install = |extra: &'static [&'static str]| {
        let mut args = vec![
            "install",
            "--sender",
            SENDER,
            "--handler-zip",
            &zip,
            "--arch",
            "x86_64",
            "--act-links",
            "on",
            "--yes",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = install(&["--notify-tag", "Watched"]);
    let refused = sgwatch(
        &programs,
        &moto,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert!(!refused.success());
    assert!(
        refused
            .stderr
            .contains("--act-links on needs the opt-in tag NotifyOnChange, not \"Watched\""),
        "{}",
        refused.stderr
    );
    let args = install(&[]);
    let run = sgwatch(
        &programs,
        &moto,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert!(run.success(), "{}\n{}", run.stdout, run.stderr);

    // The handler signs with the stack's key and points at act's URL.
    let env = deployed_function_env(&config).await.unwrap();
    let url = env["SGWATCH_ACT_URL"].clone();
    let key = env["SGWATCH_ACT_KEY"].clone();
    assert!(
        url.starts_with("https://") && url.ends_with(".on.aws/"),
        "{url}"
    );
    let described = aws_sdk_kms::Client::new(&config)
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let meta = described.key_metadata().unwrap();
    assert_eq!(meta.key_spec(), Some(&aws_sdk_kms::types::KeySpec::Hmac256));
    assert_eq!(
        meta.key_usage(),
        Some(&aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
    );

    // act: the zip's `act`, behind that URL, anyone may open it.
    let lambda = aws_sdk_lambda::Client::new(&config);
    let act = lambda
        .get_function_configuration()
        .function_name("sgwatch-act")
        .send()
        .await
        .unwrap();
    assert_eq!(act.handler(), Some("act"));
    let act_env = act
        .environment()
        .and_then(|e| e.variables())
        .unwrap()
        .clone();
    assert_eq!(act_env["SGWATCH_ACT_KEY"], key);
    let url_config = lambda
        .get_function_url_config()
        .function_name("sgwatch-act")
        .send()
        .await
        .unwrap();
    assert_eq!(url_config.function_url(), url.trim_end_matches('/'));
    assert_eq!(
        url_config.auth_type(),
        &aws_sdk_lambda::types::FunctionUrlAuthType::None
    );

    // Its role may revoke ingress only on groups carrying the opt-in tag key, and authorize
    // nothing; every action is named.
    let role = act.role().unwrap().rsplit('/').next().unwrap().to_owned();
    let iam = aws_sdk_iam::Client::new(&config);
    let policy = iam
        .get_role_policy()
        .role_name(&role)
        .policy_name("act")
        .send()
        .await
        .unwrap();
    let document: Value =
        serde_json::from_str(&urlencoding_decode(policy.policy_document())).unwrap();
    let statements = document["Statement"].as_array().unwrap();
    let actions: Vec<&str> = statements
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        })
        .collect();
    assert!(actions.iter().all(|a| !a.contains('*')), "{actions:?}");
    assert!(
        !actions.iter().any(|a| a.contains("Authorize")),
        "{actions:?}"
    );
    let on_groups = statements
        .iter()
        .find(|s| s["Sid"] == "RevokeOnlyOnGroupsThatOptIn")
        .unwrap();
    assert_eq!(
        on_groups["Condition"],
        json!({"Null": {"aws:ResourceTag/NotifyOnChange": "false"}})
    );

    // What was deployed acts: the handler's links, checked by act with its own settings.
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).unwrap();
    let act_settings = Settings::from_lookup(|k| act_env.get(k).cloned()).unwrap();
    let services = Services::new(&config, &settings);
    let act_services = ActServices::new(&config, &act_env["SGWATCH_IDEMPOTENCY_TABLE"]);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let group = fixture::security_group(
        &ec2,
        "shared-http",
        "Department A's web servers",
        &[("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)],
    )
    .await
    .unwrap();
    let before = synth::describe(&ec2, &group).await.unwrap();
    open(&ec2, &group, 3389).await.unwrap();
    let after = synth::describe(&ec2, &group).await.unwrap();
    let capture = Capture {
        account: ACCOUNT.into(),
        region: REGION.into(),
        time: DateTime::from(SystemTime::now()),
    };
    let item = synth::item_change(Some(&before), Some(&after), &capture).unwrap();
    handle(&fixture::sns(&item, "sns-rdp"), &settings, &services)
        .await
        .unwrap();
    let (revert, _) = links(&to(&moto.ses_messages().await, OWNER)[0]);
    assert!(revert.starts_with(&url), "{revert}");
    let page = act::respond(
        &url_event("POST", &revert),
        &act_settings,
        &act_services,
        SystemTime::now(),
    )
    .await;
    assert!(matches!(page, Page::Reverted { .. }), "{page:?}");
    assert_eq!(
        synth::describe(&ec2, &group).await.unwrap()["ipPermissions"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

/// An IAM policy document as GetRolePolicy returns it: URL-encoded JSON. (moto answers a role's
/// inline policy from a template as Python writes a dict, single-quoted: read as JSON too.)
pub(crate) fn urlencoding_decode(text: &str) -> String {
    let decoded =
        sgwatch_handler::core::page::form_value(&format!("x={}", text.replace('+', "%2B")), "x")
            .unwrap_or_else(|| text.to_owned());
    if decoded.starts_with("{'") {
        decoded.replace('\'', "\"")
    } else {
        decoded
    }
}
