//! Three nodes behind HAProxy, configured by `deploy/haproxy.cfg` exactly as shipped: each
//! tenant's widget sockets, API calls and portal sign-ins reach its own node (and only there is
//! its data), and `chatvault tenant move` under light load loses no message and duplicates none.

mod nodes;
mod visitor;

use std::process::Command;

use serde_json::{Value, json};

use crate::cli::{Cli, bin};
use crate::fake_llm::FakeLlm;
use crate::helpers::{get_json, visitor_texts};
use nodes::{Balancer, Node};
use visitor::visitor;

const ORIGIN: &str = "https://shop.example";

/// A tenant made with the CLI on a node's data directory: (widget key, API key).
fn create_tenant(cli: &Cli, id: &str) -> (String, String) {
    let created = cli.json(&["tenant", "create", id, "--origin", ORIGIN]);
    (
        created["widget_key"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    )
}

async fn conversations(http: &reqwest::Client, base: &str, api_key: &str) -> (u16, Value) {
    let response = http
        .get(format!("{base}/v1/conversations"))
        .bearer_auth(api_key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_reach_their_own_node_and_a_move_under_load_loses_nothing() {
    let secret = Cli::new().master_key; // any 64 hex: `key generate` makes it
    let clis = [Cli::new(), Cli::new(), Cli::new()];
    let tenants = ["alpha", "bravo", "charlie"];
    let mut keys = Vec::new();
    for (cli, tenant) in clis.iter().zip(tenants) {
        keys.push(create_tenant(cli, tenant));
    }
    clis[0].json(&[
        "user",
        "add",
        "alpha",
        "owner@alpha.example",
        "--role",
        "owner",
    ]);
    let password = clis[0].json(&[
        "user",
        "add",
        "alpha",
        "ann@alpha.example",
        "--role",
        "admin",
    ])["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let [c1, c2, c3] = clis;
    let llm = FakeLlm::start().await;
    let nodes = [
        Node::start(c1, &secret, &llm),
        Node::start(c2, &secret, &llm),
        Node::start(c3, &secret, &llm),
    ];
    let lb = Balancer::start(
        &[&nodes[0], &nodes[1], &nodes[2]],
        "alpha node1\nbravo node2\ncharlie node3\n",
    )
    .await;
    let lb_url = format!("http://{}", lb.addr);
    let http = reqwest::Client::new();

    // Every tenant: raise the per-conversation rate for the test, chat once through the
    // balancer, and find the conversation through the balancer and on its own node only.
    for (i, tenant) in tenants.iter().enumerate() {
        let (widget_key, api_key) = &keys[i];
        assert!(
            widget_key.starts_with(&format!("wk_{tenant}.")),
            "{widget_key}"
        );
        assert!(api_key.starts_with(&format!("cvk_{tenant}.")), "{api_key}");
        let patched = http
            .patch(format!("{lb_url}/v1/settings"))
            .bearer_auth(api_key)
            .json(&json!({"messages_per_minute": 600}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            patched.status(),
            200,
            "{tenant}: settings through the balancer"
        );
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let (_, answered, reconnects) =
            visitor(lb.addr.clone(), widget_key.clone(), tenant, 1, tx).await;
        assert_eq!((answered.len(), reconnects), (1, 0), "{tenant}");
        let (status, page) = conversations(&http, &lb_url, api_key).await;
        assert_eq!(status, 200, "{tenant}: API through the balancer");
        assert_eq!(
            page["items"].as_array().unwrap().len(),
            1,
            "{tenant}: {page}"
        );
        for (j, node) in nodes.iter().enumerate() {
            let (status, _) = conversations(&http, &node.url(), api_key).await;
            let expected = if i == j { 200 } else { 401 };
            assert_eq!(status, expected, "{tenant} asked directly on node{}", j + 1);
        }
    }

    // A portal sign-in names its tenant in a header; the session cookie routes what follows.
    let login = http
        .post(format!("{lb_url}/v1/session"))
        .header("x-chatvault-tenant", "alpha")
        .json(&json!({"tenant": "alpha", "email": "ann@alpha.example", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "sign-in routed to alpha's node");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("cv_session=alpha."), "{cookie}");
    let session: Value = http
        .get(format!("{lb_url}/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["tenant"], "alpha", "{session}");
    // The node-to-node routes are not reachable through the balancer.
    let ops = http
        .post(format!("{lb_url}/ops/tenants/alpha/freeze"))
        .send()
        .await
        .unwrap();
    assert_eq!(ops.status(), 404);

    // A tenant created on a running node reaches it once `tenant route` adds its map line.
    let (_, delta_key) = create_tenant(&nodes[1].cli, "delta");
    assert_eq!(
        conversations(&http, &lb_url, &delta_key).await.0,
        401,
        "unrouted: node1"
    );
    let routed = Command::new(bin())
        .args(["tenant", "route", "delta", "--backend", "node2", "--json"])
        .arg("--haproxy-socket")
        .arg(&lb.socket)
        .arg("--haproxy-map")
        .arg(&lb.map)
        .output()
        .unwrap();
    assert!(
        routed.status.success(),
        "{}",
        String::from_utf8_lossy(&routed.stderr)
    );
    assert_eq!(conversations(&http, &lb_url, &delta_key).await.0, 200);

    // Light load on alpha (moving) and bravo (staying) while alpha moves from node1 to node3.
    const MESSAGES: usize = 40;
    let (alpha_tx, mut alpha_progress) = tokio::sync::mpsc::unbounded_channel();
    let (bravo_tx, _bravo_progress) = tokio::sync::mpsc::unbounded_channel();
    let alpha = tokio::spawn(visitor(
        lb.addr.clone(),
        keys[0].0.clone(),
        "alpha-move",
        MESSAGES,
        alpha_tx,
    ));
    let bravo = tokio::spawn(visitor(
        lb.addr.clone(),
        keys[1].0.clone(),
        "bravo-stay",
        MESSAGES,
        bravo_tx,
    ));
    while alpha_progress.recv().await.is_some_and(|n| n < 5) {}

    let mover = Command::new(bin())
        .args(["tenant", "move", "alpha", "--json", "--backend", "node3"])
        .args(["--from", &nodes[0].url(), "--to", &nodes[2].url()])
        .arg("--haproxy-socket")
        .arg(&lb.socket)
        .arg("--haproxy-map")
        .arg(&lb.map)
        .env("CHATVAULT_CLUSTER_SECRET", &secret)
        .output()
        .unwrap();
    assert!(
        mover.status.success(),
        "tenant move failed: {}",
        String::from_utf8_lossy(&mover.stderr)
    );
    let report: Value = serde_json::from_slice(&mover.stdout).unwrap();
    assert_eq!(report["tenant"], "alpha");
    eprintln!("tenant move: {report}");

    let (alpha_conversation, alpha_answered, alpha_reconnects) = alpha.await.unwrap();
    let (bravo_conversation, bravo_answered, bravo_reconnects) = bravo.await.unwrap();
    assert!(
        alpha_reconnects >= 1,
        "alpha's socket was moved, so it reconnected"
    );
    assert_eq!(bravo_reconnects, 0, "bravo never noticed alpha's move");

    // Every answered message is on node3, exactly once and in order; nothing else is.
    let alpha_key = &keys[0].1;
    let stored = visitor_texts(&http, &lb_url, alpha_key, &alpha_conversation).await;
    assert_eq!(stored, alpha_answered);
    assert_eq!(
        visitor_texts(&http, &nodes[2].url(), alpha_key, &alpha_conversation).await,
        alpha_answered
    );
    let bravo_key = &keys[1].1;
    assert_eq!(
        visitor_texts(&http, &lb_url, bravo_key, &bravo_conversation).await,
        bravo_answered
    );
    // The earlier conversation came along too, and the portal session still works.
    let (_, page) = conversations(&http, &lb_url, alpha_key).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    let session = http
        .get(format!("{lb_url}/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        session.status(),
        200,
        "the portal session moved with the tenant"
    );

    // node1 no longer has alpha at all: not in its catalog, no file, its key answers 401 there.
    assert_eq!(
        conversations(&http, &nodes[0].url(), alpha_key).await.0,
        401
    );
    let listed = nodes[0].cli.json(&["tenant", "list"]);
    assert!(
        listed["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != "alpha"),
        "{listed}"
    );
    assert!(!nodes[0].cli.data_dir().join("alpha.db").exists());
    // node3 holds it under its own master key, and its audit chain records the move.
    let audit = get_json(&http, &format!("{lb_url}/v1/audit"), alpha_key).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"tenant.created") && actions.contains(&"tenant.moved_in"),
        "{actions:?}"
    );
    let verified = nodes[2].cli.json(&["audit", "verify", "alpha"]);
    assert_eq!(verified["ok"], true, "{verified}");
    let map = std::fs::read_to_string(&lb.map).unwrap();
    assert!(map.lines().any(|l| l == "alpha node3"), "{map}");
}

#[tokio::test]
async fn a_move_is_refused_without_the_cluster_secret_and_leaves_the_tenant_in_place() {
    let secret = Cli::new().master_key;
    let (c1, c2) = (Cli::new(), Cli::new());
    let (_, api_key) = create_tenant(&c1, "alpha");
    let llm = FakeLlm::start().await;
    let (n1, n2) = (
        Node::start(c1, &secret, &llm),
        Node::start(c2, &secret, &llm),
    );
    let wrong = Cli::new().master_key;
    let mover = Command::new(bin())
        .args([
            "tenant",
            "move",
            "alpha",
            "--from",
            &n1.url(),
            "--to",
            &n2.url(),
        ])
        .env("CHATVAULT_CLUSTER_SECRET", &wrong)
        .output()
        .unwrap();
    assert!(!mover.status.success());
    let stderr = String::from_utf8_lossy(&mover.stderr);
    assert!(stderr.contains("cluster secret"), "{stderr}");
    let http = reqwest::Client::new();
    assert_eq!(conversations(&http, &n1.url(), &api_key).await.0, 200);

    // A bundle cut short or altered in transit is refused by the importing node.
    let token = chatvault_token(&secret);
    let ops = async |node: &Node, step: &str, body: Option<Vec<u8>>| {
        let mut request = http
            .post(format!("{}/ops/tenants/alpha/{step}", node.url()))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.bytes().await.unwrap())
    };
    let status = async |node: &Node| conversations(&http, &node.url(), &api_key).await.0;
    let finish = |from: &Node, to: &Node| {
        Command::new(bin())
            .args(["tenant", "move", "alpha", "--finish", "--json"])
            .args(["--from", &from.url(), "--to", &to.url()])
            .env("CHATVAULT_CLUSTER_SECRET", &secret)
            .output()
            .unwrap()
    };

    // A bundle cut short or altered in transit is refused by the importing node.
    assert_eq!(ops(&n1, "freeze", None).await.0, 200);
    assert_eq!(status(&n1).await, 503, "frozen: tenant_moving");
    let (_, bundle) = ops(&n1, "export", None).await;
    let mut altered = bundle.to_vec();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    for body in [altered, bundle[..bundle.len() / 2].to_vec()] {
        assert_eq!(ops(&n2, "import", Some(body)).await.0, 400);
    }
    assert_eq!(ops(&n1, "thaw", None).await.0, 204);
    assert_eq!(status(&n1).await, 200, "thawed");
    assert_eq!(status(&n2).await, 401, "never imported");

    // `--finish` destroys the old copy only once the new node holds the tenant.
    assert!(!finish(&n1, &n2).status.success());
    assert_eq!(
        status(&n1).await,
        200,
        "nothing destroyed while n2 lacks the tenant"
    );
    assert_eq!(ops(&n1, "freeze", None).await.0, 200);
    let (_, bundle) = ops(&n1, "export", None).await;
    assert_eq!(ops(&n2, "import", Some(bundle.to_vec())).await.0, 201);
    let finished = finish(&n1, &n2);
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert_eq!((status(&n1).await, status(&n2).await), (401, 200));
}

/// The ops bearer token a node derives from the cluster secret.
fn chatvault_token(secret: &str) -> String {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(secret, &mut bytes).unwrap();
    chatvault::cluster::ClusterSecret::from_bytes(&bytes)
        .bearer()
        .to_owned()
}
