//! The installer's own IAM policy document grants no wildcard action.

#[test]
fn installer_policy_has_no_wildcard_actions() {
    let path = format!(
        "{}/../docs/iam-installer-policy.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    assert!(!statements.is_empty());
    for s in statements {
        assert_eq!(s["Effect"], "Allow");
        let actions: Vec<&str> = match &s["Action"] {
            serde_json::Value::String(a) => vec![a.as_str()],
            v => v
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect(),
        };
        for a in actions {
            assert!(!a.contains('*'), "{} grants {a}", s["Sid"]);
            assert!(
                a.split_once(':')
                    .is_some_and(|(svc, op)| !svc.is_empty() && !op.is_empty()),
                "{a}"
            );
        }
    }
}

/// Actions that return a secret's value (or decrypt one): none may be granted on every resource.
/// `ssm:GetParameter` on `*` would decrypt every parameter the AWS managed key `aws/ssm`
/// protects; status needs only a parameter's name and type (`ssm:DescribeParameters`).
#[test]
fn installer_policy_reads_no_secret_value_on_every_resource() {
    const READS_VALUES: &[&str] = &[
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
        "ssm:GetParameterHistory",
        "kms:Decrypt",
        "secretsmanager:GetSecretValue",
    ];
    let path = format!(
        "{}/../docs/iam-installer-policy.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut grants_describe = false;
    for s in doc["Statement"].as_array().unwrap() {
        let actions = list(&s["Action"]);
        grants_describe |= actions.iter().any(|a| a == "ssm:DescribeParameters");
        let everywhere = list(&s["Resource"]).iter().any(|r| r == "*");
        for a in actions {
            assert!(
                !(everywhere && READS_VALUES.contains(&a.as_str())),
                "statement {} grants {a} on every resource",
                s["Sid"]
            );
        }
    }
    assert!(
        grants_describe,
        "status looks the destinations' parameters up with ssm:DescribeParameters"
    );
}
