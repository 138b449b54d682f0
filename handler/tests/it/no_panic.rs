//! No input makes the handler's pure path panic: truncated, mistyped and random JSON, fed
//! through the SNS path exactly as the Lambda receives it.

use proptest::prelude::*;
use serde_json::{json, Value};
use sgwatch_handler::explain::explain;
use sgwatch_handler::settings::Policy;

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn sns(message: &str) -> Value {
    json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m-1", "Message": message}}]})
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "-1",
            "tcp",
            "0.0.0.0/0",
            "Yes",
            "ConfigurationItemChangeNotification",
            "OversizedConfigurationItemChangeNotification",
            "AWS::EC2::SecurityGroup",
            "Configuration.IpPermissions.0"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "messageType",
                    "configurationItem",
                    "configurationItemDiff",
                    "changedProperties",
                    "previousValue",
                    "updatedValue",
                    "ipPermissions",
                    "ipv4Ranges",
                    "cidrIp",
                    "fromPort",
                    "toPort",
                    "ipProtocol",
                    "tags",
                    "resourceType",
                    "resourceId",
                    "configuration",
                    "changeType",
                    "Records",
                    "Sns",
                    "Message",
                    "detail",
                    "source",
                    "configurationItemSummary",
                    "s3DeliverySummary"
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a random path of the fixture with an arbitrary one: mistyped fields.
fn mutate(v: &mut Value, path: &[usize], replacement: Value) {
    let Some((&step, rest)) = path.split_first() else {
        *v = replacement;
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(step % m.len()).unwrap().clone();
            mutate(m.get_mut(&key).unwrap(), rest, replacement);
        }
        Value::Array(a) if !a.is_empty() => {
            let i = step % a.len();
            mutate(&mut a[i], rest, replacement);
        }
        _ => *v = replacement,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn truncated_messages_never_panic(cut in 0usize..4000) {
        let text = fixture_text("rdp-opened.json");
        let cut = cut.min(text.len());
        let truncated: String = text.chars().take(cut).collect();
        let out = explain(&sns(&truncated), &Policy::default());
        prop_assert_eq!(out.len(), 1);
    }

    #[test]
    fn mistyped_fields_never_panic(path in prop::collection::vec(any::<usize>(), 0..8), replacement in arb_json()) {
        let mut v: Value = serde_json::from_str(&fixture_text("rdp-opened.json")).unwrap();
        mutate(&mut v, &path, replacement);
        let out = explain(&sns(&v.to_string()), &Policy::default());
        prop_assert_eq!(out.len(), 1);
    }

    #[test]
    fn random_json_never_panics(v in arb_json()) {
        let _ = explain(&sns(&v.to_string()), &Policy::default());
        let _ = explain(&v, &Policy::default());
    }

    #[test]
    fn random_bytes_never_panic(s in ".{0,200}") {
        let _ = explain(&sns(&s), &Policy::default());
    }
}
