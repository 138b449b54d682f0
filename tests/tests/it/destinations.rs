//! Slack, Teams and signed webhooks against capture servers on loopback, with the secret URLs in
//! moto's SSM Parameter Store: the exact posts, and each failure: 429 then success, 5xx that
//! lasts (the invocation fails, so Lambda retries it and finally parks it in the failure queue;
//! the retry posts only where the first attempt did not), a 404 that is final for its destination
//! while the rest are delivered, and a missing parameter that blocks nothing else.

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use serde_json::{json, Value};
use sgwatch_handler::actor::ActorLookup;
use sgwatch_handler::decide::{analyze, decide, Decision};
use sgwatch_handler::destination::Destination;
use sgwatch_handler::message::{parse_message, ConfigMessage};
use sgwatch_handler::post::{Payload, Poster};
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::render::render;
use sgwatch_handler::settings::Settings;
use sgwatch_handler::{slack, teams, webhook};
use sgwatch_tests::capture::{Answer, CaptureServer};
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture;
const OWNER: &str = "platform-team@example.com";
const DESTINATIONS: &str = "secops=slack:/sgwatch/secops-slack,team-a=teams:/sgwatch/team-a,\
                            siem=webhook:/sgwatch/siem-url:/sgwatch/siem-key";
const SIGNING_KEY: &str = "a signing key only the receiver knows";
/// What the handler says of the actor with the lookup off, as these tests run it.
// The feed (the idempotency table) holds no call on the group, and LookupEvents is off.
const NO_ACTOR: &str = "the actor feed has no call on this group in the 15 minutes before the \
                        change; actor lookup is off (SGWATCH_LOOKUP_ACTOR=false)";

fn settings() -> Settings {
    // The capture servers are on loopback.
    settings_with(&[("SGWATCH_TEST_LOOPBACK_DESTINATIONS", "true")])
}

/// The destinations' settings as the stack sets them, plus `extra`.
fn settings_with(extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![("SGWATCH_DESTINATIONS", DESTINATIONS)];
    vars.extend_from_slice(extra);
    fixture::settings(&vars)
}

/// The RDP fixture, its group naming the three destinations.
fn message() -> Value {
    let mut m = fixture::json("rdp-opened.json");
    m["configurationItem"]["tags"]["NotifyChannels"] = json!("secops, team-a, siem");
    m
}

fn sns(message: &Value) -> Value {
    fixture::sns(message, "m-1")
}

/// The decision the handler makes for [`message`], computed here through the same library,
/// with what the handler reads from EC2: the fixture's group has no network interface in moto.
fn decision() -> Decision {
    let ConfigMessage::ItemChange(c) = parse_message(&message()).unwrap() else {
        panic!("the fixture is an item change")
    };
    let mut d = decide(analyze(&c).unwrap(), &settings().policy);
    d.analysis.exposure = Some(sgwatch_handler::exposure::Exposure::Ec2 { interfaces: vec![] });
    d
}

async fn put(config: &aws_config::SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(config)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("putting {name}: {e:?}"));
}

/// moto with the sender, the ledger table and the parameters of the destinations whose servers
/// are given (a `None` leaves that parameter missing).
async fn world(
    slack: Option<&CaptureServer>,
    teams: Option<&CaptureServer>,
    siem: Option<&CaptureServer>,
) -> (Moto, aws_config::SdkConfig) {
    let (moto, config) = Moto::ready_to_send().await;
    if let Some(s) = slack {
        put(
            &config,
            "/sgwatch/secops-slack",
            &format!("{}/services/T0/B0/secret", s.url),
        )
        .await;
    }
    if let Some(s) = teams {
        put(
            &config,
            "/sgwatch/team-a",
            &format!("{}/workflows/team-a/triggers/manual", s.url),
        )
        .await;
    }
    if let Some(s) = siem {
        put(&config, "/sgwatch/siem-url", &format!("{}/ingest", s.url)).await;
        put(&config, "/sgwatch/siem-key", SIGNING_KEY).await;
    }
    (moto, config)
}

#[tokio::test]
async fn slack_teams_and_the_webhook_each_get_their_exact_post() {
    let (slack_server, teams_server, siem_server) = (
        CaptureServer::start(vec![]),
        CaptureServer::start(vec![]),
        CaptureServer::start(vec![]),
    );
    let (moto, config) = world(Some(&slack_server), Some(&teams_server), Some(&siem_server)).await;
    let settings = settings();
    let services = Services::new(&config, &settings);

    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, [OWNER]);

    let d = decision();
    assert_eq!(d.destinations, ["secops", "team-a", "siem"]);
    let actor = ActorLookup::Unknown(NO_ACTOR.into());

    let posts = slack_server.requests();
    assert_eq!(posts.len(), 1);
    let p = &posts[0];
    assert_eq!(
        (p.method.as_str(), p.path.as_str()),
        ("POST", "/services/T0/B0/secret")
    );
    assert_eq!(p.header("content-type"), Some("application/json"));
    assert_eq!(p.json(), slack::message(&d, &actor));
    assert_eq!(
        p.json()["blocks"][0]["text"]["text"],
        "CRITICAL: security group sg-0123456789abcdef0 (shared-http) was changed"
    );
    assert_eq!(
        p.json()["attachments"][0]["blocks"][1]["text"]["text"],
        "*Rules added (1)*\n`[critical]` `+ingress tcp/3389 from 0.0.0.0/0`"
    );

    let posts = teams_server.requests();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/workflows/team-a/triggers/manual");
    assert_eq!(posts[0].json(), teams::message(&d, &actor));
    assert_eq!(
        posts[0].json()["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );

    let posts = siem_server.requests();
    assert_eq!(posts.len(), 1);
    let p = &posts[0];
    assert_eq!(p.path, "/ingest");
    let email = render(&d, &actor);
    assert_eq!(p.body, webhook::body(&d, &email));
    let body = p.json();
    assert_eq!(body["resource_id"], "sg-0123456789abcdef0");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["recipients"], json!([OWNER]));
    assert_eq!(body["destinations"], json!(["secops", "team-a", "siem"]));
    assert_eq!(body["subject"], mail[0].subject.clone().unwrap());
    // The receiver recomputes the HMAC of "{timestamp}.{body}" with the key it shares, and
    // checks the timestamp is recent: a captured post does not verify later.
    let timestamp = p
        .header("x-sgwatch-timestamp")
        .expect("the post says when it was signed");
    let signed_at: u64 = timestamp.parse().expect("Unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(signed_at) < 60, "{signed_at} vs {now}");
    let mac = |key: &[u8], signed: &[u8]| {
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(signed);
        format!("sha256={}", hex::encode(m.finalize().into_bytes()))
    };
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&p.body);
    assert_eq!(
        p.header("x-sgwatch-signature"),
        Some(mac(SIGNING_KEY.as_bytes(), &signed).as_str())
    );
    // The body alone, the old scheme, no longer verifies; nor does another key.
    assert_ne!(
        p.header("x-sgwatch-signature"),
        Some(mac(SIGNING_KEY.as_bytes(), &p.body).as_str())
    );
    assert_ne!(
        p.header("x-sgwatch-signature"),
        Some(mac(b"another key", &signed).as_str())
    );
    // The delivery: the ledger key of the configuration state and the destination's name.
    let delivery = p.header("x-sgwatch-delivery").expect("a delivery id");
    assert!(delivery.ends_with("/siem"), "{delivery}");
    assert!(delivery.contains("sg-0123456789abcdef0"), "{delivery}");

    // A second delivery of the same notification posts nothing again.
    handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!(
        (
            slack_server.requests().len(),
            teams_server.requests().len(),
            siem_server.requests().len(),
            moto.ses_messages().await.len()
        ),
        (1, 1, 1, 1)
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_posted_once() {
    let slack_server = CaptureServer::start(vec![Answer::status(429).header("Retry-After", "1")]);
    let (teams_server, siem_server) = (CaptureServer::start(vec![]), CaptureServer::start(vec![]));
    let (moto, config) = world(Some(&slack_server), Some(&teams_server), Some(&siem_server)).await;
    let settings = settings();
    let services = Services::new(&config, &settings);

    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let posts = slack_server.requests();
    assert_eq!(posts.len(), 2, "the throttled post, then the one taken");
    assert_eq!(posts[0].body, posts[1].body);
    let waited = posts[1].at - posts[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited {waited:?}, Retry-After said 1 s"
    );
    assert_eq!(moto.ses_messages().await.len(), 1);
}

#[tokio::test]
async fn a_500_fails_the_invocation_and_the_retry_posts_only_there() {
    // The first post is answered 500 (it may have been acted on: not posted again within the
    // attempt); then the service recovers.
    let slack_server = CaptureServer::start(vec![Answer::status(500)]);
    let (teams_server, siem_server) = (CaptureServer::start(vec![]), CaptureServer::start(vec![]));
    let (moto, config) = world(Some(&slack_server), Some(&teams_server), Some(&siem_server)).await;
    let settings = settings();
    let services = Services::new(&config, &settings);

    let err = handle(&sns(&message()), &settings, &services)
        .await
        .expect_err("a post that failed every retry fails the invocation");
    let err = err.to_string();
    assert!(
        err.contains("destination secops did not take the post after 1 attempts: HTTP 500"),
        "{err}"
    );
    assert_eq!(slack_server.requests().len(), 1);
    // The email and the other destinations went out all the same, and are in the ledger.
    assert_eq!(moto.ses_messages().await.len(), 1);
    assert_eq!(
        (teams_server.requests().len(), siem_server.requests().len()),
        (1, 1)
    );

    // Lambda's retry: only Slack is posted to; nobody hears twice.
    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(slack_server.requests().len(), 2);
    assert_eq!(
        (teams_server.requests().len(), siem_server.requests().len()),
        (1, 1)
    );
    assert_eq!(moto.ses_messages().await.len(), 1);
}

#[tokio::test]
async fn a_404_is_final_for_its_destination_and_the_rest_are_delivered() {
    let slack_server = CaptureServer::start(vec![Answer::status(404)]);
    let (teams_server, siem_server) = (CaptureServer::start(vec![]), CaptureServer::start(vec![]));
    let (moto, config) = world(Some(&slack_server), Some(&teams_server), Some(&siem_server)).await;
    let settings = settings();
    let services = Services::new(&config, &settings);

    let started = Instant::now();
    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(slack_server.requests().len(), 1, "a 404 is not retried");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (teams_server.requests().len(), siem_server.requests().len()),
        (1, 1)
    );
    assert_eq!(moto.ses_messages().await.len(), 1);
}

#[tokio::test]
async fn a_missing_parameter_blocks_neither_the_email_nor_the_others() {
    let (slack_server, siem_server) = (CaptureServer::start(vec![]), CaptureServer::start(vec![]));
    // /sgwatch/team-a is never created.
    let (moto, config) = world(Some(&slack_server), None, Some(&siem_server)).await;
    let settings = settings();
    let services = Services::new(&config, &settings);

    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(moto.ses_messages().await.len(), 1);
    assert_eq!(
        (slack_server.requests().len(), siem_server.requests().len()),
        (1, 1)
    );

    // A parameter is read once and kept for minutes: a second notification asks SSM only for the
    // parameter it could not read (created meanwhile), and the rest come from the cache.
    let teams_server = CaptureServer::start(vec![]);
    put(
        &config,
        "/sgwatch/team-a",
        &format!("{}/wf", teams_server.url),
    )
    .await;
    let poster = services
        .poster
        .as_ref()
        .expect("destinations are configured");
    let url = poster.parameter("team-a", "/sgwatch/team-a").await.unwrap();
    assert_eq!(url, format!("{}/wf", teams_server.url));
    aws_sdk_ssm::Client::new(&config)
        .delete_parameter()
        .name("/sgwatch/team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        poster.parameter("team-a", "/sgwatch/team-a").await.unwrap(),
        url,
        "read once, then kept (for up to five minutes)"
    );
}

/// As the stack runs it (no loopback setting), a destination on this machine's loopback, at the
/// instance metadata address or at a private address gets nothing, at once and for good; the
/// email goes out all the same.
#[tokio::test]
async fn loopback_metadata_and_private_destinations_are_refused() {
    let (slack_server, teams_server) = (CaptureServer::start(vec![]), CaptureServer::start(vec![]));
    let (moto, config) = world(Some(&slack_server), None, None).await;
    let port = teams_server.url.rsplit(':').next().unwrap();
    put(
        &config,
        "/sgwatch/team-a",
        &format!("https://localhost:{port}/wf"),
    )
    .await;
    put(
        &config,
        "/sgwatch/siem-url",
        "https://169.254.169.254/latest/meta-data/",
    )
    .await;
    put(&config, "/sgwatch/siem-key", SIGNING_KEY).await;
    let settings = settings_with(&[]);
    let services = Services::new(&config, &settings);

    let started = Instant::now();
    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(moto.ses_messages().await.len(), 1);
    assert!(slack_server.requests().is_empty(), "plain http to loopback");
    assert!(
        teams_server.requests().is_empty(),
        "a name resolving to loopback"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused, not retried"
    );

    let poster = Poster::new(&config).with_reach(settings.reach());
    let payload = Payload {
        body: b"{}".to_vec(),
        headers: Vec::new(),
    };
    let refusal = |name: &str| {
        let destination = settings
            .policy
            .destinations
            .iter()
            .find(|d| d.name == name)
            .unwrap()
            .clone();
        let poster = &poster;
        let payload = &payload;
        async move { poster.post(&destination, payload, None).await.unwrap_err() }
    };
    let slack = refusal("secops").await;
    assert!(slack.to_string().contains("loopback"), "{slack}");
    let teams = refusal("team-a").await;
    assert!(!teams.is_transient(), "{teams}");
    assert!(
        teams.to_string().contains("localhost resolves to"),
        "{teams}"
    );
    let siem = refusal("siem").await;
    assert!(siem.to_string().contains("instance metadata"), "{siem}");

    put(
        &config,
        "/sgwatch/secops-slack",
        "https://10.0.0.5/services/T0/B0/x",
    )
    .await;
    let private = Poster::new(&config).with_reach(settings.reach());
    let destination = settings.policy.destinations[0].clone();
    let err = private
        .post(&destination, &payload, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("--allow-private-destinations"),
        "{err}"
    );
}

/// An answer lost after the destination took the post: not posted again within the attempt;
/// Lambda's retry posts once more, so the copies never exceed the answers lost.
#[tokio::test]
async fn a_lost_answer_is_not_posted_again_within_the_attempt() {
    let siem_server = CaptureServer::start(vec![Answer::dropped()]);
    let (slack_server, teams_server) = (CaptureServer::start(vec![]), CaptureServer::start(vec![]));
    let (moto, config) = world(Some(&slack_server), Some(&teams_server), Some(&siem_server)).await;
    let settings = settings();
    let services = Services::new(&config, &settings);
    handle(&sns(&message()), &settings, &services)
        .await
        .expect_err("a lost answer fails the invocation");
    assert_eq!(
        siem_server.requests().len(),
        1,
        "posted once in the attempt"
    );
    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(siem_server.requests().len(), 2, "one copy per lost answer");
    assert_eq!(
        (slack_server.requests().len(), teams_server.requests().len()),
        (1, 1)
    );
    assert_eq!(moto.ses_messages().await.len(), 1);
}

/// The Slack URL was rotated: the old one answers 404. The parameter is read again at once and
/// the post goes to the new URL, without waiting for the cache to expire.
#[tokio::test]
async fn a_rotated_url_is_read_again_after_a_404() {
    let old = CaptureServer::start(vec![Answer::status(404); 5]);
    let (teams_server, siem_server) = (CaptureServer::start(vec![]), CaptureServer::start(vec![]));
    let (_moto, config) = world(Some(&old), Some(&teams_server), Some(&siem_server)).await;
    let settings = settings();
    let services = Services::new(&config, &settings);
    let poster = services.poster.as_ref().unwrap();
    // The old URL is in the cache, as after an earlier notification.
    poster
        .parameter("secops", "/sgwatch/secops-slack")
        .await
        .unwrap();
    let new = CaptureServer::start(vec![]);
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name("/sgwatch/secops-slack")
        .value(format!("{}/services/T0/B0/rotated", new.url))
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let report = handle(&sns(&message()), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(old.requests().len(), 1);
    let posts = new.requests();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/services/T0/B0/rotated");
}

/// A parameter's value is used for at most the cache's lifetime, then read again.
#[tokio::test]
async fn a_parameter_is_read_again_once_its_cache_lifetime_ends() {
    let (_moto, config) = world(None, None, None).await;
    put(&config, "/sgwatch/team-a", "https://one.example/wf").await;
    let poster = Poster::new(&config).with_cache_ttl(Duration::from_millis(300));
    assert_eq!(
        poster.parameter("team-a", "/sgwatch/team-a").await.unwrap(),
        "https://one.example/wf"
    );
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name("/sgwatch/team-a")
        .value("https://two.example/wf")
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        poster.parameter("team-a", "/sgwatch/team-a").await.unwrap(),
        "https://one.example/wf",
        "kept within its lifetime"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        poster.parameter("team-a", "/sgwatch/team-a").await.unwrap(),
        "https://two.example/wf"
    );
    assert_eq!(
        sgwatch_handler::post::CACHE_TTL,
        Duration::from_secs(300),
        "at most 5 minutes"
    );
}

/// The secops destination of `settings`, and an empty post for it.
fn secops_post(settings: &Settings) -> (&Destination, Payload) {
    let destination = settings
        .policy
        .destinations
        .iter()
        .find(|d| d.name == "secops")
        .unwrap();
    let payload = Payload {
        body: b"{}".to_vec(),
        headers: Vec::new(),
    };
    (destination, payload)
}

/// A redirect is never followed (the secret URL would leak to wherever it points): an error
/// that names the location.
#[tokio::test]
async fn a_redirect_is_an_error_naming_its_location() {
    let moved = CaptureServer::start(vec![
        Answer::status(301).header("Location", "https://elsewhere.example/hook")
    ]);
    let (_moto, config) = world(Some(&moved), None, None).await;
    let settings = settings();
    let (destination, payload) = secops_post(&settings);
    let poster = Poster::new(&config).with_reach(settings.reach());
    let err = poster.post(destination, &payload, None).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let text = err.to_string();
    assert!(text.contains("HTTP 301"), "{text}");
    assert!(text.contains("https://elsewhere.example/hook"), "{text}");
    assert_eq!(moved.requests().len(), 1);
}

/// Too little time left to read the SSM parameter and post: neither is started.
#[tokio::test]
async fn no_parameter_read_or_post_starts_past_the_time_left() {
    let slack_server = CaptureServer::start(vec![]);
    let (_moto, config) = world(Some(&slack_server), None, None).await;
    let settings = settings();
    let (destination, payload) = secops_post(&settings);
    let poster = Poster::new(&config).with_reach(settings.reach());
    let err = poster
        .post(
            destination,
            &payload,
            Some(Instant::now() + Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("read its SSM parameter"), "{err}");
    // The URL cached: the SSM read is skipped, but an attempt (8 s) does not fit in 5 s either.
    poster
        .parameter("secops", "/sgwatch/secops-slack")
        .await
        .unwrap();
    let err = poster
        .post(
            destination,
            &payload,
            Some(Instant::now() + Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("start a post"), "{err}");
    assert!(slack_server.requests().is_empty());
}
