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
