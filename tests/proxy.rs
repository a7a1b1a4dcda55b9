//! Proxies: a token never reaches a proxy in clear text.
//!
//! - Plain http (the loopback emulators, `http.allow_insecure_http`) never goes through a
//!   proxy, whatever `HTTP_PROXY`, `http_proxy`, `ALL_PROXY`, `all_proxy`, `HTTPS_PROXY` or
//!   `https_proxy` say: the SSWS token, the Spot token and the OAuth assertion would all be
//!   readable by the proxy.
//! - https goes through the proxy in `HTTPS_PROXY` as a `CONNECT` tunnel: the proxy sees the
//!   API's host and port, then only TLS bytes. `HTTP_PROXY` and `ALL_PROXY` are not used;
//!   `NO_PROXY` is honoured.
//!
//! Proxy variables are process-global, so every case runs the real binary as a child process
//! with its own environment; nothing here sets a variable in the test process. The proxy is a
//! recording TCP server on 127.0.0.1:0 in this process.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use okta_spot_sim::{Emulators, Fixture, OAuthClientFixture, Section};
use p256::pkcs8::EncodePrivateKey as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_okta-spot-sync");
/// Tokens of the https cases (no real API is ever reached: the proxy answers).
const OKTA_TOKEN: &str = "00okta-proxy-test-token-SECRET";
const SPOT_TOKEN: &str = "spot-proxy-test-token-SECRET";
/// Every variable any HTTP stack reads a proxy from.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
];
const NO_PROXY_VARS: &[&str] = &["NO_PROXY", "no_proxy"];

/// What one connection to a server of this file brought.
#[derive(Debug, Clone, Default)]
struct Connection {
    /// The request head (up to and including the blank line), as text.
    head: String,
    /// For a `CONNECT`: the first TLS record the client sent through the tunnel.
    tunnelled: Vec<u8>,
}

impl Connection {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// Everything the server received, lossily as text.
    fn all_text(&self) -> String {
        format!("{}{}", self.head, String::from_utf8_lossy(&self.tunnelled))
    }
}

/// A recording proxy (or, for `NO_PROXY`, a direct https target) on 127.0.0.1:0. A `CONNECT`
/// is answered 200, then the first TLS record is read and the connection closed (no TLS
/// server is behind it: the client's handshake fails, which the cases expect). Any other
/// request is answered 502.
struct Recorder {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Connection>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Connection>>> = Arc::default();
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let conn = serve(stream).await;
                    sink.lock().unwrap().push(conn);
                });
            }
        });
        Recorder { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Connection> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one TLS record (5-byte header, then its length) or whatever comes before EOF.
async fn read_tls_record(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 5];
    let mut got = Vec::new();
    if stream.read_exact(&mut header).await.is_err() {
        return got;
    }
    got.extend_from_slice(&header);
    let len = u16::from_be_bytes([header[3], header[4]]) as usize;
    let mut body = vec![0u8; len];
    if stream.read_exact(&mut body).await.is_ok() {
        got.extend_from_slice(&body);
    }
    got
}

async fn serve(mut stream: TcpStream) -> Connection {
    let mut conn = Connection::default();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // A TLS ClientHello (a direct https connection) starts with 0x16, a request with a letter.
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
        if buf.len() == 1 && buf[0] == 0x16 {
            let mut rest = read_tls_record_rest(&mut stream).await;
            buf.append(&mut rest);
            conn.tunnelled = buf;
            return conn;
        }
    }
    conn.head = String::from_utf8_lossy(&buf).into_owned();
    if conn.head.starts_with("CONNECT ") {
        let _ = stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
        conn.tunnelled = read_tls_record(&mut stream).await;
    } else {
        let _ = stream
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
    }
    conn
}

/// The rest of a TLS record whose first byte was already read.
async fn read_tls_record_rest(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    let mut got = Vec::new();
    if stream.read_exact(&mut header).await.is_err() {
        return got;
    }
    got.extend_from_slice(&header);
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let mut body = vec![0u8; len];
    if stream.read_exact(&mut body).await.is_ok() {
        got.extend_from_slice(&body);
    }
    got
}

fn write_0600(path: &Path, content: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, content.as_bytes()).unwrap();
}

/// Runs the binary off the runtime's threads (the emulators and the proxy keep serving) with
/// `env` set and every other proxy variable removed.
async fn run(config: &Path, args: &[&str], env: Vec<(&'static str, String)>) -> Output {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("--config").arg(&config).args(&args);
        for var in PROXY_VARS.iter().chain(NO_PROXY_VARS) {
            cmd.env_remove(var);
        }
        for var in [
            "REQUEST_METHOD",
            "RUST_LOG",
            "OKTA_SPOT_SYNC_CONFIG",
            "OKTA_SPOT_SYNC_OKTA_TOKEN",
            "OKTA_SPOT_SYNC_SPOT_TOKEN",
            "CREDENTIALS_DIRECTORY",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env).output().unwrap()
    })
    .await
    .unwrap()
}

fn output_text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every proxy variable pointing at `proxy`.
fn every_proxy_var(proxy: &Recorder) -> Vec<(&'static str, String)> {
    PROXY_VARS.iter().map(|v| (*v, proxy.url())).collect()
}

/// A config for the emulators over plain http, SSWS token.
fn emulator_config(dir: &Path, emu: &Emulators) -> PathBuf {
    emu.client_config(dir).max_retries(0).write().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_emulators_never_goes_through_a_proxy() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let proxy = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = emulator_config(dir.path(), &emu);

    let out = run(&config, &["plan"], every_proxy_var(&proxy)).await;
    let text = output_text(&out);
    // 0 nothing to do, 2 changes pending: either way both APIs were read, directly.
    assert!(matches!(out.status.code(), Some(0 | 2)), "{text}");
    assert!(proxy.seen().is_empty(), "the proxy got {:?}", proxy.seen());
    assert!(
        emu.okta.total_requests() > 0 && emu.spot.total_requests() > 0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_token_request_over_plain_http_never_goes_through_a_proxy() {
    const CLIENT_ID: &str = "0oaProxyTestService1";
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = secret.to_pkcs8_pem(Default::default()).unwrap().to_string();
    let mut jwk: serde_json::Value =
        serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
    jwk["kid"] = "k1".into();
    let mut fixture = Fixture::demo();
    fixture.okta.oauth_clients = vec![OAuthClientFixture {
        client_id: CLIENT_ID.into(),
        jwks: vec![jwk],
        scopes: vec!["okta.apps.read".into(), "okta.users.read".into()],
        dpop_required: true,
    }];
    let emu = Emulators::start_local(fixture).await.unwrap();
    let proxy = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_0600(&d.join("key.pem"), &pem);
    let config = emu
        .client_config(d)
        .without_okta_token()
        .keys(
            Section::Okta,
            &format!(
                "auth = \"oauth\"\nclient_id = {CLIENT_ID:?}\nprivate_key_file = {:?}\nkey_id = \"k1\"\n",
                d.join("key.pem")
            ),
        )
        .max_retries(0)
        .write()
        .unwrap();

    let out = run(&config, &["plan"], every_proxy_var(&proxy)).await;
    let text = output_text(&out);
    assert!(matches!(out.status.code(), Some(0 | 2)), "{text}");
    assert!(proxy.seen().is_empty(), "the proxy got {:?}", proxy.seen());
}

/// A config whose APIs are https hosts that do not exist: only a proxy can take the request.
fn https_config(dir: &Path, okta: &str, spot: &str) -> PathBuf {
    write_0600(&dir.join("okta-token"), OKTA_TOKEN);
    write_0600(&dir.join("spot-token"), SPOT_TOKEN);
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[okta]\norg_url = {okta:?}\napp_id = \"0oa1example\"\ntoken_file = {:?}\n\n\
             [spot]\nbase_url = {spot:?}\ntoken_file = {:?}\n\n[sync]\nstate_file = {:?}\n\n\
             [http]\nmax_retries = 0\ntimeout = \"10s\"\n\n[daemon]\nlisten = \"\"\n",
            dir.join("okta-token"),
            dir.join("spot-token"),
            dir.join("state.json"),
        ),
    )
    .unwrap();
    config
}

/// A TLS handshake record carrying a ClientHello for `host` (its SNI is in clear text; an IP
/// address has none, so pass `""`).
fn is_client_hello_for(record: &[u8], host: &str) -> bool {
    record.len() > 5
        && record[0] == 0x16
        && record[5] == 0x01
        && (host.is_empty() || record.windows(host.len()).any(|w| w == host.as_bytes()))
}

fn assert_no_token(conn: &Connection) {
    let text = conn.all_text();
    for secret in [OKTA_TOKEN, SPOT_TOKEN] {
        assert!(
            !text.contains(secret),
            "a token reached the proxy: {conn:?}"
        );
    }
    assert!(
        !text.to_ascii_lowercase().contains("authorization:"),
        "an Authorization header reached the proxy: {conn:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_goes_through_the_https_proxy_as_a_connect_tunnel() {
    let proxy = Recorder::start().await;
    let other = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = https_config(
        dir.path(),
        "https://proxy-test.okta.example",
        "https://proxy-test.spot.example:8443",
    );
    let mut env = vec![("HTTPS_PROXY", proxy.url())];
    // Never used, for https or anything else.
    env.extend(
        ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .map(|v| (*v, other.url())),
    );

    let out = run(&config, &["check"], env).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "no TLS server answers: {text}");
    assert!(other.seen().is_empty(), "{:?}", other.seen());

    let seen = proxy.seen();
    let okta = seen
        .iter()
        .find(|c| c.request_line() == "CONNECT proxy-test.okta.example:443 HTTP/1.1")
        .unwrap_or_else(|| panic!("no CONNECT to the Okta org: {seen:?}\n{text}"));
    assert!(
        is_client_hello_for(&okta.tunnelled, "proxy-test.okta.example"),
        "the tunnel did not start with a TLS ClientHello: {okta:?}"
    );
    for conn in &seen {
        assert!(
            conn.request_line() == "CONNECT proxy-test.okta.example:443 HTTP/1.1"
                || conn.request_line() == "CONNECT proxy-test.spot.example:8443 HTTP/1.1",
            "{conn:?}"
        );
        assert_no_token(conn);
    }
    for secret in [OKTA_TOKEN, SPOT_TOKEN] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_sends_https_directly() {
    let proxy = Recorder::start().await;
    // Stands in for the API: it receives the TLS handshake directly.
    let direct = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let okta = format!("https://127.0.0.1:{}", direct.addr.port());
    let config = https_config(dir.path(), &okta, "https://proxy-test.spot.example");
    let env = vec![
        ("https_proxy", proxy.url()),
        ("no_proxy", "127.0.0.1".to_string()),
    ];

    let out = run(&config, &["check"], env).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let direct_seen = direct.seen();
    assert!(
        direct_seen
            .iter()
            .any(|c| c.head.is_empty() && is_client_hello_for(&c.tunnelled, "")),
        "the Okta org was not contacted directly: {direct_seen:?}\n{text}"
    );
    for conn in proxy.seen() {
        assert!(
            conn.request_line() == "CONNECT proxy-test.spot.example:443 HTTP/1.1",
            "only Spot goes through the proxy: {conn:?}"
        );
        assert_no_token(&conn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_proxy_and_http_proxy_are_not_used_for_https() {
    let proxy = Recorder::start().await;
    let direct = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let api = format!("https://127.0.0.1:{}", direct.addr.port());
    let config = https_config(dir.path(), &api, &api);
    let env = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .map(|v| (*v, proxy.url()))
        .collect();

    let out = run(&config, &["check"], env).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(proxy.seen().is_empty(), "the proxy got {:?}", proxy.seen());
    assert!(
        direct
            .seen()
            .iter()
            .any(|c| c.head.is_empty() && is_client_hello_for(&c.tunnelled, "")),
        "the API was not contacted directly: {:?}\n{text}",
        direct.seen()
    );
}
