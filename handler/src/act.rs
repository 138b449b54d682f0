//! The `act` function: what an owner's Revert or Keep link does, behind a Lambda function URL.
//!
//! A GET never acts (mail scanners open links): it checks the token and shows what the POST
//! would do, with the rule as the group holds it now. Only the POST from that page acts:
//! - **Revert** removes exactly the rule the token names, and only while the group still holds
//!   it unchanged and still opts in; its record lets the handler tell the change it causes as
//!   what it is, at INFO.
//! - **Keep** records that the owners keep the rule: no alert repeats for it while the exception
//!   stands, and the owners and the fallback recipient are told once, now.
//!
//! A token acts once: the ledger table keeps it (`act/SHA256`), written only if absent. A token
//! is checked by KMS (`VerifyMac`) before anything else is read.

use std::time::SystemTime;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::core::decide::opt_in;
use crate::core::link::{self, Act, Grant, TokenError};
use crate::core::page::{form_value, Page, RuleNow};
use crate::core::remedy::KnownRule;
use crate::core::render::Email;
use crate::core::settings::Settings;
use crate::dedupe::{epoch_secs, Dedupe};
use crate::deliver::mail;
use crate::groups;
use crate::links;

/// The clients the act function uses.
#[derive(Debug, Clone)]
pub struct ActServices {
    pub kms: aws_sdk_kms::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub table: Dedupe,
}

impl ActServices {
    pub fn new(config: &aws_config::SdkConfig, table: &str) -> ActServices {
        let config = config
            .to_builder()
            .timeout_config(crate::aws::handler_timeouts())
            .build();
        ActServices {
            kms: aws_sdk_kms::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            ses: mail::client(&config),
            table: Dedupe {
                client: aws_sdk_dynamodb::Client::new(&config),
                table: table.to_owned(),
            },
        }
    }
}

/// What the act function needs set: the key and the table.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not set: the act function needs it")]
pub struct Unset(pub &'static str);

/// The key and table of `settings`, which the act function cannot do without.
pub fn required(settings: &Settings) -> Result<(&str, &str), Unset> {
    let key = settings
        .act
        .key
        .as_deref()
        .ok_or(Unset("SGWATCH_ACT_KEY"))?;
    let table = settings
        .idempotency_table
        .as_deref()
        .ok_or(Unset("SGWATCH_IDEMPOTENCY_TABLE"))?;
    Ok((key, table))
}

/// A function URL request, as far as the act function reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    method: String,
    act: Option<String>,
    token: Option<String>,
}

impl Request {
    /// Reads the function URL's event (payload format 2.0): the method, and `do` and `t` from
    /// the query string (GET) or the form (POST).
    fn from_event(event: &Value) -> Request {
        let method = event
            .pointer("/requestContext/http/method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let fields = if method == "POST" {
            let body = event.get("body").and_then(Value::as_str).unwrap_or("");
            if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                aws_smithy_types::base64::decode(body)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default()
            } else {
                body.to_owned()
            }
        } else {
            event
                .get("rawQueryString")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Request {
            method,
            act: form_value(&fields, "do"),
            token: form_value(&fields, "t"),
        }
    }
}

/// The function URL's response: the page, never cached, never framed, loading nothing.
pub fn response(page: &Page) -> Value {
    json!({
        "statusCode": page.status(),
        "headers": {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        },
        "body": page.html(),
    })
}

/// Answers one request to a link at `now`.
pub async fn respond(
    event: &Value,
    settings: &Settings,
    services: &ActServices,
    now: SystemTime,
) -> Page {
    let request = Request::from_event(event);
    let page = answer(&request, settings, services, now).await;
    info!(
        method = %request.method,
        act = request.act.as_deref().unwrap_or("-"),
        status = page.status(),
        page = %page.title(),
        "link answered"
    );
    page
}

async fn answer(
    request: &Request,
    settings: &Settings,
    services: &ActServices,
    now: SystemTime,
) -> Page {
    let acts = matches!(request.method.as_str(), "POST");
    if !acts && !matches!(request.method.as_str(), "GET" | "HEAD") {
        return Page::Refused(format!("{} is not something a link does", request.method));
    }
    let (Some(act), Some(token)) = (
        request.act.as_deref().and_then(Act::parse),
        request.token.as_deref(),
    ) else {
        return Page::Refused(TokenError::Malformed.to_string());
    };
    let Ok((key, _)) = required(settings) else {
        return Page::Failed("the act function is not set up: it has no key or table".into());
    };
    let unverified = match link::read(token) {
        Ok(u) => u,
        Err(e) => return Page::Refused(e.to_string()),
    };
    match verify(&services.kms, key, &unverified).await {
        Ok(true) => {}
        Ok(false) => return Page::Refused(TokenError::Forged.to_string()),
        Err(e) => return Page::Failed(e),
    }
    let grant = unverified.grant;
    let now_secs = epoch_secs(now);
    if let Err(e) = grant.expired(now_secs) {
        return Page::Refused(e.to_string());
    }
    match links::used(&services.table, token).await {
        Ok(Some(used)) => {
            return Page::Used {
                act: used.act,
                at: used.at,
            }
        }
        Ok(None) => {}
        Err(e) => return Page::Failed(e),
    }
    let group = match groups::describe(&services.ec2, &grant.group).await {
        Ok(Some(group)) => group,
        Ok(None) => {
            return Page::NothingDone {
                grant,
                why: "The group no longer exists.".into(),
            }
        }
        Err(e) => return Page::Failed(e),
    };
    let tag = &settings.policy.notify_tag;
    if opt_in(&group.tags, tag).is_err() {
        return Page::Refused(format!(
            "The group no longer carries {tag}=Yes: sgwatch acts only on groups that opt in."
        ));
    }
    let now_rule = match groups::rules(&services.ec2, &grant.group).await {
        Ok(rules) => rule_now(&grant, &rules),
        Err(e) => return Page::Failed(e),
    };
    if !acts {
        return Page::Confirm {
            act,
            grant,
            now: now_rule,
            token: token.to_owned(),
            keep_days: settings.act.keep_days,
        };
    }
    let at = link::rfc3339(now_secs);
    match act {
        Act::Revert => revert(grant, now_rule, token, &at, now_secs, services).await,
        Act::Keep => keep(grant, token, &at, now_secs, settings, services).await,
    }
}

/// Whether KMS made `unverified`'s MAC with `key`.
async fn verify(
    kms: &aws_sdk_kms::Client,
    key: &str,
    unverified: &link::Unverified,
) -> Result<bool, String> {
    let result = kms
        .verify_mac()
        .key_id(key)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(unverified.signed_text.as_bytes()))
        .mac(Blob::new(unverified.mac.clone()))
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.mac_valid()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_kms_invalid_mac_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(format!(
            "the link could not be checked (KMS VerifyMac: {})",
            DisplayErrorContext(&e)
        )),
    }
}

/// The rule the token names, as `rules` (the group's rules now) hold it: by its id where the
/// token knows it, else by what it allows.
pub fn rule_now(grant: &Grant, rules: &[KnownRule]) -> RuleNow {
    let wanted = &grant.rule;
    if let Some(id) = &wanted.id {
        return match rules.iter().find(|r| &r.id == id) {
            Some(r) if wanted.allows_the_same(r) => RuleNow::Unchanged(r.clone()),
            Some(r) => RuleNow::Changed(r.clone()),
            None => RuleNow::Gone,
        };
    }
    rules
        .iter()
        .find(|r| wanted.allows_the_same(r))
        .map_or(RuleNow::Gone, |r| RuleNow::Unchanged(r.clone()))
}

async fn revert(
    grant: Grant,
    now_rule: RuleNow,
    token: &str,
    at: &str,
    now: u64,
    services: &ActServices,
) -> Page {
    let rule = match now_rule {
        RuleNow::Unchanged(rule) => rule,
        RuleNow::Changed(r) => {
            let why = format!(
                "The group's rule {} changed since the alert (it now allows {}): revert removes only the rule the alert told of, so nothing was removed.",
                r.id,
                link::RuleRef::of_known(&r).describe()
            );
            return Page::NothingDone { grant, why };
        }
        RuleNow::Gone => {
            return Page::NothingDone {
                grant,
                why: "The group no longer holds this rule: someone removed it already.".into(),
            }
        }
    };
    let table = &services.table;
    if let Err(used) = links::take(table, token, &grant, Act::Revert, at).await {
        return match used {
            Some(u) => Page::Used {
                act: u.act,
                at: u.at,
            },
            None => Page::Failed("the link could not be recorded as used".into()),
        };
    }
    let revoked = services
        .ec2
        .revoke_security_group_ingress()
        .group_id(&grant.group)
        .security_group_rule_ids(&rule.id)
        .send()
        .await;
    if let Err(e) = revoked {
        links::give_back(table, token).await;
        let why = format!(
            "EC2 did not remove the rule (RevokeSecurityGroupIngress: {})",
            DisplayErrorContext(&e)
        );
        warn!(group = %grant.group, rule = %rule.id, error = %why, "revert failed");
        return Page::Failed(why);
    }
    let told = links::told(table, &grant.state).await.unwrap_or_default();
    if let Err(e) = links::record_reverted(table, &grant, at, now, &told).await {
        // The rule is gone; the change is told all the same, only not as a revert.
        warn!(group = %grant.group, error = %e, "the revert could not be recorded");
    }
    info!(group = %grant.group, rule = %rule.id, "reverted through a link");
    Page::Reverted {
        grant,
        at: at.to_owned(),
    }
}

async fn keep(
    grant: Grant,
    token: &str,
    at: &str,
    now: u64,
    settings: &Settings,
    services: &ActServices,
) -> Page {
    let table = &services.table;
    if let Err(used) = links::take(table, token, &grant, Act::Keep, at).await {
        return match used {
            Some(u) => Page::Used {
                act: u.act,
                at: u.at,
            },
            None => Page::Failed("the link could not be recorded as used".into()),
        };
    }
    let until = now + settings.act.keep_days * 24 * 3600;
    let told = links::told(table, &grant.state).await.unwrap_or_default();
    if let Err(e) = links::record_kept(table, &grant, at, until, &told).await {
        links::give_back(table, token).await;
        return Page::Failed(e);
    }
    let until = link::rfc3339(until);
    let mut to = told.clone();
    if let Some(fallback) = &settings.policy.fallback_recipient {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(fallback)) {
            to.push(fallback.clone());
        }
    }
    if !to.is_empty() {
        let email = kept_email(&grant, at, &until, &told);
        if let Err(e) = mail::send(&services.ses, &settings.sender, &to, &email).await {
            // The Keep stands; the page says so and the logs say whom it did not reach.
            warn!(group = %grant.group, error = %e, "the Keep could not be told by email");
        }
    }
    info!(group = %grant.group, rule = %grant.rule.key(), until = %until, "kept through a link");
    Page::Kept {
        grant,
        at: at.to_owned(),
        until,
    }
}

/// The email that tells the owners and the fallback recipient that a rule is kept.
pub fn kept_email(grant: &Grant, at: &str, until: &str, told: &[String]) -> Email {
    let page = Page::Kept {
        grant: grant.clone(),
        at: at.to_owned(),
        until: until.to_owned(),
    };
    let mut lines = page.lines();
    if !told.is_empty() {
        lines.push(format!(
            "It was kept through a Keep link of the alert sent to {}.",
            told.join(", ")
        ));
    }
    lines.push(format!(
        "While it stands, a change that adds this rule again is not told, even if critical. To tell again, remove the exception: delete the item {} from the stack's ledger table.",
        links::kept_item(grant)
    ));
    let subject = format!(
        "[sgwatch] kept: {} on {}",
        grant.rule.describe(),
        grant.group
    );
    Email {
        subject: crate::core::text::one_line(&subject),
        text: lines.join("\n") + "\n",
        html: format!(
            "<html><body style=\"font-family:sans-serif\">{}</body></html>",
            lines
                .iter()
                .map(|l| format!("<p>{}</p>", html_escape::encode_text(l)))
                .collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_read_from_the_query_on_get_and_the_form_on_post() {
        let get = json!({"requestContext": {"http": {"method": "GET"}},
            "rawQueryString": "do=revert&t=1.abc.def"});
        assert_eq!(
            Request::from_event(&get),
            Request {
                method: "GET".into(),
                act: Some("revert".into()),
                token: Some("1.abc.def".into())
            }
        );
        let post = json!({"requestContext": {"http": {"method": "POST"}},
            "rawQueryString": "do=keep&t=other",
            "body": aws_smithy_types::base64::encode("do=revert&t=1.abc.def"),
            "isBase64Encoded": true});
        let read = Request::from_event(&post);
        assert_eq!(
            (read.act.as_deref(), read.token.as_deref()),
            (Some("revert"), Some("1.abc.def"))
        );
    }
}
