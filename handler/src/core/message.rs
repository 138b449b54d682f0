//! Reading what arrives: the input shapes (SNS event, EventBridge event of AWS Config, bare
//! Config message, and CloudTrail's `AWS API Call via CloudTrail` event for the actor feed) and
//! the AWS Config message types inside them.
//!
//! Parsing is lenient about what sgwatch does not need and strict about what it does: a record
//! that cannot be read becomes an [`Envelope`] holding a [`ParseError`], never a panic, so one bad
//! record does not hide the others of the same event.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The AWS Config message type of a configuration item change.
pub const ITEM_CHANGE: &str = "ConfigurationItemChangeNotification";
/// The AWS Config message type sent when the item is too large for SNS.
pub const OVERSIZED_ITEM_CHANGE: &str = "OversizedConfigurationItemChangeNotification";

/// Why a record could not be read as a Config message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the SNS message is not JSON: {0}")]
    MessageNotJson(String),
    #[error("the SNS record has no Sns.Message string")]
    MissingSnsMessage,
    #[error("the SQS record has no body string")]
    MissingSqsBody,
    #[error(
        "the event is neither an SNS event, an EventBridge aws.config event nor a Config message"
    )]
    UnknownShape,
    #[error("the CloudTrail API call event is not one sgwatch records: {0}")]
    ApiCall(#[from] crate::core::feed::FeedError),
    #[error("the spoke's heartbeat is refused: {0}")]
    Heartbeat(#[from] crate::core::spokes::HeartbeatError),
    #[error("the {message_type} message is malformed: {detail}")]
    Malformed {
        message_type: String,
        detail: String,
        /// What the message says it is about, when that much is readable: a change to a watched
        /// resource is never skipped for being unreadable.
        resource_type: Option<String>,
        resource_id: Option<String>,
    },
}

/// One record found in an input event, with what identifies it in the logs.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The SNS `MessageId`, the SQS `messageId` (what a batch item failure names) or the
    /// EventBridge event `id`, when the record came with one.
    pub message_id: Option<String>,
    pub message: Result<ConfigMessage, ParseError>,
    /// The start of the record's body (at most [`BODY_EXCERPT_BYTES`]) when it could not be read
    /// at all (not JSON, no message), so that it can be parked for someone to look at.
    pub excerpt: Option<String>,
}

/// How much of an unreadable record's body is kept with it when it is parked.
pub const BODY_EXCERPT_BYTES: usize = 2048;

/// The first [`BODY_EXCERPT_BYTES`] of `text`, cut at a character boundary.
pub fn excerpt(text: &str) -> String {
    let mut end = text.len().min(BODY_EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The AWS Config messages sgwatch distinguishes.
#[derive(Debug, Clone)]
pub enum ConfigMessage {
    /// A configuration item changed; the whole item and its diff are in the message.
    ItemChange(ItemChange),
    /// A configuration item changed but is too large for SNS; it waits in S3.
    Oversized(Oversized),
    /// Any other Config message: snapshot and history deliveries, compliance changes, etc.
    Other { message_type: String },
    /// Not from AWS Config: CloudTrail's record of a security-group API call, for the actor feed.
    ApiCall(Box<crate::core::feed::ApiCall>),
    /// Not from AWS Config: a spoke's hourly heartbeat on the hub's bus.
    Heartbeat(crate::core::spokes::Heartbeat),
    /// Not from AWS Config: the hub's hourly look for spokes gone silent.
    CoverageCheck,
    /// Not from AWS Config: the daily schedule that sends the digests.
    DigestDue(crate::core::digest::Due),
    /// Not from AWS Config: a group's coalescing window has ended.
    Wake(crate::core::digest::Wake),
}

impl ConfigMessage {
    pub fn message_type(&self) -> &str {
        match self {
            ConfigMessage::ItemChange(_) => ITEM_CHANGE,
            ConfigMessage::Oversized(_) => OVERSIZED_ITEM_CHANGE,
            ConfigMessage::Other { message_type } => message_type,
            ConfigMessage::ApiCall(_) => crate::core::feed::DETAIL_TYPE,
            ConfigMessage::Heartbeat(_) => crate::core::spokes::HEARTBEAT_DETAIL_TYPE,
            ConfigMessage::CoverageCheck => crate::core::spokes::COVERAGE_CHECK_DETAIL_TYPE,
            ConfigMessage::DigestDue(_) => crate::core::digest::DIGEST_DETAIL_TYPE,
            ConfigMessage::Wake(_) => crate::core::digest::WAKE_DETAIL_TYPE,
        }
    }
}

/// A `ConfigurationItemChangeNotification`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemChange {
    pub configuration_item: ConfigurationItem,
    #[serde(default)]
    pub configuration_item_diff: Option<ItemDiff>,
    /// Set by `sgwatch test-event`: the email says it is a test.
    #[serde(default, rename = "sgwatchTest")]
    pub test: bool,
}

/// `configurationItem`: the state of the resource after the change.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationItem {
    pub resource_type: String,
    pub resource_id: String,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub aws_account_id: String,
    #[serde(default)]
    pub aws_region: String,
    #[serde(default, rename = "ARN")]
    pub arn: Option<String>,
    #[serde(default)]
    pub configuration_item_status: Option<ItemStatus>,
    #[serde(default)]
    pub configuration_item_capture_time: Option<String>,
    #[serde(default)]
    pub configuration_state_id: Option<StateId>,
    /// The resource's own description; `null` for a deleted resource.
    #[serde(default)]
    pub configuration: Option<Value>,
    /// The tags as a map; values that are not strings are kept as their JSON text.
    #[serde(default, deserialize_with = "lenient_tags")]
    pub tags: BTreeMap<String, String>,
    /// What the resource is related to (for a group: its VPC, network interfaces, instances);
    /// `None` when the item does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationships: Option<Vec<Value>>,
}

impl ConfigurationItem {
    /// True for `ResourceDeleted` and `ResourceDeletedNotRecorded`.
    pub fn is_deleted(&self) -> bool {
        self.configuration_item_status
            .as_ref()
            .is_some_and(ItemStatus::is_deleted)
    }
}

/// `changeType`: what a change did to the resource, or to one property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    /// A value AWS Config does not document, kept as written.
    Other(String),
}

impl ChangeType {
    pub fn as_str(&self) -> &str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
            ChangeType::Other(other) => other,
        }
    }
}

impl From<String> for ChangeType {
    fn from(value: String) -> ChangeType {
        match value.as_str() {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            _ => ChangeType::Other(value),
        }
    }
}

impl From<ChangeType> for String {
    fn from(value: ChangeType) -> String {
        value.as_str().to_owned()
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `configurationItemStatus`: where the item stands in the recorder's life of the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ItemStatus {
    Ok,
    /// Found when recording started (or when the resource was created).
    ResourceDiscovered,
    ResourceNotRecorded,
    ResourceDeleted,
    ResourceDeletedNotRecorded,
    /// A value AWS Config does not document, kept as written.
    Other(String),
}

impl ItemStatus {
    pub fn as_str(&self) -> &str {
        match self {
            ItemStatus::Ok => "OK",
            ItemStatus::ResourceDiscovered => "ResourceDiscovered",
            ItemStatus::ResourceNotRecorded => "ResourceNotRecorded",
            ItemStatus::ResourceDeleted => "ResourceDeleted",
            ItemStatus::ResourceDeletedNotRecorded => "ResourceDeletedNotRecorded",
            ItemStatus::Other(other) => other,
        }
    }

    /// `ResourceDeleted` or `ResourceDeletedNotRecorded`.
    pub fn is_deleted(&self) -> bool {
        matches!(
            self,
            ItemStatus::ResourceDeleted | ItemStatus::ResourceDeletedNotRecorded
        )
    }
}

impl From<String> for ItemStatus {
    fn from(value: String) -> ItemStatus {
        match value.as_str() {
            "OK" => ItemStatus::Ok,
            "ResourceDiscovered" => ItemStatus::ResourceDiscovered,
            "ResourceNotRecorded" => ItemStatus::ResourceNotRecorded,
            "ResourceDeleted" => ItemStatus::ResourceDeleted,
            "ResourceDeletedNotRecorded" => ItemStatus::ResourceDeletedNotRecorded,
            _ => ItemStatus::Other(value),
        }
    }
}

impl From<ItemStatus> for String {
    fn from(value: ItemStatus) -> String {
        value.as_str().to_owned()
    }
}

/// `configurationStateId`: the identity of one configuration state. A number in AWS's messages, a
/// string in some summaries: read once as its text, so neither rejects the record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Value", into = "String")]
pub struct StateId(String);

impl StateId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Value> for StateId {
    fn from(value: Value) -> StateId {
        match value {
            Value::String(s) => StateId(s),
            other => StateId(other.to_string()),
        }
    }
}

impl From<StateId> for String {
    fn from(value: StateId) -> String {
        value.0
    }
}

impl fmt::Display for StateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `configurationItemDiff`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemDiff {
    #[serde(default)]
    pub changed_properties: BTreeMap<String, ChangedProperty>,
    #[serde(default)]
    pub change_type: Option<ChangeType>,
}

/// One entry of `changedProperties`, keyed by property path and array position.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedProperty {
    #[serde(default)]
    pub previous_value: Value,
    #[serde(default)]
    pub updated_value: Value,
    #[serde(default)]
    pub change_type: Option<ChangeType>,
}

/// An `OversizedConfigurationItemChangeNotification`: only a summary and where the item is in S3.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Oversized {
    pub configuration_item_summary: ItemSummary,
    pub s3_delivery_summary: S3DeliverySummary,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemSummary {
    pub resource_type: String,
    pub resource_id: String,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub aws_account_id: String,
    #[serde(default)]
    pub aws_region: String,
    #[serde(default)]
    pub change_type: Option<ChangeType>,
    #[serde(default)]
    pub configuration_state_id: Option<StateId>,
    #[serde(default)]
    pub configuration_item_capture_time: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3DeliverySummary {
    /// `bucket/key`, as AWS Config writes it.
    #[serde(default)]
    pub s3_bucket_location: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

impl S3DeliverySummary {
    /// The bucket and key of the oversized item, when the location is usable.
    pub fn bucket_and_key(&self) -> Option<(&str, &str)> {
        let location = self.s3_bucket_location.as_deref()?;
        let location = location.strip_prefix("s3://").unwrap_or(location);
        let (bucket, key) = location.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
    }
}

fn lenient_tags<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = Option::<BTreeMap<String, Value>>::deserialize(deserializer)?;
    Ok(value
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// sgwatch's own scheduled events: a coalescing window's end, the daily digest, the hub's
/// coverage check.
fn own_event(event: &Value) -> Option<Result<ConfigMessage, ParseError>> {
    use crate::core::digest;
    if digest::is_wake(event) {
        return Some(
            digest::parse_wake(event)
                .map(ConfigMessage::Wake)
                .map_err(|detail| ParseError::Malformed {
                    message_type: digest::WAKE_DETAIL_TYPE.to_owned(),
                    detail,
                    resource_type: None,
                    resource_id: None,
                }),
        );
    }
    if digest::is_due(event) {
        return Some(Ok(ConfigMessage::DigestDue(digest::parse_due(event))));
    }
    crate::core::spokes::is_coverage_check(event).then_some(Ok(ConfigMessage::CoverageCheck))
}

/// Every record of an input event: an SNS event, an SQS batch (the hub's queue, each body an
/// EventBridge event), an EventBridge event or a bare Config message.
pub fn envelopes(event: &Value) -> Vec<Envelope> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        return records
            .iter()
            .map(|r| match is_sqs_record(r) {
                true => sqs_record(r),
                false => sns_record(r),
            })
            .collect();
    }
    if crate::core::feed::is_api_call_event(event) {
        let message_id = event.get("id").and_then(Value::as_str).map(str::to_owned);
        let message = crate::core::feed::parse_event(event)
            .map(|call| ConfigMessage::ApiCall(Box::new(call)))
            .map_err(ParseError::from);
        return vec![Envelope {
            message_id,
            message,
            excerpt: None,
        }];
    }
    if let Some(message) = own_event(event) {
        return vec![Envelope {
            message_id: event.get("id").and_then(Value::as_str).map(str::to_owned),
            message,
            excerpt: None,
        }];
    }
    if crate::core::spokes::is_heartbeat(event) {
        let message_id = event.get("id").and_then(Value::as_str).map(str::to_owned);
        let message = crate::core::spokes::parse_heartbeat(event)
            .map(ConfigMessage::Heartbeat)
            .map_err(ParseError::from);
        return vec![Envelope {
            message_id,
            message,
            excerpt: None,
        }];
    }
    if event.get("detail-type").is_some()
        || event.get("source").and_then(Value::as_str) == Some("aws.config")
    {
        let message_id = event.get("id").and_then(Value::as_str).map(str::to_owned);
        let message = match event.get("detail") {
            Some(detail) if event.get("source").and_then(Value::as_str) == Some("aws.config") => {
                parse_message(detail)
            }
            _ => Err(ParseError::UnknownShape),
        };
        return vec![Envelope {
            message_id,
            message,
            excerpt: None,
        }];
    }
    vec![Envelope {
        message_id: None,
        message: parse_message(event),
        excerpt: None,
    }]
}

/// Whether `event` is a batch from an SQS queue (an event source mapping), whose failed records
/// are reported one by one (`batchItemFailures`) rather than by failing the invocation.
pub fn is_sqs_batch(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .is_some_and(is_sqs_record)
}

fn is_sqs_record(record: &Value) -> bool {
    record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")
}

/// An SQS record: its body is the EventBridge event the hub's rule queued; the record is named by
/// the SQS `messageId`.
fn sqs_record(record: &Value) -> Envelope {
    let message_id = record
        .get("messageId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(text) = record.get("body").and_then(Value::as_str) else {
        return Envelope {
            message_id,
            message: Err(ParseError::MissingSqsBody),
            excerpt: Some(excerpt(&record.to_string())),
        };
    };
    let inner = match serde_json::from_str::<Value>(text) {
        // A body that is itself a batch would make one record many: read as a bare message.
        Ok(inner) if inner.get("Records").is_none() => inner,
        Ok(_) => {
            return Envelope {
                message_id,
                message: Err(ParseError::UnknownShape),
                excerpt: Some(excerpt(text)),
            }
        }
        Err(e) => {
            return Envelope {
                message_id,
                message: Err(ParseError::MessageNotJson(e.to_string())),
                excerpt: Some(excerpt(text)),
            }
        }
    };
    let mut found = envelopes(&inner);
    let mut envelope = found.pop().unwrap_or(Envelope {
        message_id: None,
        message: Err(ParseError::UnknownShape),
        excerpt: None,
    });
    envelope.message_id = message_id;
    envelope
}

fn sns_record(record: &Value) -> Envelope {
    let sns = record.get("Sns");
    let message_id = sns
        .and_then(|s| s.get("MessageId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (message, excerpt) = match sns.and_then(|s| s.get("Message")).and_then(Value::as_str) {
        // The body is then the record itself, as SNS gave it.
        None => (
            Err(ParseError::MissingSnsMessage),
            Some(excerpt(&record.to_string())),
        ),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(inner) => (parse_owned_message(inner), None),
            Err(e) => (
                Err(ParseError::MessageNotJson(e.to_string())),
                Some(excerpt(text)),
            ),
        },
    };
    Envelope {
        message_id,
        message,
        excerpt,
    }
}

/// Reads one bare Config message.
pub fn parse_message(value: &Value) -> Result<ConfigMessage, ParseError> {
    parse_owned_message(value.clone())
}

/// Reads one bare Config message, consuming it: no part of a large group is copied.
pub fn parse_owned_message(value: Value) -> Result<ConfigMessage, ParseError> {
    let Some(message_type) = value.get("messageType").and_then(Value::as_str) else {
        return Err(ParseError::UnknownShape);
    };
    let message_type = message_type.to_owned();
    let (resource_type, resource_id) = resource_of(&value);
    let malformed = |e: serde_json::Error| ParseError::Malformed {
        message_type: message_type.clone(),
        detail: e.to_string(),
        resource_type: resource_type.clone(),
        resource_id: resource_id.clone(),
    };
    match message_type.as_str() {
        ITEM_CHANGE => ItemChange::deserialize(value)
            .map(ConfigMessage::ItemChange)
            .map_err(malformed),
        OVERSIZED_ITEM_CHANGE => Oversized::deserialize(value)
            .map(ConfigMessage::Oversized)
            .map_err(malformed),
        _ => Ok(ConfigMessage::Other {
            message_type: message_type.clone(),
        }),
    }
}

/// The resource type and id of a change message (or bare item), as far as they are strings.
fn resource_of(value: &Value) -> (Option<String>, Option<String>) {
    let item = value
        .get("configurationItem")
        .or_else(|| value.get("configurationItemSummary"))
        .unwrap_or(value);
    let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
    (text("resourceType"), text("resourceId"))
}

/// Reads the object AWS Config leaves in S3 for an oversized notification: the full change
/// notification, or (in older deliveries) the bare configuration item.
pub fn parse_oversized_object(value: &Value) -> Result<ItemChange, ParseError> {
    let (resource_type, resource_id) = resource_of(value);
    let malformed = |e: serde_json::Error| ParseError::Malformed {
        message_type: OVERSIZED_ITEM_CHANGE.to_owned(),
        detail: e.to_string(),
        resource_type: resource_type.clone(),
        resource_id: resource_id.clone(),
    };
    if value.get("configurationItem").is_some() {
        ItemChange::deserialize(value).map_err(malformed)
    } else {
        let item = ConfigurationItem::deserialize(value).map_err(malformed)?;
        Ok(ItemChange {
            configuration_item: item,
            configuration_item_diff: None,
            test: false,
        })
    }
}

/// What identifies a notification in logs and parked records, even without its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
}

impl Facts {
    pub fn of_change(message_id: &str, c: &ItemChange) -> Facts {
        let i = &c.configuration_item;
        Facts {
            message_id: message_id.to_owned(),
            resource_type: Some(i.resource_type.clone()),
            resource_id: Some(i.resource_id.clone()),
            account: Some(i.aws_account_id.clone()),
            region: Some(i.aws_region.clone()),
            state_id: i.configuration_state_id.as_ref().map(StateId::to_string),
            capture_time: i.configuration_item_capture_time.clone(),
            change_type: c
                .configuration_item_diff
                .as_ref()
                .and_then(|d| d.change_type.as_ref())
                .map(ChangeType::to_string),
        }
    }

    /// `m-1 AWS::EC2::SecurityGroup sg-1 (state 17)`
    pub fn label(&self) -> String {
        let mut out = self.message_id.clone();
        for part in [&self.resource_type, &self.resource_id]
            .into_iter()
            .flatten()
        {
            out.push(' ');
            out.push_str(part);
        }
        if let Some(state) = &self.state_id {
            out.push_str(&format!(" (state {state})"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    #[test]
    fn sns_event_yields_its_message_with_the_message_id() {
        let found = envelopes(&fixture("rdp-opened.sns-event.json"));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].message_id.as_deref(),
            Some("95df01b4-ee98-5cb9-9903-4c221d41eb5e")
        );
        let Ok(ConfigMessage::ItemChange(change)) = &found[0].message else {
            panic!("expected an item change, got {:?}", found[0].message)
        };
        assert_eq!(
            change.configuration_item.resource_id,
            "sg-0123456789abcdef0"
        );
        assert_eq!(
            change.configuration_item.tags["OwnerDL"],
            "platform-team@example.com"
        );
    }

    #[test]
    fn eventbridge_event_yields_its_detail() {
        let bare = fixture("rdp-opened.json");
        let event = serde_json::json!({
            "version": "0", "id": "ev-1", "detail-type": "Config Configuration Item Change",
            "source": "aws.config", "account": "123456789012", "region": "us-east-1",
            "detail": bare,
        });
        let found = envelopes(&event);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message_id.as_deref(), Some("ev-1"));
        assert!(matches!(found[0].message, Ok(ConfigMessage::ItemChange(_))));
    }

    #[test]
    fn a_cloudtrail_api_call_event_is_the_third_shape() {
        let found = envelopes(&fixture("cloudtrail/authorize-ingress-iam-user.json"));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].message_id.as_deref(),
            Some("6f0c4d1e-2a9b-4c3d-8e7f-0a1b2c3d4e5f")
        );
        let Ok(ConfigMessage::ApiCall(call)) = &found[0].message else {
            panic!("{:?}", found[0].message)
        };
        assert_eq!(call.group_ids, ["sg-0123456789abcdef0"]);
        let mut other = fixture("cloudtrail/create-tags.json");
        other["detail"]["eventName"] = "RunInstances".into();
        assert!(matches!(
            envelopes(&other)[0].message,
            Err(ParseError::ApiCall(_))
        ));
    }

    #[test]
    fn eventbridge_event_from_another_source_is_unknown() {
        let event = serde_json::json!({"detail-type": "x", "source": "aws.ec2", "detail": {}});
        assert_eq!(
            envelopes(&event)[0].message.as_ref().unwrap_err(),
            &ParseError::UnknownShape
        );
    }

    #[test]
    fn bare_messages_of_each_type() {
        assert!(matches!(
            parse_message(&fixture("rdp-opened.json")),
            Ok(ConfigMessage::ItemChange(_))
        ));
        let Ok(ConfigMessage::Oversized(o)) = parse_message(&fixture("oversized.json")) else {
            panic!("oversized not recognised")
        };
        let (bucket, key) = o.s3_delivery_summary.bucket_and_key().unwrap();
        assert_eq!(bucket, "config-bucket-123456789012");
        assert!(key.starts_with("AWSLogs/123456789012/Config/"));
        let Ok(ConfigMessage::Other { message_type }) =
            parse_message(&fixture("snapshot-delivery.json"))
        else {
            panic!("snapshot delivery not recognised")
        };
        assert_eq!(message_type, "ConfigurationSnapshotDeliveryCompleted");
        for other in [
            "ComplianceChangeNotification",
            "ConfigRulesEvaluationStarted",
            "ConfigurationHistoryDeliveryCompleted",
            "SomethingNew",
        ] {
            let msg = parse_message(&serde_json::json!({ "messageType": other })).unwrap();
            assert_eq!(msg.message_type(), other);
        }
    }

    #[test]
    fn sns_record_with_non_json_message_is_an_error_not_a_panic() {
        let event = serde_json::json!({"Records": [
            {"Sns": {"MessageId": "m-1", "Message": "{not json"}},
            {"Sns": {"MessageId": "m-2"}},
            {"Sns": {"MessageId": "m-3", "Message": "{\"messageType\": 5}"}},
        ]});
        let found = envelopes(&event);
        assert!(matches!(
            found[0].message,
            Err(ParseError::MessageNotJson(_))
        ));
        assert_eq!(
            found[1].message.as_ref().unwrap_err(),
            &ParseError::MissingSnsMessage
        );
        assert_eq!(
            found[2].message.as_ref().unwrap_err(),
            &ParseError::UnknownShape
        );
    }

    #[test]
    fn an_unreadable_record_keeps_the_start_of_its_body() {
        let long = format!("{{not json {}", "é".repeat(2000));
        let event = serde_json::json!({"Records": [
            {"Sns": {"MessageId": "m-1", "Message": long}},
            {"Sns": {"MessageId": "m-2"}},
            {"Sns": {"MessageId": "m-3", "Message": "{\"messageType\": \"x\"}"}},
        ]});
        let found = envelopes(&event);
        let kept = found[0].excerpt.as_deref().unwrap();
        assert!(long.starts_with(kept));
        assert!(kept.len() <= BODY_EXCERPT_BYTES && kept.len() > BODY_EXCERPT_BYTES - 2);
        assert_eq!(
            found[1].excerpt.as_deref(),
            Some(r#"{"Sns":{"MessageId":"m-2"}}"#)
        );
        assert_eq!(found[2].excerpt, None);
    }

    #[test]
    fn item_change_without_resource_id_is_malformed() {
        let err = parse_message(&serde_json::json!({
            "messageType": ITEM_CHANGE,
            "configurationItem": {"resourceType": "AWS::EC2::SecurityGroup"}
        }))
        .unwrap_err();
        assert!(matches!(err, ParseError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("resourceId"), "{err}");
    }

    #[test]
    fn tags_with_non_string_values_are_kept_as_text() {
        let msg = parse_message(&serde_json::json!({
            "messageType": ITEM_CHANGE,
            "configurationItem": {"resourceType": "t", "resourceId": "r", "tags": {"a": 1, "b": null}}
        }))
        .unwrap();
        let ConfigMessage::ItemChange(c) = msg else {
            panic!()
        };
        assert_eq!(c.configuration_item.tags["a"], "1");
        assert_eq!(c.configuration_item.tags["b"], "");
    }
}
