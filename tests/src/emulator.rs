//! The local stand-ins for AWS the tests run against: a private moto server per test and SDK
//! configuration pointed at it, the SES mail it has accepted, IAM users acting in it, the fault
//! proxy in front of it, and cargo-lambda's Runtime API emulator running the real handler.
//!
//! moto runs from the project's virtualenv (`scripts/setup.sh`, run by `make test`). When it is
//! missing the harness panics and says so: a test that passes without its server proves nothing.
//!
//! The servers come from one pool per test process (`scripts/moto.py --pool`): a Python process
//! that imports moto and prepares the services sgwatch calls once, and forks a server on each
//! [`Moto::start`]. A fork serves within milliseconds; a process of its own spent about a second
//! of CPU before serving, and nearly as much again on the first request to each service.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use aws_smithy_types::Blob;
use serde::Deserialize;
use serde_json::Value;

use crate::cli::Programs;
use crate::fixture::{idempotency_table, SENDER, TABLE};
use crate::repo_root;

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
    /// The server's process id in the pool, for `stop PID`.
    pid: u32,
    /// Where the server writes its stderr (and stdout), for [`Moto::log`].
    log: PathBuf,
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

/// Temporary credentials of a role assumed in another account.
#[derive(Debug, Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
    pub token: String,
}

/// An access key of an IAM user made in moto.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl Moto {
    /// Starts a server from this test process's pool of `scripts/moto.py` and waits until it
    /// serves. Panics, saying what to do, when the virtualenv is missing or moto does not come up
    /// within 30 s.
    pub fn start() -> Moto {
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let log = std::env::temp_dir().join(format!(
            "sgwatch-moto-{}-{}.log",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        let pool = POOL.get_or_init(|| Mutex::new(Pool::start()));
        // A start that panicked (the pool gone, or too slow) leaves the lock poisoned: its answer
        // may still come and would be taken for the next one's.
        let (pid, endpoint) = pool
            .lock()
            .unwrap_or_else(|_| {
                panic!("moto's pool failed to start a server earlier in this test process")
            })
            .serve(&log);
        Moto { endpoint, pid, log }
    }

    /// A server ready for the handler to send: [`SENDER`] verified and the delivery ledger's
    /// table [`TABLE`] made; with the SDK configuration of the test credentials.
    pub async fn ready_to_send() -> (Moto, SdkConfig) {
        let moto = Moto::start();
        let config = moto.sdk_config(None).await;
        moto.verify_sender(&config, SENDER).await;
        idempotency_table(&config, TABLE).await;
        (moto, config)
    }

    /// What moto has written to stderr so far (tracebacks of failed requests), for test messages.
    pub fn log(&self) -> String {
        match std::fs::read(&self.log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("({}: {e})", self.log.display()),
        }
    }

    /// SDK configuration for this server in [`REGION`]: static test credentials, or with
    /// `role_arn` the credentials of `sts:AssumeRole` into it (moto then acts in that role's
    /// account).
    pub async fn sdk_config(&self, role_arn: Option<&str>) -> SdkConfig {
        self.sdk_config_in(REGION, role_arn).await
    }

    /// Like [`Moto::sdk_config`], in `region`.
    pub async fn sdk_config_in(&self, region: &str, role_arn: Option<&str>) -> SdkConfig {
        let test_credentials = Credentials::new("testing", "testing", None, None, "sgwatch-tests");
        let base = self
            .loader(region)
            .credentials_provider(test_credentials)
            .load()
            .await;
        match role_arn {
            None => base,
            Some(role_arn) => {
                let assumed = AssumeRoleProvider::builder(role_arn)
                    .session_name("sgwatch-tests")
                    .configure(&base)
                    .build()
                    .await;
                self.loader(region)
                    .credentials_provider(assumed)
                    .load()
                    .await
            }
        }
    }

    /// Credentials in `account`: moto acts in the account of a role assumed there.
    pub async fn keys_in(&self, account: &str) -> Keys {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config(None).await);
        let assumed = sts
            .assume_role()
            .role_arn(role_arn(account, "sgwatch-tests"))
            .role_session_name("sgwatch-tests")
            .send()
            .await
            .unwrap_or_else(|e| panic!("AssumeRole into {account}: {e:?}"));
        let c = assumed
            .credentials()
            .expect("AssumeRole returns credentials");
        Keys {
            id: c.access_key_id().to_owned(),
            secret: c.secret_access_key().to_owned(),
            token: c.session_token().to_owned(),
        }
    }

    /// SDK configuration for this server in `account` and `region` (see [`Moto::keys_in`]).
    pub async fn sdk_config_in_account(&self, account: &str, region: &str) -> SdkConfig {
        let k = self.keys_in(account).await;
        self.loader(region)
            .credentials_provider(Credentials::new(
                &k.id,
                &k.secret,
                Some(k.token.clone()),
                None,
                "assumed",
            ))
            .load()
            .await
    }

    /// SDK configuration for this server in [`REGION`], acting with `key` (see [`iam_user`]).
    pub async fn sdk_config_as(&self, key: &AccessKey) -> SdkConfig {
        self.loader(REGION)
            .credentials_provider(Credentials::new(
                &key.id,
                &key.secret,
                None,
                None,
                "iam-user",
            ))
            .load()
            .await
    }

    fn loader(&self, region: &str) -> ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .http_client(sgwatch_handler::aws::http_client())
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

    /// An EventBridge Scheduler call (`GET /schedules` lists them, `GET /schedules/NAME` gets
    /// one), as its JSON answer: the tests build no Scheduler client for these calls.
    pub async fn scheduler_get(&self, path: &str) -> serde_json::Value {
        let endpoint = self.endpoint.clone();
        let head = format!(
            "GET {path} HTTP/1.0\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=test/20260101/{REGION}/scheduler/aws4_request, SignedHeaders=host, \
             Signature=0\r\n"
        );
        let path = path.to_owned();
        let body = tokio::task::spawn_blocking(move || http(&endpoint, &head, ""))
            .await
            .expect("the HTTP GET task panicked")
            .unwrap_or_else(|e| panic!("Scheduler GET {path} from moto: {e}"));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("moto's Scheduler answer is not JSON ({e}): {body}"))
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

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(pool) = POOL.get() {
            // Poisoned or not, the pool reads the line; a server it no longer knows is ignored.
            let mut pool = pool.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = writeln!(pool.stdin, "stop {}", self.pid).and_then(|()| pool.stdin.flush());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `scripts/moto.py --pool`: the servers of this test process are forks of it (see the module
/// header).
struct Pool {
    child: Child,
    /// Commands, one a line: `start LOGFILE`, `stop PID`. moto.py stops every server and exits
    /// when this closes, so no server outlives the test process, even one killed by SIGKILL.
    stdin: ChildStdin,
    /// The pool's stdout, a line at a time: `READY PID ENDPOINT` (or `FAILED PID REASON`) once
    /// per `start`. Read on a thread so that the wait can time out.
    lines: mpsc::Receiver<String>,
    /// The pool's own stderr (each server writes its own to its log file).
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// The pool, started by the first [`Moto::start`]; its lock makes one start at a time, so that
/// each `start` gets the next line.
static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();

impl Pool {
    fn start() -> Pool {
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
            .arg("--pool")
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

        let out_pipe = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let stdin = child.stdin.take().expect("stdin is piped");
        Pool {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// A new server writing its stderr to `log`: its process id and endpoint.
    fn serve(&mut self, log: &Path) -> (u32, String) {
        let sent =
            writeln!(self.stdin, "start {}", log.display()).and_then(|()| self.stdin.flush());
        let line = match sent {
            Ok(()) => self.lines.recv_timeout(READY_TIMEOUT),
            Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
        };
        let line = match line {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                panic!(
                    "moto's pool exited before serving ({status}); {SETUP_HINT}.\nIts stderr:\n{}",
                    self.log()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "moto's pool did not start a server within {READY_TIMEOUT:?}.\nIts stderr:\n{}\n\
                 The server's:\n{}",
                self.log(),
                read_log(log)
            ),
        };
        let ready = line.strip_prefix("READY ").and_then(|rest| {
            let (pid, endpoint) = rest.trim().split_once(' ')?;
            Some((pid.parse().ok()?, endpoint.to_owned()))
        });
        ready.unwrap_or_else(|| {
            panic!(
                "moto's pool did not start a server: {line}\nIts stderr:\n{}\nThe server's:\n{}",
                self.log(),
                read_log(log)
            )
        })
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

/// How many times each address received each subject.
pub fn copies(mail: &[SentEmail]) -> BTreeMap<(String, String), usize> {
    let mut copies = BTreeMap::new();
    for m in mail {
        for to in &m.destinations {
            *copies
                .entry((to.clone(), m.subject.clone().unwrap_or_default()))
                .or_default() += 1;
        }
    }
    copies
}

/// The ARN of role `name` in `account`, for [`Moto::sdk_config`].
pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// Creates IAM user `name` through `admin`, holding `policy` inline when one is given, and an
/// access key of it.
pub async fn iam_user(admin: &SdkConfig, name: &str, policy: Option<&str>) -> Result<AccessKey> {
    let iam = aws_sdk_iam::Client::new(admin);
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .with_context(|| format!("creating IAM user {name}"))?;
    if let Some(policy) = policy {
        iam.put_user_policy()
            .user_name(name)
            .policy_name(name)
            .policy_document(policy)
            .send()
            .await
            .with_context(|| format!("giving IAM user {name} its policy"))?;
    }
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .with_context(|| format!("creating an access key for {name}"))?;
    let key = key
        .access_key()
        .ok_or_else(|| anyhow!("CreateAccessKey returned no key for {name}"))?;
    Ok(AccessKey {
        id: key.access_key_id().to_owned(),
        secret: key.secret_access_key().to_owned(),
    })
}

/// The handler's own SDK configuration (its retry policy and timeouts) with the test
/// credentials, every call sent to `endpoint` (moto, or a fault proxy in front of it); to be
/// loaded, after any change a test makes.
pub fn handler_loader(endpoint: &str) -> ConfigLoader {
    sgwatch_handler::aws::config_loader()
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "sgwatch-tests",
        ))
}

/// An endpoint that accepts connections and never answers.
pub fn stalled_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    endpoint
}

/// A plain HTTP/1.0 GET of `path` on `endpoint` (`http://HOST:PORT`), returning the body of a 200.
fn http_get(endpoint: &str, path: &str) -> std::io::Result<String> {
    http(endpoint, &format!("GET {path} HTTP/1.0\r\n"), "")
}

/// A plain HTTP/1.0 POST of a text body, returning the body of a 200.
fn http_post(endpoint: &str, path: &str, body: &str) -> std::io::Result<String> {
    let head = format!(
        "POST {path} HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        body.len()
    );
    http(endpoint, &head, body)
}

/// Sends `head` (the request line and headers but `Host`) and `body`; the answer's body when
/// its status is 200.
fn http(endpoint: &str, head: &str, body: &str) -> std::io::Result<String> {
    let authority = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "{head}Host: {authority}\r\n\r\n{body}")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, answer) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!("{status}: {answer}")));
    }
    Ok(answer.to_string())
}

/// `scripts/faultproxy.py` (from the project's `.venv`) between the code under test and `target`,
/// with the proxy's own flags; stopped when dropped.
pub struct FaultProxy {
    pub endpoint: String,
    child: std::process::Child,
}

impl FaultProxy {
    pub fn start(target: &str, args: &[&str]) -> FaultProxy {
        let root = repo_root();
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("scripts/faultproxy.py"))
            .args(["--target", target])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the fault proxy needs the project's .venv: run `make test`");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("the proxy's stdout"))
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
    pub fn stats(&self) -> Value {
        let authority = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(authority).expect("the proxy's port");
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

/// The function name the emulator knows the handler by under [`LambdaEmulator::start`] (its
/// binary's name: cargo-lambda serves only the workspace's binaries).
pub const EMULATED_FUNCTION: &str = "bootstrap";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
const EMULATOR_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// cargo-lambda's Runtime API emulator with the prebuilt handler polling it.
///
/// moto's own Lambda cannot run code (that needs Docker), hence the emulator: `cargo lambda watch
/// --only-lambda-apis` serves the Runtime API, and the prebuilt binary runs against it with the
/// environment it is given, so nothing is compiled while a test runs.
pub struct LambdaEmulator {
    /// Where the emulator serves Lambda's Invoke API (`--lambda-endpoint-url` of the installer).
    pub endpoint: String,
    /// The function name the handler is known by there.
    pub function_name: String,
    /// The `cargo lambda` command line, as a person would type it.
    pub watch_command: String,
    // Both are killed when dropped (kill_on_drop), so a failed test leaves no process behind.
    watch: tokio::process::Child,
    function: tokio::process::Child,
    function_log: PathBuf,
}

impl LambdaEmulator {
    /// The handler known as [`EMULATED_FUNCTION`], its AWS calls sent to `moto`.
    pub async fn start(
        programs: &Programs,
        moto: &Moto,
        function_env: &BTreeMap<String, String>,
    ) -> Result<LambdaEmulator> {
        LambdaEmulator::start_as(programs, &moto.endpoint, function_env, EMULATED_FUNCTION).await
    }

    /// The handler known as `function_name`, its AWS calls sent to `aws_endpoint` (moto, or a
    /// fault proxy in front of it); its logs go to `WORK/FUNCTION_NAME.log`.
    pub async fn start_as(
        programs: &Programs,
        aws_endpoint: &str,
        function_env: &BTreeMap<String, String>,
        function_name: &str,
    ) -> Result<LambdaEmulator> {
        let port = free_port()?;
        let manifest = repo_root().join("Cargo.toml");
        let port_text = port.to_string();
        let manifest_text = manifest.display().to_string();
        let args = [
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port_text,
            "--manifest-path",
            &manifest_text,
        ];
        let watch_log = programs.work_dir.join("cargo-lambda-watch.log");
        let mut watch = tokio::process::Command::new(&programs.cargo_lambda);
        watch
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(log_file(&watch_log)?)
            .stderr(log_file(&watch_log)?)
            .kill_on_drop(true);
        let mut watch = watch
            .spawn()
            .with_context(|| format!("starting {}", programs.cargo_lambda.display()))?;
        wait_for_port(port, &mut watch, &watch_log).await?;

        let endpoint = format!("http://127.0.0.1:{port}");
        let function_log = if function_name == EMULATED_FUNCTION {
            programs.work_dir.join("bootstrap.log")
        } else {
            programs.work_dir.join(format!("{function_name}.log"))
        };
        let mut function = tokio::process::Command::new(&programs.bootstrap);
        // A Lambda function starts with a clean environment: its configuration, Lambda's own
        // variables and the execution role's credentials (here, moto's test ones).
        function
            .env_clear()
            .envs(function_env)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("{endpoint}/.rt/{function_name}"),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log_file(&function_log)?)
            .stderr(log_file(&function_log)?)
            .kill_on_drop(true);
        if !function_env.contains_key("AWS_LAMBDA_FUNCTION_NAME") {
            function.env("AWS_LAMBDA_FUNCTION_NAME", function_name);
        }
        let function = function
            .spawn()
            .with_context(|| format!("starting {}", programs.bootstrap.display()))?;

        Ok(LambdaEmulator {
            watch_command: format!(
                "cargo lambda {}",
                args[1..].join(" ").replace(&manifest_text, "Cargo.toml")
            ),
            endpoint,
            function_name: function_name.to_owned(),
            watch,
            function,
            function_log,
        })
    }

    /// What the handler has logged so far.
    pub fn log(&self) -> String {
        read_log(&self.function_log)
    }

    /// A Lambda client of the emulator's Invoke API. Lambda answers a function error with HTTP
    /// 200 and `X-Amz-Function-Error`; the emulator answers 500, which the SDK would retry,
    /// running the handler three times per call: this client does not retry.
    pub fn client(&self, config: &SdkConfig) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(config)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .endpoint_url(&self.endpoint)
                .build(),
        )
    }

    /// Invokes the handler through the emulator's Lambda Invoke API and returns its response;
    /// a function error is an error, with the handler's log.
    pub async fn invoke(&self, config: &SdkConfig, event: &Value) -> Result<Value> {
        let lambda = self.client(config);
        let call = lambda
            .invoke()
            .function_name(&self.function_name)
            .payload(Blob::new(serde_json::to_vec(event)?))
            .send();
        let out = tokio::time::timeout(INVOKE_TIMEOUT, call)
            .await
            .map_err(|_| {
                anyhow!(
                    "the handler did not answer within {INVOKE_TIMEOUT:?}; its log:\n{}",
                    read_log(&self.function_log)
                )
            })?
            .with_context(|| {
                format!(
                    "invoking the handler at {}; its log:\n{}",
                    self.endpoint,
                    read_log(&self.function_log)
                )
            })?;
        let payload = out.payload().map(|p| p.as_ref()).unwrap_or_default();
        let response: Value = serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        if out.function_error().is_some() || out.status_code() != 200 {
            bail!(
                "the handler failed ({} {}): {response}\nits log:\n{}",
                out.status_code(),
                out.function_error().unwrap_or_default(),
                read_log(&self.function_log)
            );
        }
        Ok(response)
    }

    /// Stops the handler and the emulator; returns where the handler's log is.
    pub async fn stop(mut self) -> PathBuf {
        let _ = self.function.kill().await;
        let _ = self.watch.kill().await;
        self.function_log
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()))
}

async fn wait_for_port(port: u16, watch: &mut tokio::process::Child, log: &Path) -> Result<()> {
    let deadline = Instant::now() + EMULATOR_READY_TIMEOUT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = watch.try_wait()? {
            bail!(
                "cargo lambda watch exited ({status}) before serving; its log:\n{}",
                read_log(log)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "cargo lambda watch did not listen on port {port} within {EMULATOR_READY_TIMEOUT:?}; its log:\n{}",
                read_log(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
