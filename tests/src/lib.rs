//! The harness for sgwatch's integration tests: a private moto server per test, SDK configuration
//! pointed at it, and the SES mail it has accepted.
//!
//! moto runs from the project's virtualenv (`scripts/setup.sh`, run by `make test`). When it is
//! missing the harness panics and says so: a test that passes without its server proves nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use serde::Deserialize;

pub mod capture;
pub mod samples;
pub mod story;

/// The region tests run in unless they ask for another.
pub const REGION: &str = "us-east-1";
/// The account moto acts in for the static test credentials.
pub const ACCOUNT: &str = "123456789012";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const MESSAGES_PATH: &str = "/_sgwatch/ses/messages";
const SETUP_HINT: &str =
    "run `make test` (or `scripts/setup.sh`) to create the virtualenv with moto";

/// A moto server of this test's own, on a free loopback port; stopped when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, for `endpoint_url`.
    pub endpoint: String,
    child: Child,
    // moto.py exits when this closes, so the server dies with the test process even on SIGKILL.
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// An email moto's SES has accepted (SES v2 `SendEmail`, v1 `SendEmail` or raw).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SentEmail {
    pub id: String,
    pub source: String,
    /// To, Cc and Bcc together.
    pub destinations: Vec<String>,
    pub subject: Option<String>,
    /// The text part (`None` for SES v1 simple mail, where moto keeps one unnamed part).
    pub text: Option<String>,
    pub html: Option<String>,
    pub region: String,
    pub account: String,
}

impl Moto {
    /// Starts `scripts/moto.py` and waits until it serves. Panics, saying what to do, when the
    /// virtualenv is missing or moto does not come up within 30 s.
    pub fn start() -> Moto {
        let root = repo_root();
        let python = root.join(".venv/bin/python");
        let script = root.join("scripts/moto.py");
        assert!(
            python.exists(),
            "{} is missing: {SETUP_HINT}",
            python.display()
        );
        assert!(script.exists(), "{} is missing", script.display());

        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--watch-stdin")
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP_HINT}", python.display()));

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });

        // Read stdout on a thread so the wait for READY can time out; keep draining it after.
        let out_pipe = child.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(endpoint) = line.strip_prefix("READY ") {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(endpoint.trim().to_string());
                    }
                }
            }
        });

        let stdin = child.stdin.take();
        let mut moto = Moto {
            endpoint: String::new(),
            child,
            stdin,
            stderr,
        };
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(endpoint) => moto.endpoint = endpoint,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = moto.child.wait().map(|s| s.to_string()).unwrap_or_default();
                panic!(
                    "moto exited before serving ({status}); {SETUP_HINT}.\nIts stderr:\n{}",
                    moto.log()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "moto did not print READY within {READY_TIMEOUT:?}.\nIts stderr:\n{}",
                moto.log()
            ),
        }
        moto
    }

    /// What moto has written to stderr so far (tracebacks of failed requests), for test messages.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// SDK configuration for this server in [`REGION`]: static test credentials, or with
    /// `role_arn` the credentials of `sts:AssumeRole` into it (moto then acts in that role's
    /// account).
    pub async fn sdk_config(&self, role_arn: Option<&str>) -> SdkConfig {
        self.sdk_config_in(REGION, role_arn).await
    }

    /// Like [`Moto::sdk_config`], in `region`.
    pub async fn sdk_config_in(&self, region: &str, role_arn: Option<&str>) -> SdkConfig {
        let loader = || {
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(region.to_string()))
                .endpoint_url(&self.endpoint)
                .http_client(sgwatch_handler::aws::http_client())
        };
        let test_credentials = Credentials::new("testing", "testing", None, None, "sgwatch-tests");
        let base = loader().credentials_provider(test_credentials).load().await;
        match role_arn {
            None => base,
            Some(role_arn) => {
                let assumed = AssumeRoleProvider::builder(role_arn)
                    .session_name("sgwatch-tests")
                    .configure(&base)
                    .build()
                    .await;
                loader().credentials_provider(assumed).load().await
            }
        }
    }

    /// Creates `address` as an SES identity in the account and region of `config`; moto treats it
    /// as verified, so `SendEmail` from it then works.
    pub async fn verify_sender(&self, config: &SdkConfig, address: &str) {
        aws_sdk_sesv2::Client::new(config)
            .create_email_identity()
            .email_identity(address)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating SES identity {address}: {e:?}"));
    }

    /// Every email moto's SES has accepted so far, in all accounts and regions.
    pub async fn ses_messages(&self) -> Vec<SentEmail> {
        let endpoint = self.endpoint.clone();
        let body = tokio::task::spawn_blocking(move || http_get(&endpoint, MESSAGES_PATH))
            .await
            .expect("the HTTP GET task panicked")
            .unwrap_or_else(|e| panic!("GET {MESSAGES_PATH} from moto: {e}"));
        serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("moto's {MESSAGES_PATH} is not a message list ({e}): {body}")
        })
    }

    /// Waits up to `timeout` until moto has accepted at least `count` emails (they come from a
    /// handler running in another process), then returns them all. Panics on timeout.
    pub async fn wait_for_ses_messages(&self, count: usize, timeout: Duration) -> Vec<SentEmail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.ses_messages().await;
            if messages.len() >= count {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {count} email(s) within {timeout:?}, moto has {}: {messages:#?}",
                    messages.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Moto {
    /// From now on, moto checks every request's signature and IAM permissions (as with
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0`): only credentials of IAM users made in it work, and only
    /// for what their policies allow. Make those users first, with the test credentials.
    pub async fn enforce_iam(&self) {
        let endpoint = self.endpoint.clone();
        tokio::task::spawn_blocking(move || http_post(&endpoint, "/moto-api/reset-auth", "0"))
            .await
            .expect("the HTTP POST task panicked")
            .unwrap_or_else(|e| panic!("enabling IAM enforcement in moto: {e}"));
    }
}

/// A plain HTTP/1.0 POST of a text body, returning the body of a 200.
fn http_post(endpoint: &str, path: &str, body: &str) -> std::io::Result<String> {
    let authority = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, answer) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!("{status}: {answer}")));
    }
    Ok(answer.to_string())
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}

/// The JSON fixture `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = repo_root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The ARN of role `name` in `account`, for [`Moto::sdk_config`].
pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// A plain HTTP/1.0 GET of `path` on `endpoint` (`http://HOST:PORT`), returning the body of a 200.
fn http_get(endpoint: &str, path: &str) -> std::io::Result<String> {
    let authority = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!("{status}: {body}")));
    }
    Ok(body.to_string())
}

/// A stand-in handler zip in `dir`: an executable `bootstrap` script. moto's Lambda cannot run
/// code, so for installer tests only the zip's shape matters.
pub fn fake_handler_zip(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("bootstrap.zip");
    let file =
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let mut z = zip::ZipWriter::new(file);
    z.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .expect("a zip entry");
    z.write_all(b"#!/bin/sh\n").expect("the zip entry's bytes");
    z.finish().expect("a finished zip");
    path
}

/// Creates the idempotency table with the stack's key (`pk`, a string), for the handler's claims.
pub async fn idempotency_table(config: &aws_config::SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// `scripts/faultproxy.py` (from the project's `.venv`) between the code under test and `target`,
/// with the proxy's own flags; stopped when dropped.
pub struct FaultProxy {
    pub endpoint: String,
    child: std::process::Child,
}

impl FaultProxy {
    pub fn start(target: &str, args: &[&str]) -> FaultProxy {
        use std::io::BufRead;
        let root = repo_root();
        let mut child = std::process::Command::new(root.join(".venv/bin/python"))
            .arg(root.join("scripts/faultproxy.py"))
            .args(["--target", target])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the fault proxy needs the project's .venv: run `make test`");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("the proxy's stdout"))
            .read_line(&mut line)
            .expect("the proxy's READY line");
        let endpoint = line
            .trim()
            .strip_prefix("READY ")
            .expect("the fault proxy did not start")
            .to_owned();
        FaultProxy { endpoint, child }
    }

    /// What the proxy did so far (`GET /_faults/stats`).
    pub fn stats(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let authority = self.endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(authority).expect("the proxy's port");
        write!(
            s,
            "GET /_faults/stats HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )
        .expect("a stats request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("the stats answer");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats {e}: {text}"))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
