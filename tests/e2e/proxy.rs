//! The HTTP proxy port driven by the clients customers use, not by a proxy
//! client written here: curl's `-x`, Python's `requests` with `proxies=`
//! and Node's `undici` `ProxyAgent` fetch byte-exact bodies from a local
//! target through a native node; wrong credentials get 407, a country no
//! node is in gets 503 with `Proxy-Status`, an unknown username parameter
//! is named; a session keeps its node; every hostile URL is refused and
//! the canary hears nothing; `CONNECT` with `mode-fetch` ends TLS with the
//! relay's proxy CA and runs each request inside as an https job.

use base64::Engine;
use spareband_tests::{pattern, sha256_hex, target, TestNode, TestRelay};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A proxy URL with credentials in it, as every client takes it.
fn proxy_with(relay: &TestRelay, user: &str) -> String {
    relay
        .proxy_url()
        .replacen("http://", &format!("http://{user}:{}@", relay.key), 1)
}

/// curl through the proxy: (status, headers, body).
fn curl(proxy: &str, url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "", "-x", proxy, "-D"])
        .arg(&head)
        .args(["-o", "-", "-w", ""])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl (installed by scripts/setup.sh)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(head).unwrap();
    // The last response's status line (curl may print a 100 Continue first).
    let status = head
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, head.to_ascii_lowercase(), out.stdout)
}

/// The value of header `name` (lower case) in curl's dump.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_python_and_undici_get_byte_exact_bodies_through_the_proxy() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let proxy = proxy_with(&relay, "user");
    const N: usize = 3 * 1024 * 1024 + 7;
    let want = pattern(N, 5);
    let url = target.url(&format!("/bytes?n={N}&seed=5"));

    // curl, a GET and a 2 MiB upload.
    let (p, u) = (proxy.clone(), url.clone());
    let (status, head, body) = tokio::task::spawn_blocking(move || curl(&p, &u, &[]))
        .await
        .unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(body == want, "curl: {} bytes, not the {N} sent", body.len());
    assert_eq!(
        header(&head, "x-spareband-node"),
        Some(node.id.to_string().as_str())
    );
    let upload = pattern(2 << 20, 9);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &upload).unwrap();
    let (p, u) = (proxy.clone(), target.url("/echo"));
    let arg = format!("@{}", file.path().display());
    let (status, head, body) =
        tokio::task::spawn_blocking(move || curl(&p, &u, &["--data-binary", &arg]))
            .await
            .unwrap();
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "x-body-sha256"),
        Some(sha256_hex(&upload).as_str())
    );
    assert!(body == upload);

    // Python's requests.
    let script = "import hashlib, requests, sys\n\
        r = requests.get(sys.argv[2], proxies={'http': sys.argv[1]}, timeout=60)\n\
        print(r.status_code, len(r.content), hashlib.sha256(r.content).hexdigest(), r.headers['x-spareband-node'])\n";
    let expected = format!("200 {N} {} {}", sha256_hex(&want), node.id);
    let said = client("python3", script, &proxy, &url).await;
    assert_eq!(said, expected, "python requests");

    // Node's undici ProxyAgent. It tunnels even http:// through CONNECT
    // unless told not to; CONNECT is not served yet, so it sends absolute
    // form, as curl and requests do.
    let script = "const { ProxyAgent, request } = require('undici');\n\
        const crypto = require('node:crypto');\n\
        (async () => {\n\
          const agent = new ProxyAgent({ uri: process.argv[1], proxyTunnel: false });\n\
          const r = await request(process.argv[2], { dispatcher: agent });\n\
          const b = Buffer.from(await r.body.arrayBuffer());\n\
          console.log(r.statusCode, b.length, crypto.createHash('sha256').update(b).digest('hex'), r.headers['x-spareband-node']);\n\
        })().catch((e) => { console.error(e); process.exit(1); });\n";
    let said = client("node", script, &proxy, &url).await;
    assert_eq!(said, expected, "undici ProxyAgent");
}

/// Runs `script` with `program` (`-c` or `-e`) given the proxy and the URL,
/// from the repository's root (where `node_modules` is); returns what it
/// printed.
async fn client(program: &'static str, script: &'static str, proxy: &str, url: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let flag = if program == "node" { "-e" } else { "-c" };
    let (p, u) = (proxy.to_string(), url.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .current_dir(root)
            .args([flag, script, &p, &u])
            .output()
            .unwrap_or_else(|e| panic!("{program} (scripts/setup.sh installs it): {e}"))
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Checked once with the proxy answering 401 like the API (no
/// `Proxy-Authenticate`): curl reported 401 and the test failed at the
/// status.
#[tokio::test]
async fn the_proxy_answers_as_proxy_clients_expect_when_it_cannot_serve() {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let _a = TestNode::start(&relay.base, &allow);
    let _b = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(2).await;
    let url = target.url("/hello");
    let run = |proxy: String, url: String| async move {
        tokio::task::spawn_blocking(move || curl(&proxy, &url, &[]))
            .await
            .unwrap()
    };
    // Wrong password, and none at all.
    let wrong = relay
        .proxy_url()
        .replacen("http://", "http://user:sb_not-a-key@", 1);
    for proxy in [wrong, relay.proxy_url()] {
        let (status, head, _) = run(proxy, url.clone()).await;
        assert_eq!(status, 407, "{head}");
        assert_eq!(
            header(&head, "proxy-authenticate"),
            Some("basic realm=\"spareband\"")
        );
    }
    // No node in that country.
    let (status, head, _) = run(proxy_with(&relay, "user-country-xx"), url.clone()).await;
    assert_eq!(status, 503, "{head}");
    let ps = header(&head, "proxy-status").expect("Proxy-Status");
    assert!(ps.starts_with("spareband; error="), "{ps}");
    // A typo is named, not ignored.
    let (status, _, body) = run(proxy_with(&relay, "user-contry-us"), url.clone()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("'contry'"));
    // Targeting this relay cannot do yet is refused in words.
    let (status, _, body) = run(proxy_with(&relay, "user-city-berlin"), url.clone()).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("city 'berlin'"));
    // A session keeps its node (two nodes to choose from), for its sesstime.
    let session = proxy_with(&relay, "user-session-s1-sesstime-30");
    let mut nodes = std::collections::HashSet::new();
    for _ in 0..6 {
        let (status, head, _) = run(session.clone(), url.clone()).await;
        assert_eq!(status, 200);
        nodes.insert(header(&head, "x-spareband-node").unwrap().to_string());
    }
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let (status, _, body) = run(proxy_with(&relay, "user-sesstime-30"), url.clone()).await;
    assert_eq!(status, 400, "a lifetime without a session");
    assert!(String::from_utf8_lossy(&body).contains("session"));
    // A request in origin form is not a proxy request.
    let origin = relay.proxy_url().replacen("http://", "", 1);
    let mut s = tokio::net::TcpStream::connect(&origin).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("user:{}", relay.key));
    s.write_all(format!("GET /hello HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic {auth}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// Every case of the hostile-URL matrix sent to the proxy in absolute form
/// is refused, and the canary never hears a request. The request line is
/// written on a socket here because clients normalise URLs (curl would
/// turn `%31%32%37.0.0.1` into `127.0.0.1`), and the matrix is about the
/// exact spellings. The defence is the target policy the JSON and raw
/// APIs use (each of its checks fails `hostile.rs` when removed); this
/// test shows the proxy port goes through it too.
#[tokio::test]
async fn the_proxy_refuses_every_hostile_url_and_the_canary_hears_nothing() {
    let canary = target::Target::start().await;
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let _node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    let proxy = relay.proxy_url().replacen("http://", "", 1);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("user:{}", relay.key));
    let matrix = include_str!("../hostile-urls.txt");
    let port = canary.addr.port().to_string();
    let mut sent = 0;
    for line in matrix
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let url = line.trim_start_matches('@').trim().replace("{port}", &port);
        // A request line cannot carry spaces or control characters: such
        // cases are the JSON API's to test.
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            continue;
        }
        let mut s = tokio::net::TcpStream::connect(&proxy).await.unwrap();
        s.write_all(
            format!("GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic {auth}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer).await;
        let status = answer.split_whitespace().nth(1).unwrap_or("none");
        assert!(
            status == "400" || status == "403",
            "{url}: {}",
            answer.lines().next().unwrap_or("no answer")
        );
        sent += 1;
    }
    assert!(sent >= 50, "only {sent} cases sent");
    assert_eq!(canary.hits(), 0, "the canary heard a request");
}

/// `CONNECT` with `mode-fetch`: the relay ends the customer's TLS with a
/// certificate from its proxy CA and runs each request inside as an `https`
/// job. curl and Python's requests, trusting the CA from
/// `GET /v1/proxy-ca.pem`, get byte-exact bodies from a local https target
/// through a native node; without the CA the handshake is refused; without
/// `mode-fetch` the CONNECT is refused in words; a host the policy refuses
/// gets no certificate (checked once with that check removed: the tunnel
/// opened and curl succeeded, on the inner request's 403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_fetch_tunnels_end_tls_with_the_proxy_ca_and_run_each_request_as_a_job() {
    let target = target::Target::start_tls().await;
    let canary = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let root = target.tls_root.clone().unwrap();
    let node = TestNode::start_with(&relay.base, &allow, |c| c.extra_target_roots = vec![root]);
    relay.wait_nodes(1).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("proxy-ca.pem");
    let (status, pem) = relay.customer().get_text("/v1/proxy-ca.pem").await;
    assert_eq!(status, 200);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    std::fs::write(&ca, &pem).unwrap();
    const N: usize = 2 * 1024 * 1024 + 3;
    let want = pattern(N, 11);
    let url = target.url(&format!("/bytes?n={N}&seed=11"));
    assert!(url.starts_with("https://"));
    let fetch = proxy_with(&relay, "user-mode-fetch");
    let cacert = ca.display().to_string();

    let (p, u, c) = (fetch.clone(), url.clone(), cacert.clone());
    let (status, head, body) = tokio::task::spawn_blocking(move || curl(&p, &u, &["--cacert", &c]))
        .await
        .unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(body == want, "curl: {} bytes", body.len());
    assert_eq!(
        header(&head, "x-spareband-node"),
        Some(node.id.to_string().as_str())
    );

    let script = "import hashlib, requests, sys\n\
        p = sys.argv[1]\n\
        r = requests.get(sys.argv[2], proxies={'https': p.split('|')[0]}, verify=p.split('|')[1], timeout=60)\n\
        print(r.status_code, len(r.content), hashlib.sha256(r.content).hexdigest(), r.headers['x-spareband-node'])\n";
    let said = client("python3", script, &format!("{fetch}|{cacert}"), &url).await;
    assert_eq!(said, format!("200 {N} {} {}", sha256_hex(&want), node.id));

    // What fails, fails in the open.
    let attempt = |proxy: String, url: String, extra: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["-sS", "--noproxy", "", "-x", &proxy, "-o", "/dev/null"])
                .args(&extra)
                .arg(&url)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    // No CA: the certificate is not trusted (curl exit 60).
    let out = attempt(fetch.clone(), url.clone(), vec![]).await;
    assert_eq!(
        out.status.code(),
        Some(60),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No mode-fetch: the CONNECT itself is refused.
    let out = attempt(
        proxy_with(&relay, "user"),
        url.clone(),
        vec!["--cacert".into(), cacert.clone()],
    )
    .await;
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && said.contains("400"), "{said}");
    // A host the policy refuses gets no tunnel (nor a certificate).
    let hostile = canary.url("/").replacen("http://", "https://", 1);
    let out = attempt(
        fetch.clone(),
        hostile,
        vec!["--cacert".into(), cacert.clone()],
    )
    .await;
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && said.contains("403"), "{said}");
    assert_eq!(canary.hits(), 0);
}
