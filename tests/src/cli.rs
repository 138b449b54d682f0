//! Running the `sgwatch` binary as a user does and reading what it says: the prebuilt programs,
//! commands against a local endpoint with test credentials and nothing of the user's AWS setup,
//! their output and their call log (`SGWATCH_CALL_LOG`), and `sgwatch verify` with AWS Config's
//! part played.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use aws_smithy_types::DateTime;
use serde_json::Value;
use sgwatch_synth::{self as synth, Capture};
use tokio::process::Command;

use crate::emulator::{LambdaEmulator, Moto, ACCOUNT, REGION};
use crate::inventory::stack_output;
use crate::repo_root;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The programs a test runs, all prebuilt (`scripts/demo.sh` builds them).
#[derive(Debug, Clone)]
pub struct Programs {
    /// The installer, `target/debug/sgwatch`.
    pub sgwatch: PathBuf,
    /// The Lambda handler, `target/debug/bootstrap` (x86_64 Linux, like the host).
    pub bootstrap: PathBuf,
    /// cargo-lambda, from the project's virtualenv.
    pub cargo_lambda: PathBuf,
    /// Where the handler zip, the event files and the logs go.
    pub work_dir: PathBuf,
}

impl Programs {
    /// The debug builds in the workspace's target directory and cargo-lambda from `.venv`.
    /// Panics, saying what to run, when one is missing: a story without them proves nothing.
    pub fn locate() -> Programs {
        let root = repo_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let programs = Programs {
            sgwatch: target.join("debug/sgwatch"),
            bootstrap: target.join("debug/bootstrap"),
            cargo_lambda: root.join(".venv/bin/cargo-lambda"),
            work_dir: target.join("sgwatch-demo"),
        };
        let build = "run `cargo test --workspace --no-run` (scripts/demo.sh and `make test` do)";
        for (what, path, hint) in [
            ("the installer", &programs.sgwatch, build),
            ("the handler", &programs.bootstrap, build),
            (
                "cargo-lambda",
                &programs.cargo_lambda,
                "run `scripts/setup.sh` (or `make test`) to install it into .venv",
            ),
        ] {
            assert!(
                path.is_file(),
                "{what} is missing at {}: {hint}",
                path.display()
            );
        }
        programs
    }

    /// The installer and the handler as the workspace's test build made them
    /// (`cargo test --workspace` builds both programs, for the tests that run them), checked to be
    /// newer than every source file of theirs: a test must not run a stale binary. Nothing is
    /// built from inside a test: a build there would replace the binaries, or the test binary
    /// itself, while they run.
    pub fn build() -> Programs {
        let programs = Programs::locate();
        let root = repo_root();
        for (binary, sources) in [
            (
                &programs.sgwatch,
                ["installer/src", "handler/src"].as_slice(),
            ),
            (&programs.bootstrap, ["handler/src"].as_slice()),
        ] {
            let built = modified(binary);
            let mut newest = None;
            for dir in sources {
                newest_source(&root.join(dir), &mut newest);
            }
            if let Some((path, at)) = newest {
                assert!(
                    built >= at,
                    "{} is older than {}: run `cargo test --workspace --no-run` \
                     (`make test` and scripts/demo.sh do)",
                    binary.display(),
                    path.display()
                );
            }
        }
        programs
    }

    /// [`Programs::build`] with an empty work directory of test `name`'s own (not the demo's:
    /// `make demo` may run at the same time).
    pub fn build_for(name: &str) -> Programs {
        let mut programs = Programs::build();
        programs.work_dir = programs
            .work_dir
            .with_file_name(format!("sgwatch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&programs.work_dir);
        std::fs::create_dir_all(&programs.work_dir).unwrap_or_else(|e| {
            panic!("creating {}: {e}", programs.work_dir.display());
        });
        programs
    }

    /// `WORK/bootstrap.zip` with the prebuilt handler named `bootstrap`, as Lambda's custom
    /// runtime wants.
    pub fn handler_zip(&self) -> Result<PathBuf> {
        use std::io::Write;
        use zip::write::SimpleFileOptions;

        let path = self.work_dir.join("bootstrap.zip");
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut zip = zip::ZipWriter::new(file);
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o755);
        // The act function's binary rides in the same zip, as `sgwatch package` builds it.
        let act = self.bootstrap.with_file_name("act");
        for (name, binary) in [("bootstrap", &self.bootstrap), ("act", &act)] {
            let bytes =
                std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
            zip.start_file(name, options)?;
            zip.write_all(&bytes)?;
        }
        zip.finish()?;
        Ok(path)
    }
}

/// One run of an external command.
#[derive(Debug, Clone)]
pub struct CommandRun {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandRun {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Runs the installer against moto with test credentials and nothing from the user's AWS setup.
pub async fn sgwatch(programs: &Programs, moto: &Moto, args: &[&str]) -> Result<CommandRun> {
    sgwatch_as(programs, moto, REGION, None, args).await
}

/// Runs the installer against moto in `region`, as `keys` (another account's, see
/// [`Moto::keys_in`]) or the test credentials.
pub async fn sgwatch_as(
    programs: &Programs,
    moto: &Moto,
    region: &str,
    keys: Option<&crate::emulator::Keys>,
    args: &[&str],
) -> Result<CommandRun> {
    let (mut cmd, shown) = installer(programs, moto, region, keys, args);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("running `{shown}`"))?;
    Ok(CommandRun {
        command: shown,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Starts the installer as [`sgwatch_as`] would run it, its output piped, for a test that acts
/// while it runs; the command line as shown.
pub fn spawn_as(
    programs: &Programs,
    moto: &Moto,
    region: &str,
    keys: Option<&crate::emulator::Keys>,
    args: &[&str],
) -> Result<(tokio::process::Child, String)> {
    let (mut cmd, shown) = installer(programs, moto, region, keys, args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
    Ok((child, shown))
}

/// The installer's command against moto in `region`, as `keys` or the test credentials.
fn installer(
    programs: &Programs,
    moto: &Moto,
    region: &str,
    keys: Option<&crate::emulator::Keys>,
    args: &[&str],
) -> (Command, String) {
    let (command, rest) = args.split_first().expect("a subcommand");
    let mut full: Vec<&str> = vec![command];
    // A command with subcommands (`hub install`) takes the global flags after them.
    let mut rest = rest;
    if matches!(*command, "hub" | "spoke") {
        let (sub, after) = rest.split_first().expect("hub and spoke take a subcommand");
        full.push(sub);
        rest = after;
    }
    full.extend(["--endpoint-url", &moto.endpoint, "--region", region]);
    full.extend(rest);
    let mut cmd = Command::new(&programs.sgwatch);
    cmd.args(&full);
    isolate_aws_env(&mut cmd);
    if let Some(k) = keys {
        cmd.env("AWS_ACCESS_KEY_ID", &k.id)
            .env("AWS_SECRET_ACCESS_KEY", &k.secret)
            .env("AWS_SESSION_TOKEN", &k.token);
    }
    let shown = format!("sgwatch {}", full.join(" "));
    let shown = shown.replace(&programs.work_dir.display().to_string(), "$WORK");
    (cmd, shown)
}

/// Test credentials, and none of the user's profiles, SSO sessions or endpoints.
pub fn isolate_aws_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// The installer `program` pointed at `endpoint` in [`REGION`], with the emulator's test
/// credentials and no profile from the environment; its arguments to follow.
pub fn command(program: &Path, endpoint: &str) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.args(["--endpoint-url", endpoint, "--region", REGION])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE");
    c
}

/// Runs `command` with its call log at `log` (emptied first); its output and the calls it made.
pub fn logged(mut command: std::process::Command, log: &Path) -> (Output, Vec<String>) {
    let _ = std::fs::remove_file(log);
    let out = command
        .env("SGWATCH_CALL_LOG", log)
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    (out, calls(log))
}

/// The calls in the call log at `log`, one a line (`READ Op`, `WRITE Op`, `RETRY Op`); none when
/// there is no log.
pub fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The calls that change something.
pub fn writes(calls: &[String]) -> Vec<&String> {
    calls.iter().filter(|c| c.starts_with("WRITE")).collect()
}

/// Standard output, then standard error, as a person reads them.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A run of `sgwatch verify` with AWS Config's part played.
#[derive(Debug, Clone)]
pub struct Verification {
    pub run: CommandRun,
    /// The throwaway group verify made, as seen while it ran.
    pub group: Option<String>,
    /// The id SNS gave the notification published to the stack's topic.
    pub sns_message_id: Option<String>,
    /// What the handler answered to it.
    pub invocation: Option<Value>,
}

/// The tag `sgwatch verify` marks its group with.
pub const VERIFY_MARKER: &str = "sgwatch:verify";

/// Runs `sgwatch verify ARGS` and plays AWS Config's part while it waits, as moto has no Config:
/// once the marked group has its rule, the notification Config would send is built from the
/// group's state in EC2, published to the stack's topic, and given to the real handler in
/// `emulator` (moto's SNS cannot run the function: its Lambda needs Docker).
pub async fn verify(
    programs: &Programs,
    moto: &Moto,
    emulator: &LambdaEmulator,
    args: &[&str],
) -> Result<Verification> {
    let config = moto.sdk_config(None).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let mut full = vec![
        "verify",
        "--endpoint-url",
        &moto.endpoint,
        "--region",
        REGION,
    ];
    full.extend(args);
    let shown = format!("sgwatch {}", full.join(" "));
    let mut cmd = Command::new(&programs.sgwatch);
    cmd.args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    isolate_aws_env(&mut cmd);
    let child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
    let mut output = tokio::spawn(child.wait_with_output());

    // AWS Config's part: notice the change.
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut group = None;
    while group.is_none() && Instant::now() < deadline && !output.is_finished() {
        let groups = ec2
            .describe_security_groups()
            .send()
            .await
            .context("listing security groups")?;
        group = groups
            .security_groups()
            .iter()
            .find(|g| {
                g.tags().iter().any(|t| t.key() == Some(VERIFY_MARKER))
                    && !g.ip_permissions().is_empty()
            })
            .and_then(|g| g.group_id().map(str::to_owned));
        if group.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (mut sns_message_id, mut invocation) = (None, None);
    if let Some(group) = &group {
        let state = synth::describe(&ec2, group).await?;
        let capture = Capture {
            account: state["ownerId"].as_str().unwrap_or(ACCOUNT).to_owned(),
            region: REGION.to_owned(),
            time: DateTime::from(SystemTime::now()),
        };
        // Created and given its rule within a second: Config records one item, the creation.
        let message = synth::item_change(None, Some(&state), &capture)?;
        let topic = stack_output(&config, "TopicArn").await?;
        let published = aws_sdk_sns::Client::new(&config)
            .publish()
            .topic_arn(&topic)
            .message(message.to_string())
            .send()
            .await
            .with_context(|| format!("publishing to {topic}"))?;
        let id = published.message_id().unwrap_or("verify").to_owned();
        invocation = Some(
            emulator
                .invoke(&config, &synth::sns_event(&message, &id))
                .await?,
        );
        sns_message_id = Some(id);
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, &mut output)
        .await
        .map_err(|_| anyhow!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}"))?
        .context("waiting for sgwatch verify")?
        .with_context(|| format!("running `{shown}`"))?;
    Ok(Verification {
        run: CommandRun {
            command: shown,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        group,
        sns_message_id,
        invocation,
    })
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The most recently modified `.rs` file under `dir`, into `newest`.
fn newest_source(dir: &Path, newest: &mut Option<(PathBuf, std::time::SystemTime)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            newest_source(&path, newest);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let at = modified(&path);
            if newest.as_ref().is_none_or(|(_, n)| at > *n) {
                *newest = Some((path, at));
            }
        }
    }
}
