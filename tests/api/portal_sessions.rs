//! Portal sessions: sign-in, one-time passwords, CSRF and Origin checks, fixation, logout,
//! expiry, login rate limits, and the role matrix (member / admin / owner) cell by cell.

use std::time::Duration;

use chatvault::catalog::users::Role;
use chatvault::domain::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::customer_api::chat;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// A browser-like portal client: cookie, CSRF token, same-origin `Origin`.
struct Portal<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
    csrf: Option<String>,
    origin: String,
}

impl<'a> Portal<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::new(),
            cookie: None,
            csrf: None,
            origin: format!("http://{}", app.addr),
        }
    }

    async fn login(&mut self, email: &str, password: &str) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.app.http("/v1/session"))
            .json(&json!({"tenant": "acme", "email": email, "password": password}));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
            assert!(
                set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"),
                "{set}"
            );
        }
        let body: Value = response.json().await.unwrap();
        self.csrf = body["csrf_token"].as_str().map(str::to_owned);
        (status, body)
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> StatusCode {
        self.send_with(method, path, body, self.csrf.as_deref(), Some(&self.origin))
            .await
            .0
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
        origin: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.app.http(path));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Adds a user and signs in through the one-time password change.
async fn signed_in<'a>(app: &'a TestApp, email: &str, role: Role) -> Portal<'a> {
    let tenant = TenantId::parse("acme").unwrap();
    let once = app
        .store
        .add_user(&tenant, email, role, "test")
        .await
        .unwrap();
    let mut portal = Portal::new(app);
    let (status, body) = portal.login(email, &once).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["must_change_password"], true);
    let changed = portal
        .send_with(
            Method::POST,
            "/v1/session/password",
            Some(json!({"current": once, "new": "a much longer passphrase"})),
            portal.csrf.as_deref(),
            Some(&portal.origin.clone()),
        )
        .await;
    assert_eq!(changed.0, 200, "{}", changed.1);
    portal.cookie = None;
    let (status, body) = portal.login(email, "a much longer passphrase").await;
    assert_eq!(
        (status.as_u16(), body["must_change_password"].as_bool()),
        (200, Some(false))
    );
    portal
}

#[tokio::test]
async fn a_one_time_password_must_be_changed_before_anything_else() {
    let app = spawn_app().await;
    let once = app
        .store
        .add_user(
            &TenantId::parse("acme").unwrap(),
            "ann@acme.example",
            Role::Owner,
            "test",
        )
        .await
        .unwrap();
    let mut portal = Portal::new(&app);
    portal.login("ann@acme.example", &once).await;
    let (status, body) = portal
        .send_with(Method::GET, "/v1/conversations", None, None, None)
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("password_change_required"))
    );
    let weak = portal
        .send(
            Method::POST,
            "/v1/session/password",
            Some(json!({"current": once, "new": "short"})),
        )
        .await;
    assert_eq!(weak, 400);
    assert_eq!(
        portal
            .send(
                Method::POST,
                "/v1/session/password",
                Some(json!({"current": once, "new": "a much longer passphrase"}))
            )
            .await,
        200
    );
}

#[tokio::test]
async fn wrong_credentials_get_one_generic_answer() {
    let app = spawn_app().await;
    signed_in(&app, "ann@acme.example", Role::Member).await;
    let mut messages = Vec::new();
    for (tenant, email, password) in [
        ("acme", "ann@acme.example", "wrong password!!"),
        ("acme", "nobody@acme.example", "whatever"),
        ("nope", "ann@acme.example", "x"),
        ("../x", "", ""),
    ] {
        let response = reqwest::Client::new()
            .post(app.http("/v1/session"))
            .json(&json!({"tenant": tenant, "email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        messages.push(response.json::<Value>().await.unwrap()["error"]["message"].clone());
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "no hint which part was wrong: {messages:?}"
    );
}

#[tokio::test]
async fn the_sixth_login_attempt_in_15_minutes_is_rate_limited() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = reqwest::Client::new()
            .post(app.http("/v1/session"))
            .json(&json!({"tenant": "acme", "email": "eve@acme.example", "password": "guess"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
}

#[tokio::test]
async fn mutations_need_the_csrf_token_and_a_same_origin_request() {
    let app = spawn_app().await;
    let portal = signed_in(&app, "ann@acme.example", Role::Admin).await;
    let origin = portal.origin.clone();
    let patch = || Some(json!({"retention_days": 5}));
    assert_eq!(
        portal
            .send_with(Method::PATCH, "/v1/settings", patch(), None, Some(&origin))
            .await
            .0,
        403
    );
    assert_eq!(
        portal
            .send_with(
                Method::PATCH,
                "/v1/settings",
                patch(),
                Some("0".repeat(64).as_str()),
                Some(&origin)
            )
            .await
            .0,
        403
    );
    assert_eq!(
        portal
            .send_with(
                Method::PATCH,
                "/v1/settings",
                patch(),
                portal.csrf.as_deref(),
                Some("https://evil.example")
            )
            .await
            .0,
        403
    );
    assert_eq!(
        portal
            .send_with(
                Method::PATCH,
                "/v1/settings",
                patch(),
                portal.csrf.as_deref(),
                None
            )
            .await
            .0,
        403
    );
    assert_eq!(
        portal
            .send_with(
                Method::PATCH,
                "/v1/settings",
                patch(),
                portal.csrf.as_deref(),
                Some(&origin)
            )
            .await
            .0,
        200
    );
    assert_eq!(
        portal
            .send_with(Method::GET, "/v1/settings", None, None, None)
            .await
            .0,
        200,
        "reads need no CSRF token"
    );
}

#[tokio::test]
async fn a_session_id_presented_at_login_is_never_reused_and_logout_ends_the_session() {
    let app = spawn_app().await;
    let mut portal = signed_in(&app, "ann@acme.example", Role::Member).await;
    let before = portal.cookie.clone().unwrap();
    portal
        .login("ann@acme.example", "a much longer passphrase")
        .await;
    let after = portal.cookie.clone().unwrap();
    assert_ne!(before, after, "the session id is rotated at login");
    let stale = Portal {
        cookie: Some(before),
        ..Portal::new(&app)
    };
    assert_eq!(
        stale.send(Method::GET, "/v1/conversations", None).await,
        401
    );
    let planted = Portal {
        cookie: Some(format!("cv_session={}", "a".repeat(64))),
        ..Portal::new(&app)
    };
    assert_eq!(
        planted.send(Method::GET, "/v1/conversations", None).await,
        401,
        "an id the server never issued is worthless"
    );

    assert_eq!(
        portal.send(Method::GET, "/v1/conversations", None).await,
        200
    );
    assert_eq!(portal.send(Method::DELETE, "/v1/session", None).await, 204);
    assert_eq!(
        portal.send(Method::GET, "/v1/conversations", None).await,
        401
    );
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = spawn_app_with(|c| c.session_idle = Duration::from_millis(600)).await;
    let portal = signed_in(&app, "ann@acme.example", Role::Member).await;
    assert_eq!(
        portal.send(Method::GET, "/v1/conversations", None).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        portal.send(Method::GET, "/v1/conversations", None).await,
        401
    );
}

/// One row per cell of the role matrix documented in the README.
#[tokio::test]
async fn each_role_can_do_exactly_what_the_matrix_says() {
    let app = spawn_app().await;
    let ids = chat(&app, &["one", "two", "three", "four"]).await;
    let member = signed_in(&app, "member@acme.example", Role::Member).await;
    let admin = signed_in(&app, "admin@acme.example", Role::Admin).await;
    let owner = signed_in(&app, "owner@acme.example", Role::Owner).await;
    let cells: Vec<(Method, String, Option<Value>, [u16; 3])> = vec![
        (
            Method::GET,
            "/v1/conversations".into(),
            None,
            [200, 200, 200],
        ),
        (
            Method::GET,
            format!("/v1/conversations/{}", ids[0]),
            None,
            [200, 200, 200],
        ),
        (Method::GET, "/v1/usage".into(), None, [200, 200, 200]),
        (Method::GET, "/v1/settings".into(), None, [200, 200, 200]),
        (
            Method::DELETE,
            format!("/v1/conversations/{}", ids[1]),
            None,
            [403, 204, 404],
        ),
        (
            Method::PATCH,
            "/v1/settings".into(),
            Some(json!({"retention_days": 9})),
            [403, 200, 200],
        ),
        (Method::GET, "/v1/audit".into(), None, [403, 200, 200]),
        (Method::GET, "/v1/api-keys".into(), None, [403, 200, 200]),
        (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"scopes": ["history:read"]})),
            [403, 201, 201],
        ),
        (Method::DELETE, "/v1/usage".into(), None, [403, 204, 204]),
        (Method::GET, "/v1/users".into(), None, [403, 403, 200]),
        (
            Method::POST,
            "/v1/users".into(),
            Some(json!({"email": "new@acme.example", "role": "member"})),
            [403, 403, 201],
        ),
        (
            Method::PATCH,
            "/v1/users/member@acme.example".into(),
            Some(json!({"role": "member"})),
            [403, 403, 204],
        ),
        (
            Method::DELETE,
            "/v1/conversations".into(),
            None,
            [403, 200, 200],
        ),
        (
            Method::DELETE,
            "/v1/users/new@acme.example".into(),
            None,
            [403, 403, 204],
        ),
        (Method::DELETE, "/v1/tenant".into(), None, [403, 403, 204]),
    ];
    for (method, path, body, expected) in cells {
        for (portal, want, role) in [
            (&member, expected[0], "member"),
            (&admin, expected[1], "admin"),
            (&owner, expected[2], "owner"),
        ] {
            let got = portal
                .send(method.clone(), &path, body.clone())
                .await
                .as_u16();
            assert_eq!(got, want, "{role} {method} {path}");
        }
    }
    assert!(
        !app.data_dir.join("acme.db").exists(),
        "the owner deleted the tenant"
    );
}
