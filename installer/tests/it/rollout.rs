//! `sgwatch rollout` over several accounts and regions of one moto server (moto acts in the
//! account of the role assumed), each target checked through its own APIs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use sgwatch_tests::cli::logged;
use sgwatch_tests::emulator::{role_arn, Moto, ACCOUNT};
use sgwatch_tests::fixture::{fake_handler_zip, SENDER};
const ACCOUNTS: [&str; 4] = [
    "111111111111",
    "222222222222",
    "333333333333",
    "444444444444",
];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const ROLE: &str = "OrganizationAccountAccessRole";

fn scratch(name: &str) -> PathBuf {
    sgwatch_tests::fixture::scratch(&format!("rollout-{name}"))
}

fn targets_file(dir: &Path, accounts: &[&str]) -> PathBuf {
    let mut yaml = format!(
        "defaults:\n  role_name: {ROLE}\n  regions: [{}]\n  sender: {SENDER}\ntargets:\n",
        REGIONS.join(", ")
    );
    for a in accounts {
        yaml.push_str(&format!("  - account: \"{a}\"\n"));
    }
    let path = dir.join("targets.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn rollout(endpoint: &str, dir: &Path, args: &[&str]) -> (Output, Vec<String>) {
    let mut command = crate::sgwatch_at(endpoint);
    command.arg("rollout").args(args).args(["--output", "json"]);
    logged(command, &dir.join("calls.log"))
}

fn report(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn verify_everywhere(moto: &Moto, accounts: &[&str]) {
    for a in accounts {
        for r in REGIONS {
            let config = moto.sdk_config_in(r, Some(&role_arn(a, ROLE))).await;
            moto.verify_sender(&config, SENDER).await;
        }
    }
}

/// What sgwatch leaves in one account/region: its function, stack, recorder and buckets.
async fn footprint(moto: &Moto, account: &str, region: &str) -> Vec<String> {
    let config = moto
        .sdk_config_in(region, Some(&role_arn(account, ROLE)))
        .await;
    let mut out = Vec::new();
    for f in aws_sdk_lambda::Client::new(&config)
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
    {
        out.push(format!("function {}", f.function_arn().unwrap()));
    }
    for s in aws_sdk_cloudformation::Client::new(&config)
        .list_stacks()
        .send()
        .await
        .unwrap()
        .stack_summaries()
    {
        if s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE") {
            out.push(format!("stack {}", s.stack_id().unwrap()));
        }
    }
    for r in aws_sdk_config::Client::new(&config)
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap()
        .configuration_recorders()
    {
        out.push(format!("recorder {}", r.name().unwrap()));
    }
    let artifacts = format!("sgwatch-artifacts-{account}-{region}");
    if sgwatch_handler::aws::s3_client(&config)
        .head_bucket()
        .bucket(&artifacts)
        .send()
        .await
        .is_ok()
    {
        out.push(format!("bucket {artifacts}"));
    }
    out
}

#[tokio::test]
async fn four_accounts_two_regions_install_once_then_no_changes_then_teardown() {
    let moto = Moto::start();
    verify_everywhere(&moto, &ACCOUNTS).await;
    let dir = scratch("full");
    let zip = fake_handler_zip(&dir);
    let targets = targets_file(&dir, &ACCOUNTS);
    let (targets, zip) = (targets.to_str().unwrap(), zip.to_str().unwrap());

    let started = Instant::now();
    let (out, _) = rollout(
        &moto.endpoint,
        &dir,
        &[
            "--targets",
            targets,
            "--handler-zip",
            zip,
            "--concurrency",
            "8",
            "install",
        ],
    );
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    assert_eq!(r.len(), 8);
    for t in &r {
        assert_eq!(t["result"], "ok", "{t}");
        assert!(!t["changes"].as_array().unwrap().is_empty(), "{t}");
    }
    eprintln!("8-target install rollout: {elapsed:?}");
    for a in ACCOUNTS {
        for region in REGIONS {
            let found = footprint(&moto, a, region).await;
            let function = format!("function arn:aws:lambda:{region}:{a}:function:sgwatch-handler");
            assert!(found.contains(&function), "{a}/{region}: {found:?}");
            assert!(
                found.contains(&"recorder sgwatch".to_owned()),
                "{a}/{region}: {found:?}"
            );
            assert!(
                found.contains(&format!("bucket sgwatch-artifacts-{a}-{region}")),
                "{a}/{region}: {found:?}"
            );
        }
    }

    let (out, calls) = rollout(
        &moto.endpoint,
        &dir,
        &["--targets", targets, "--handler-zip", zip, "install"],
    );
    assert!(out.status.success());
    for t in report(&out) {
        assert_eq!(
            (t["result"].as_str(), t["changes"].as_array().unwrap().len()),
            (Some("ok"), 0),
            "{t}"
        );
    }
    let mutating: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("WRITE") && !c.contains("AssumeRole"))
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");

    let (out, _) = rollout(&moto.endpoint, &dir, &["--targets", targets, "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let (out, _) = rollout(
        &moto.endpoint,
        &dir,
        &["--targets", targets, "--yes", "teardown"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for a in ACCOUNTS {
        for region in REGIONS {
            assert_eq!(
                footprint(&moto, a, region).await,
                Vec::<String>::new(),
                "{a}/{region}"
            );
        }
    }
}

#[tokio::test]
async fn a_failing_target_is_reported_while_the_others_succeed() {
    let moto = Moto::start();
    verify_everywhere(&moto, &ACCOUNTS[..3]).await; // the fourth account's sender is not verified
    let dir = scratch("partial");
    let zip = fake_handler_zip(&dir);
    let targets = targets_file(&dir, &ACCOUNTS);
    let (out, _) = rollout(
        &moto.endpoint,
        &dir,
        &[
            "--targets",
            targets.to_str().unwrap(),
            "--handler-zip",
            zip.to_str().unwrap(),
            "install",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    let failed: Vec<(&str, &str)> = r
        .iter()
        .filter(|t| t["result"] == "failed")
        .map(|t| {
            (
                t["account"].as_str().unwrap(),
                t["region"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [(ACCOUNTS[3], "us-east-1"), (ACCOUNTS[3], "eu-west-1")]
    );
    for t in r.iter().filter(|t| t["result"] == "failed") {
        assert!(
            t["error"].as_str().unwrap().contains("is not verified"),
            "{t}"
        );
    }
    assert_eq!(r.iter().filter(|t| t["result"] == "ok").count(), 6);
    assert!(footprint(&moto, ACCOUNTS[3], "us-east-1").await.is_empty());
}

#[test]
fn bad_targets_files_get_a_clear_error_and_no_aws_call() {
    let dir = scratch("bad");
    let zip = fake_handler_zip(&dir);
    let head =
        "defaults:\n  role_name: R\n  sender: a@example.com\n  regions: [us-east-1]\ntargets:\n";
    let cases = [
        ("defaults: [unclosed\n", "targets.yaml:1"),
        (
            &*format!("{head}  - regions: [us-east-1]\n"),
            "targets.yaml:6: target 1 has no `account`",
        ),
        (
            &*format!("{head}  - account: \"111122223333\"\n    regions: [us-east-1, moon-1]\n"),
            "targets.yaml:7: unknown region \"moon-1\"",
        ),
        (
            &*format!("{head}  - account: \"111122223333\"\n  - account: \"111122223333\"\n"),
            "targets.yaml:7: account 111122223333 in us-east-1 is listed twice",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.join("targets.yaml");
        std::fs::write(&path, text).unwrap();
        let (out, calls) = rollout(
            "http://127.0.0.1:9",
            &dir,
            &[
                "--targets",
                path.to_str().unwrap(),
                "--handler-zip",
                zip.to_str().unwrap(),
                "install",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{text}\n→ {err}");
        assert!(calls.is_empty(), "{calls:?}");
    }
}

#[tokio::test]
async fn the_organization_wrapper_targets_every_active_account() {
    let moto = Moto::start();
    let python = sgwatch_tests::repo_root().join(".venv/bin/python");
    let script = sgwatch_tests::repo_root().join("scripts/org-rollout.py");
    // An organization with two member accounts, made through moto's Organizations API.
    let setup = format!(
        "import boto3\no = boto3.client('organizations', endpoint_url='{e}', region_name='us-east-1')\n\
         o.create_organization(FeatureSet='ALL')\n\
         for n in ['dept-a', 'dept-b', 'closed']:\n    o.create_account(AccountName=n, Email=n + '@corp.example')\n\
         closed = [a['Id'] for a in o.list_accounts()['Accounts'] if a['Name'] == 'closed']\n\
         o.close_account(AccountId=closed[0])\n",
        e = moto.endpoint
    );
    let ok = Command::new(&python)
        .arg("-c")
        .arg(&setup)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new(&python)
        .arg(&script)
        .args([
            "--sender",
            SENDER,
            "--regions",
            "us-east-1,eu-west-1",
            "--endpoint-url",
            &moto.endpoint,
            "--targets-only",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    // The two active members, each a target; the caller's own (management) account, which has no
    // OrganizationAccountAccessRole, and the closed account are not. The file passes sgwatch's
    // checks.
    assert_eq!(yaml.matches("  - account: \"").count(), 2, "{yaml}");
    assert!(!yaml.contains(&format!("\"{}\"", ACCOUNT)), "{yaml}");
    assert!(!yaml.contains("# closed"), "{yaml}");
    assert!(
        yaml.contains("# dept-a") && yaml.contains("# dept-b"),
        "{yaml}"
    );
    let dir = scratch("org");
    let path = dir.join("targets.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let zip = fake_handler_zip(&dir);
    let (out, _) = rollout(
        &moto.endpoint,
        &dir,
        &[
            "--targets",
            path.to_str().unwrap(),
            "--handler-zip",
            zip.to_str().unwrap(),
            "plan",
        ],
    );
    let r = report(&out);
    assert_eq!(r.len(), 4, "2 accounts x 2 regions");
}

/// Runs `code` with the organization wrapper loaded as module `org` (no AWS call).
fn with_org_script(code: &str) -> Output {
    let python = sgwatch_tests::repo_root().join(".venv/bin/python");
    let script = sgwatch_tests::repo_root().join("scripts/org-rollout.py");
    let prelude = format!(
        "import importlib.util, json, sys\n\
         spec = importlib.util.spec_from_file_location('org', {script:?})\n\
         org = importlib.util.module_from_spec(spec)\n\
         spec.loader.exec_module(org)\n",
        script = script.to_str().unwrap()
    );
    Command::new(python)
        .arg("-c")
        .arg(format!("{prelude}{code}"))
        .output()
        .unwrap()
}

/// `ListAccounts` as the Organizations API reference documents it: `State` (ACTIVE, SUSPENDED,
/// PENDING_CLOSURE, CLOSED) beside, and after September 2026 instead of, the retired `Status`.
/// moto returns both fields alike, so the shapes are given here.
#[test]
fn the_organization_wrapper_reads_state_before_status_and_skips_its_own_account() {
    let code = r#"
class Pages:
    def __init__(self, accounts): self.accounts = accounts
    def paginate(self, **_): return [{"Accounts": self.accounts}]
class Org:
    def get_paginator(self, name):
        assert name == "list_accounts", name
        return Pages([
            {"Id": "111111111111", "Name": "state-only-active", "State": "ACTIVE"},
            {"Id": "222222222222", "Name": "closing", "State": "PENDING_CLOSURE", "Status": "ACTIVE"},
            {"Id": "333333333333", "Name": "closed", "State": "CLOSED"},
            {"Id": "444444444444", "Name": "status-only-active", "Status": "ACTIVE"},
            {"Id": "555555555555", "Name": "suspended", "State": "SUSPENDED", "Status": "SUSPENDED"},
            {"Id": "666666666666", "Name": "neither"},
            {"Id": "777777777777", "Name": "management", "State": "ACTIVE", "Status": "ACTIVE"},
        ])
found = org.accounts(Org(), None, own="777777777777")
print(json.dumps({
    "ids": [a["Id"] for a in found],
    "regions": [org.organizations_region(p) for p in ["aws", "aws-cn", "aws-us-gov"]],
}))
"#;
    let out = with_org_script(code);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen["ids"],
        serde_json::json!(["111111111111", "444444444444"]),
        "only ACTIVE accounts (State first, Status when State is absent), not the caller's"
    );
    // Organizations' endpoint for each partition, not us-east-1 everywhere.
    assert_eq!(
        seen["regions"],
        serde_json::json!(["us-east-1", "cn-northwest-1", "us-gov-west-1"])
    );
}

/// A zip whose `bootstrap` is a 64-bit little-endian ELF binary for x86_64 (e_machine 62).
fn x86_64_handler_zip(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("bootstrap-x86_64.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    z.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[18..20].copy_from_slice(&62u16.to_le_bytes());
    z.write_all(&elf).unwrap();
    z.finish().unwrap();
    path
}

#[tokio::test]
async fn the_architecture_is_taken_from_the_targets_file_or_the_flag() {
    let moto = Moto::start();
    let account = ACCOUNTS[0];
    verify_everywhere(&moto, &[account]).await;
    let dir = scratch("arch");
    let zip = x86_64_handler_zip(&dir);
    let plain = targets_file(&dir, &[account]);
    let zip_arg = zip.to_str().unwrap();

    // Without the flag or the key, an x86_64 handler is refused before any AWS call, saying so.
    let (out, calls) = rollout(
        &moto.endpoint,
        &dir,
        &[
            "--targets",
            plain.to_str().unwrap(),
            "--handler-zip",
            zip_arg,
            "plan",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x86_64") && err.contains("--arch"), "{err}");
    assert!(calls.is_empty(), "{calls:?}");
    // With --arch x86_64 the plan goes ahead.
    let (out, _) = rollout(
        &moto.endpoint,
        &dir,
        &[
            "--targets",
            plain.to_str().unwrap(),
            "--handler-zip",
            zip_arg,
            "--arch",
            "x86_64",
            "plan",
        ],
    );
    let r = report(&out);
    assert!(r.iter().all(|t| t["result"] == "ok"), "{r:?}");

    // The targets file's `arch` installs an x86_64 function.
    let text = std::fs::read_to_string(&plain)
        .unwrap()
        .replace("defaults:\n", "defaults:\n  arch: x86_64\n");
    let keyed = dir.join("keyed.yaml");
    std::fs::write(&keyed, text).unwrap();
    let (out, _) = rollout(
        &moto.endpoint,
        &dir,
        &[
            "--targets",
            keyed.to_str().unwrap(),
            "--handler-zip",
            zip_arg,
            "install",
        ],
    );
    let r = report(&out);
    assert!(r.iter().all(|t| t["result"] == "ok"), "{r:?}");
    for region in REGIONS {
        let config = moto
            .sdk_config_in(region, Some(&role_arn(account, ROLE)))
            .await;
        let f = aws_sdk_lambda::Client::new(&config)
            .get_function_configuration()
            .function_name("sgwatch-handler")
            .send()
            .await
            .unwrap();
        let arches: Vec<&str> = f.architectures().iter().map(|a| a.as_str()).collect();
        assert_eq!(arches, ["x86_64"], "{region}");
    }
}
