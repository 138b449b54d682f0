//! `docs/iam-installer-policy.json` against what CloudFormation does on the caller's behalf.
//!
//! The installer deploys without a service role, so CloudFormation's resource handlers call AWS
//! with the caller's permissions. Each resource type's schema lists the permissions its create,
//! read, update, delete and list handlers need; cfn-lint ships those schemas, and the project's
//! `.venv` has cfn-lint. Every such permission for every type in `templates/` must be granted by
//! the policy or listed in [`EXCLUDED`] with the property it belongs to and why it is not needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use sgwatch_tests::repo_root;

/// Handler permissions the policy does not grant: (action, the property or handler it serves,
/// why sgwatch does not need it).
const EXCLUDED: &[(&str, &str, &str)] = &[
    // list handlers serve Cloud Control ListResources and resource import, not stack operations.
    ("dynamodb:ListTables", "list handler", "stacks never list"),
    ("events:ListRules", "list handler", "stacks never list"),
    ("iam:ListRoles", "list handler", "stacks never list"),
    (
        "lambda:ListFunctionEventInvokeConfigs",
        "list handler",
        "stacks never list",
    ),
    ("lambda:ListFunctions", "list handler", "stacks never list"),
    ("s3:ListAllMyBuckets", "list handler", "stacks never list"),
    ("sns:ListTopics", "list handler", "stacks never list"),
    ("sqs:ListQueues", "list handler", "stacks never list"),
    ("events:ListEventBuses", "list handler", "stacks never list"),
    (
        "lambda:ListEventSourceMappings",
        "list handler",
        "stacks never list",
    ),
    (
        "scheduler:ListSchedules",
        "list handler",
        "stacks never list",
    ),
    ("kms:ListKeys", "list handler", "stacks never list"),
    (
        "lambda:ListFunctionUrlConfigs",
        "list handler",
        "stacks never list",
    ),
    // AWS::KMS::Key: the link key is HMAC, which KMS cannot rotate, and carries no tags.
    ("kms:TagResource", "Tags", "the link key carries no tags"),
    ("kms:UntagResource", "Tags", "the link key carries no tags"),
    (
        "kms:EnableKeyRotation",
        "EnableKeyRotation",
        "an HMAC key cannot rotate; the template leaves it unset",
    ),
    (
        "kms:DisableKeyRotation",
        "EnableKeyRotation",
        "an HMAC key cannot rotate; the template leaves it unset",
    ),
    // AWS::IAM::Policy: sgwatch attaches its conditional policies to its own roles only.
    ("iam:DeleteGroupPolicy", "Groups", "attached to roles only"),
    ("iam:DeleteUserPolicy", "Users", "attached to roles only"),
    ("iam:GetGroupPolicy", "Groups", "attached to roles only"),
    ("iam:GetUserPolicy", "Users", "attached to roles only"),
    ("iam:PutGroupPolicy", "Groups", "attached to roles only"),
    ("iam:PutUserPolicy", "Users", "attached to roles only"),
    // AWS::DynamoDB::Table
    (
        "dynamodb:AssociateTableReplica",
        "Replicas (global tables)",
        "a single-region table",
    ),
    (
        "dynamodb:CreateTableReplica",
        "Replicas (global tables)",
        "a single-region table",
    ),
    (
        "dynamodb:ImportTable",
        "ImportSourceSpecification",
        "the table starts empty",
    ),
    (
        "dynamodb:DescribeImport",
        "ImportSourceSpecification",
        "the table starts empty",
    ),
    (
        "dynamodb:BatchWriteItem",
        "ImportSourceSpecification",
        "no import fills the table",
    ),
    (
        "dynamodb:PutItem",
        "ImportSourceSpecification",
        "no import fills the table",
    ),
    (
        "dynamodb:GetItem",
        "ImportSourceSpecification",
        "no import fills the table",
    ),
    (
        "dynamodb:DeleteItem",
        "ImportSourceSpecification",
        "no import fills the table",
    ),
    (
        "dynamodb:UpdateItem",
        "ImportSourceSpecification",
        "no import fills the table",
    ),
    (
        "dynamodb:Query",
        "ImportSourceSpecification",
        "no import fills the table",
    ),
    (
        "s3:GetObjectMetadata",
        "ImportSourceSpecification",
        "no import reads S3",
    ),
    (
        "logs:CreateLogStream",
        "ImportSourceSpecification",
        "no import logs",
    ),
    (
        "logs:DescribeLogStreams",
        "ImportSourceSpecification",
        "no import logs",
    ),
    (
        "logs:PutLogEvents",
        "ImportSourceSpecification",
        "no import logs",
    ),
    (
        "dynamodb:PutResourcePolicy",
        "ResourcePolicy",
        "the table has no resource policy",
    ),
    (
        "dynamodb:DeleteResourcePolicy",
        "ResourcePolicy",
        "the table has no resource policy",
    ),
    (
        "dynamodb:UpdateContributorInsights",
        "ContributorInsightsSpecification",
        "not enabled",
    ),
    (
        "dynamodb:EnableKinesisStreamingDestination",
        "KinesisStreamSpecification",
        "no stream",
    ),
    (
        "dynamodb:DisableKinesisStreamingDestination",
        "KinesisStreamSpecification",
        "no stream",
    ),
    (
        "dynamodb:UpdateKinesisStreamingDestination",
        "KinesisStreamSpecification",
        "no stream",
    ),
    (
        "kinesis:DescribeStream",
        "KinesisStreamSpecification",
        "no stream",
    ),
    (
        "kinesis:PutRecords",
        "KinesisStreamSpecification",
        "no stream",
    ),
    (
        "iam:CreateServiceLinkedRole",
        "Replicas / KMS / auto scaling",
        "none of them is used",
    ),
    // KMS: SSESpecification.KMSMasterKeyId (table), KmsKeyArn (function), KmsKeyId (log group).
    (
        "kms:CreateGrant",
        "KMSMasterKeyId / KmsKeyArn",
        "AWS owned or managed keys only",
    ),
    (
        "kms:Decrypt",
        "KMSMasterKeyId / KmsKeyArn",
        "AWS owned or managed keys only",
    ),
    (
        "kms:Encrypt",
        "KMSMasterKeyId / KmsKeyArn",
        "AWS owned or managed keys only",
    ),
    ("kms:GenerateDataKey", "KmsKeyArn", "AWS managed key only"),
    (
        "kms:ListAliases",
        "SSESpecification.KMSMasterKeyId",
        "AWS managed key only",
    ),
    (
        "kms:RevokeGrant",
        "SSESpecification.KMSMasterKeyId",
        "AWS managed key only",
    ),
    // AWS::Events::EventBus: KmsKeyIdentifier.
    (
        "kms:GenerateDataKeyWithoutPlaintext",
        "KmsKeyIdentifier",
        "the hub bus uses an AWS owned key",
    ),
    (
        "kms:ReEncrypt",
        "KmsKeyIdentifier",
        "the hub bus uses an AWS owned key",
    ),
    (
        "kms:ReEncryptFrom",
        "KmsKeyIdentifier",
        "the hub bus uses an AWS owned key",
    ),
    (
        "kms:ReEncryptTo",
        "KmsKeyIdentifier",
        "the hub bus uses an AWS owned key",
    ),
    // AWS::IAM::Role
    (
        "iam:PutRolePermissionsBoundary",
        "PermissionsBoundary",
        "no boundary is set",
    ),
    (
        "iam:DeleteRolePermissionsBoundary",
        "PermissionsBoundary",
        "no boundary is set",
    ),
    // AWS::Lambda::Function
    (
        "ec2:DescribeSubnets",
        "VpcConfig",
        "the function runs outside any VPC",
    ),
    (
        "ec2:DescribeNetworkInterfaces",
        "VpcConfig",
        "the function runs outside any VPC",
    ),
    (
        "elasticfilesystem:DescribeMountTargets",
        "FileSystemConfigs",
        "no file system",
    ),
    (
        "s3files:ListMountTargets",
        "FileSystemConfigs",
        "no file system",
    ),
    ("lambda:GetLayerVersion", "Layers", "no layers"),
    (
        "lambda:GetCodeSigningConfig",
        "CodeSigningConfigArn",
        "no code signing",
    ),
    (
        "lambda:PutFunctionCodeSigningConfig",
        "CodeSigningConfigArn",
        "no code signing",
    ),
    (
        "lambda:DeleteFunctionCodeSigningConfig",
        "CodeSigningConfigArn",
        "no code signing",
    ),
    (
        "lambda:PutFunctionConcurrency",
        "ReservedConcurrentExecutions",
        "not reserved",
    ),
    (
        "lambda:DeleteFunctionConcurrency",
        "ReservedConcurrentExecutions",
        "not reserved",
    ),
    (
        "lambda:PutFunctionRecursionConfig",
        "RecursiveLoop",
        "the default is kept",
    ),
    (
        "lambda:PutFunctionScalingConfig",
        "FunctionScalingConfig",
        "not set",
    ),
    (
        "lambda:PutRuntimeManagementConfig",
        "RuntimeManagementConfig",
        "the default is kept",
    ),
    (
        "lambda:PassCapacityProvider",
        "CapacityProviderConfig",
        "no capacity provider",
    ),
    (
        "lambda:AssociateRuntimeAlias",
        "CapacityProviderConfig",
        "no capacity provider",
    ),
    (
        "lambda:PublishVersion",
        "AutoPublishAlias / SnapStart",
        "$LATEST is invoked",
    ),
    // AWS::Logs::LogGroup
    ("logs:AssociateKmsKey", "KmsKeyId", "no customer key"),
    ("logs:DisassociateKmsKey", "KmsKeyId", "no customer key"),
    (
        "logs:PutDataProtectionPolicy",
        "DataProtectionPolicy",
        "none",
    ),
    (
        "logs:DeleteDataProtectionPolicy",
        "DataProtectionPolicy",
        "none",
    ),
    ("logs:PutIndexPolicy", "FieldIndexPolicies", "none"),
    ("logs:DeleteIndexPolicy", "FieldIndexPolicies", "none"),
    ("logs:PutResourcePolicy", "ResourcePolicyDocument", "none"),
    (
        "logs:DeleteResourcePolicy",
        "ResourcePolicyDocument",
        "none",
    ),
    (
        "logs:DeleteRetentionPolicy",
        "RetentionInDays",
        "always set, never removed",
    ),
    (
        "logs:CreateLogDelivery",
        "BearerTokenAuthenticationEnabled / deliveries",
        "none",
    ),
    (
        "logs:PutBearerTokenAuthentication",
        "BearerTokenAuthenticationEnabled",
        "not set",
    ),
    (
        "logs:PutLogGroupDeletionProtection",
        "DeletionProtectionEnabled",
        "not set",
    ),
    (
        "firehose:TagDeliveryStream",
        "log deliveries to Firehose",
        "none",
    ),
    ("s3:REST.PUT.OBJECT", "log deliveries to S3", "none"),
    // AWS::S3::Bucket (the Config bucket sets encryption, versioning, public access block and
    // ownership controls; nothing else)
    (
        "s3:PutAccelerateConfiguration",
        "AccelerateConfiguration",
        "not set",
    ),
    (
        "s3:PutAnalyticsConfiguration",
        "AnalyticsConfigurations",
        "not set",
    ),
    (
        "s3:DeleteBucketAnalyticsConfiguration",
        "AnalyticsConfigurations",
        "not set",
    ),
    ("s3:PutBucketAbac", "AbacStatus", "not set"),
    (
        "s3:PutBucketAcl",
        "AccessControl",
        "ACLs are disabled (BucketOwnerEnforced)",
    ),
    (
        "s3:PutObjectAcl",
        "AccessControl",
        "ACLs are disabled (BucketOwnerEnforced)",
    ),
    ("s3:PutBucketCORS", "CorsConfiguration", "not set"),
    ("s3:DeleteBucketCors", "CorsConfiguration", "not set"),
    (
        "s3:DeleteBucketEncryption",
        "BucketEncryption",
        "always set, never removed",
    ),
    (
        "s3:PutBucketLogging",
        "LoggingConfiguration",
        "not set (see the checkov skip)",
    ),
    (
        "s3:PutBucketNotification",
        "NotificationConfiguration",
        "not set",
    ),
    (
        "s3:PutBucketObjectLockConfiguration",
        "ObjectLockConfiguration",
        "not set",
    ),
    (
        "s3:PutObjectLockConfiguration",
        "ObjectLockConfiguration",
        "not set",
    ),
    (
        "s3:PutBucketReplication",
        "ReplicationConfiguration",
        "not set",
    ),
    (
        "s3:PutReplicationConfiguration",
        "ReplicationConfiguration",
        "not set",
    ),
    (
        "s3:DeleteBucketReplication",
        "ReplicationConfiguration",
        "not set",
    ),
    ("s3:PutBucketWebsite", "WebsiteConfiguration", "not set"),
    ("s3:DeleteBucketWebsite", "WebsiteConfiguration", "not set"),
    (
        "s3:PutIntelligentTieringConfiguration",
        "IntelligentTieringConfigurations",
        "not set",
    ),
    (
        "s3:PutInventoryConfiguration",
        "InventoryConfigurations",
        "not set",
    ),
    (
        "s3:PutLifecycleConfiguration",
        "LifecycleConfiguration",
        "not set",
    ),
    (
        "s3:DeleteBucketLifecycle",
        "LifecycleConfiguration",
        "not set",
    ),
    (
        "s3:PutMetricsConfiguration",
        "MetricsConfigurations",
        "not set",
    ),
    (
        "s3:DeleteBucketMetricsConfiguration",
        "MetricsConfigurations",
        "not set",
    ),
    (
        "s3:CreateBucketMetadataTableConfiguration",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3:DeleteBucketMetadataTableConfiguration",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3:UpdateBucketMetadataAnnotationTableConfiguration",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3:UpdateBucketMetadataInventoryTableConfiguration",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3:UpdateBucketMetadataJournalTableConfiguration",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3tables:CreateNamespace",
        "MetadataConfiguration",
        "not set",
    ),
    ("s3tables:CreateTable", "MetadataConfiguration", "not set"),
    (
        "s3tables:CreateTableBucket",
        "MetadataConfiguration",
        "not set",
    ),
    ("s3tables:GetTable", "MetadataConfiguration", "not set"),
    (
        "s3tables:GetTableMetadataLocation",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3tables:PutTableBucketPolicy",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3tables:PutTableEncryption",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3tables:PutTablePolicy",
        "MetadataConfiguration",
        "not set",
    ),
    (
        "s3tables:UpdateTableMetadataLocation",
        "MetadataConfiguration",
        "not set",
    ),
    // AWS::SNS::Topic
    (
        "sns:PutDataProtectionPolicy",
        "DataProtectionPolicy",
        "none",
    ),
];

/// cfn-lint's CloudFormation resource schemas in the project's virtualenv.
fn schemas_dir() -> PathBuf {
    let lib = repo_root().join(".venv/lib");
    let found = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `make test` (scripts/setup.sh installs cfn-lint)",
                lib.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/cfnlint/data/schemas"))
        .find(|p| p.join("providers/us-east-1.json").is_file());
    found.unwrap_or_else(|| {
        panic!(
            "no cfnlint/data/schemas under {}: cfn-lint is missing from the project's .venv \
             (scripts/setup.sh installs it)",
            lib.display()
        )
    })
}

fn read_json(path: &std::path::Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every resource type the templates use.
fn template_types() -> BTreeSet<String> {
    let dir = repo_root().join("templates");
    let mut types = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let t: Value = serde_yaml::from_str(&text).unwrap();
        for r in t["Resources"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            types.insert(r["Type"].as_str().unwrap().to_owned());
        }
    }
    assert!(types.len() >= 10, "templates' types: {types:?}");
    types
}

/// (type, handler) for each permission the types' handlers list.
fn handler_permissions() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let dir = schemas_dir();
    let providers = read_json(&dir.join("providers/us-east-1.json"));
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for t in template_types() {
        let id = providers[&t]
            .as_str()
            .unwrap_or_else(|| panic!("cfn-lint has no schema for {t}"));
        let schema = read_json(&dir.join(format!("resources/{id}.json")));
        let handlers = schema["handlers"]
            .as_object()
            .unwrap_or_else(|| panic!("the schema of {t} lists no handlers"));
        for (handler, h) in handlers {
            for p in h["permissions"].as_array().into_iter().flatten() {
                out.entry(p.as_str().unwrap().to_owned())
                    .or_default()
                    .insert((t.clone(), handler.clone()));
            }
        }
    }
    out
}

/// The policy's Allow actions.
fn policy_actions() -> Vec<String> {
    let policy = read_json(&repo_root().join("docs/iam-installer-policy.json"));
    let mut actions = Vec::new();
    for s in policy["Statement"].as_array().unwrap() {
        assert_eq!(s["Effect"], "Allow", "{s}");
        match &s["Action"] {
            Value::String(a) => actions.push(a.clone()),
            Value::Array(list) => {
                actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned()))
            }
            other => panic!("Action {other}"),
        }
    }
    actions
}

/// IAM's action match: case-insensitive, `*` any run of characters, `?` one character.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], a) || (!a.is_empty() && go(p, &a[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => go(&p[1..], &a[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

#[test]
fn iam_action_matching_is_as_iam_evaluates_it() {
    assert!(action_matches("s3:Get*", "s3:GetBucketTagging"));
    assert!(action_matches("S3:getobject", "s3:GetObject"));
    assert!(action_matches("sqs:?etQueueUrl", "sqs:GetQueueUrl"));
    assert!(!action_matches("s3:Get*", "s3:PutBucketTagging"));
    assert!(!action_matches("s3:GetObject", "s3:GetObjectVersion"));
}

#[test]
fn the_installer_policy_grants_every_permission_cloudformation_uses_for_our_types() {
    let granted = policy_actions();
    for a in &granted {
        // No "*" (or "service:*"); narrower wildcards only where the policy already used them
        // (it uses none today): the policy lists what is needed.
        assert!(
            !a.contains('*') && !a.contains('?'),
            "wildcard action {a} in the installer policy"
        );
    }
    let excluded: BTreeMap<&str, (&str, &str)> = EXCLUDED
        .iter()
        .map(|(a, p, why)| (*a, (*p, *why)))
        .collect();
    assert_eq!(
        excluded.len(),
        EXCLUDED.len(),
        "an action is excluded twice"
    );

    let needed = handler_permissions();
    let mut missing = Vec::new();
    for (permission, users) in &needed {
        let is_granted = granted.iter().any(|g| action_matches(g, permission));
        match (is_granted, excluded.get(permission.as_str())) {
            (true, Some(_)) => missing.push(format!("{permission}: granted and excluded")),
            (false, None) => missing.push(format!("{permission} (needed by {users:?})")),
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "grant these in docs/iam-installer-policy.json, or exclude them with the property they \
         serve and why sgwatch does not set it:\n  {}",
        missing.join("\n  ")
    );
    // An exclusion no schema asks for any more is stale.
    let stale: Vec<_> = excluded
        .keys()
        .filter(|a| !needed.contains_key(**a))
        .collect();
    assert!(
        stale.is_empty(),
        "excluded but no handler needs them: {stale:?}"
    );
    // The calls the first install would have failed without.
    for a in [
        "s3:PutBucketTagging",
        "lambda:GetFunctionCodeSigningConfig",
        "lambda:GetRuntimeManagementConfig",
        "logs:ListTagsForResource",
        "sqs:GetQueueUrl",
        "sqs:ListQueueTags",
        "iam:ListRolePolicies",
    ] {
        assert!(granted.iter().any(|g| g == a), "{a}");
    }
}

#[test]
fn the_installer_policy_is_partition_neutral_and_passes_adopted_recorder_roles_to_config_only() {
    let policy = read_json(&repo_root().join("docs/iam-installer-policy.json"));
    let text = policy.to_string();
    assert!(!text.contains("arn:aws:"), "a partition named in {text}");
    let pass = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "PassAdoptedRecorderRoleToConfig")
        .expect("a PassRole statement for --extend-recorder");
    assert_eq!(pass["Action"], "iam:PassRole");
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"],
        "config.amazonaws.com"
    );
}
