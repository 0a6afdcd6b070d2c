//! The admin API over real HTTP against a running daemon, on both backends.

mod support;

use inroute::token::Scope;
use serde_json::{json, Value};
use support::{Backend, TestDaemon};

const CONFIG: &str = "/core/inbound-routing-config";

fn definition() -> Value {
    json!({"version": 1, "start": "in", "steps": [{"id": "in", "type": "input", "next": "out"},
           {"id": "out", "type": "output", "fields": {"agent_id": "agent_a"}}]})
}

/// An organization with an admin key, agent `agent_a` (v1 published, v2 draft),
/// a trunk and one number.
struct Tenant {
    org: String,
    key: String,
    trunk: String,
}

async fn tenant(d: &TestDaemon) -> Tenant {
    let org = d.org("Tenant").await;
    let key = d.admin_key(&org).await;
    let r = d
        .req("POST", "/core/agents")
        .token(&key)
        .json(json!({"id": "agent_a", "name": "A"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    for _ in 0..2 {
        assert_eq!(
            d.req("POST", "/core/agents/agent_a/versions")
                .token(&key)
                .send()
                .await
                .status,
            201
        );
    }
    let r = d
        .req("POST", "/core/agents/agent_a/versions/1/publish")
        .token(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = d
        .req("POST", "/core/trunks")
        .token(&key)
        .json(json!({"name": "carrier", "inbound_addresses": ["198.51.100.0/24"]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let trunk = r.body["id"].as_str().unwrap().to_owned();
    Tenant { org, key, trunk }
}

async fn routing_config_crud_follows_the_spec(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let t = tenant(&d).await;
    let get = || d.req("GET", CONFIG).token(&t.key).send();

    let r = get().await;
    assert_eq!((r.status, &r.body), (200, &Value::Null), "no config → null");
    assert_eq!(
        d.req("PUT", CONFIG)
            .token(&t.key)
            .json(json!({"enabled": false}))
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("DELETE", CONFIG).token(&t.key).send().await.status,
        404
    );

    for bad in [
        json!({}),
        json!({"workflow_definition": {}}),
        json!({"workflow_definition": null}),
        json!({"workflow_definition": [1]}),
        json!({"workflow_definition": "x"}),
    ] {
        let r = d
            .req("POST", CONFIG)
            .token(&t.key)
            .json(bad.clone())
            .send()
            .await;
        assert_eq!(r.status, 422, "{bad} → {r:?}");
        assert_eq!(r.error_paths(), ["$.workflow_definition"], "{bad}");
    }

    let r = d
        .req("POST", CONFIG)
        .token(&t.key)
        .json(json!({"workflow_definition": definition(), "fallback_agent_id": "agent_a", "fallback_agent_version": 1}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let created = r.body.clone();
    assert!(created["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(created["organization_id"], json!(t.org));
    assert_eq!(created["workflow_definition"], definition());
    assert_eq!(created["enabled"], json!(true), "enabled defaults to true");
    assert_eq!(created["fallback_agent_version"], json!(1));
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "organization_id",
            "workflow_definition",
            "fallback_agent_id",
            "fallback_agent_version",
            "enabled",
            "created_at",
            "updated_at"
        ]
    );
    assert!(r.etag().is_some());

    let r = d
        .req("POST", CONFIG)
        .token(&t.key)
        .json(json!({"workflow_definition": definition()}))
        .send()
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(!r.detail().is_empty());

    // PUT changes only the fields sent.
    let r = d
        .req("PUT", CONFIG)
        .token(&t.key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["enabled"], json!(false));
    assert_eq!(r.body["workflow_definition"], definition());
    assert_eq!(r.body["fallback_agent_id"], json!("agent_a"));
    assert_eq!(r.body["fallback_agent_version"], json!(1));
    assert_eq!(r.body["id"], created["id"]);
    assert_eq!(r.body["created_at"], created["created_at"]);
    let r = d
        .req("PUT", CONFIG)
        .token(&t.key)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(
        (r.status, &r.body["enabled"]),
        (200, &json!(false)),
        "empty PUT changes nothing"
    );

    // Clearing the fallback agent clears its version too.
    let r = d
        .req("PUT", CONFIG)
        .token(&t.key)
        .json(json!({"fallback_agent_id": null}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (
            &r.body["fallback_agent_id"],
            &r.body["fallback_agent_version"]
        ),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(get().await.body["fallback_agent_version"], Value::Null);

    for (bad, path) in [
        (
            json!({"workflow_definition": null}),
            "$.workflow_definition",
        ),
        (json!({"workflow_definition": {}}), "$.workflow_definition"),
        (json!({"enabled": null}), "$.enabled"),
        (
            json!({"fallback_agent_version": 1}),
            "$.fallback_agent_version",
        ),
        (
            json!({"fallback_agent_id": "agent_nope"}),
            "$.fallback_agent_id",
        ),
        (
            json!({"fallback_agent_id": "agent_a", "fallback_agent_version": 7}),
            "$.fallback_agent_version",
        ),
        (json!({"enabled": "yes"}), "$.enabled"),
    ] {
        let r = d
            .req("PUT", CONFIG)
            .token(&t.key)
            .json(bad.clone())
            .send()
            .await;
        assert_eq!(r.status, 422, "{bad} → {r:?}");
        assert_eq!(r.error_paths(), [path], "{bad}");
    }

    let r = d.req("DELETE", CONFIG).token(&t.key).send().await;
    assert_eq!((r.status, &r.body), (204, &Value::Null));
    assert_eq!(get().await.body, Value::Null);
    assert_eq!(
        d.req("DELETE", CONFIG).token(&t.key).send().await.status,
        404
    );
    d.stop().await;
}

async fn etag_and_if_match_guard_concurrent_changes(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let t = tenant(&d).await;
    let r = d
        .req("POST", CONFIG)
        .token(&t.key)
        .json(json!({"workflow_definition": definition()}))
        .send()
        .await;
    let first = r.etag().unwrap();
    assert_eq!(
        d.req("GET", CONFIG).token(&t.key).send().await.etag(),
        Some(first.clone())
    );

    let r = d
        .req("PUT", CONFIG)
        .token(&t.key)
        .header("If-Match", &first)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let second = r.etag().unwrap();
    assert_ne!(first, second);

    let r = d
        .req("PUT", CONFIG)
        .token(&t.key)
        .header("If-Match", &first)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(r.status, 412, "stale If-Match: {r:?}");
    assert!(!r.detail().is_empty());
    assert_eq!(
        d.req("GET", CONFIG).token(&t.key).send().await.body["enabled"],
        json!(false),
        "unchanged"
    );
    assert_eq!(
        d.req("DELETE", CONFIG)
            .token(&t.key)
            .header("If-Match", &first)
            .send()
            .await
            .status,
        412
    );
    assert_eq!(
        d.req("DELETE", CONFIG)
            .token(&t.key)
            .header("If-Match", "W/\"r2\"")
            .send()
            .await
            .status,
        412,
        "weak tags never match If-Match"
    );
    let r = d
        .req("PUT", CONFIG)
        .token(&t.key)
        .header("If-Match", "*")
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let current = r.etag().unwrap();
    assert_eq!(
        d.req("DELETE", CONFIG)
            .token(&t.key)
            .header("If-Match", &format!("\"x\", {current}"))
            .send()
            .await
            .status,
        204
    );
    d.stop().await;
}

async fn revisions_record_every_change_and_restore(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let t = tenant(&d).await;
    let other_key = d.org_key(&t.org, &[Scope::RoutingManage]).await;
    d.req("POST", CONFIG)
        .token(&t.key)
        .json(json!({"workflow_definition": definition()}))
        .send()
        .await;
    d.req("PUT", CONFIG)
        .token(&other_key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    d.req("DELETE", CONFIG).token(&t.key).send().await;

    let r = d
        .req("GET", "/core/inbound-routing-config/revisions")
        .token(&t.key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.body["items"].as_array().unwrap();
    let summary: Vec<(i64, &str)> = items
        .iter()
        .map(|i| {
            (
                i["revision"].as_i64().unwrap(),
                i["change"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(3, "delete"), (2, "update"), (1, "create")]);
    let key_id = |k: &str| {
        k.trim_start_matches("ak_")
            .split('.')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(items[1]["changed_by"], json!(key_id(&other_key)), "who");
    assert_eq!(items[0]["changed_by"], json!(key_id(&t.key)));
    assert!(items[0]["changed_at"].is_string(), "when");
    assert_eq!(items[1]["config"]["enabled"], json!(false), "what");
    assert_eq!(items[0]["config"], Value::Null);

    let r = d
        .req("GET", "/core/inbound-routing-config/revisions?limit=2")
        .token(&t.key)
        .send()
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = d
        .req(
            "GET",
            &format!("/core/inbound-routing-config/revisions?limit=2&cursor={cursor}"),
        )
        .token(&t.key)
        .send()
        .await;
    assert_eq!(r.body["items"][0]["revision"], json!(1));
    assert_eq!(r.body["next_cursor"], Value::Null);

    // Restoring revision 1 recreates the config; it is itself revision 4.
    let r = d
        .req("POST", "/core/inbound-routing-config/revisions/1/restore")
        .token(&t.key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (&r.body["enabled"], &r.body["workflow_definition"]),
        (&json!(true), &definition())
    );
    let r = d
        .req("POST", "/core/inbound-routing-config/revisions/2/restore")
        .token(&t.key)
        .send()
        .await;
    assert_eq!(
        (r.status, &r.body["enabled"]),
        (200, &json!(false)),
        "restore over an existing config"
    );
    let r = d
        .req("GET", "/core/inbound-routing-config/revisions?limit=1")
        .token(&t.key)
        .send()
        .await;
    assert_eq!(
        (
            &r.body["items"][0]["revision"],
            &r.body["items"][0]["change"]
        ),
        (&json!(5), &json!("restore"))
    );

    let r = d
        .req("POST", "/core/inbound-routing-config/revisions/3/restore")
        .token(&t.key)
        .send()
        .await;
    assert_eq!(r.status, 409, "a deletion cannot be restored: {r:?}");
    assert_eq!(
        d.req("POST", "/core/inbound-routing-config/revisions/99/restore")
            .token(&t.key)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("POST", "/core/inbound-routing-config/revisions/abc/restore")
            .token(&t.key)
            .send()
            .await
            .status,
        400
    );
    d.stop().await;
}

async fn authentication_failures_are_401(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let t = tenant(&d).await;
    let revoked = d.admin_key(&t.org).await;
    let revoked_id = revoked
        .trim_start_matches("ak_")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    assert!(d.store.revoke_token(&revoked_id).await.unwrap());
    let wrong_secret = format!("{}.{}", t.key.split('.').next().unwrap(), "x".repeat(43));
    let unknown = "ak_0000000000000000.secretsecret".to_owned();
    for token in [
        None,
        Some("garbage".to_owned()),
        Some(unknown),
        Some(wrong_secret),
        Some(revoked),
    ] {
        let mut req = d.req("GET", CONFIG);
        if let Some(token) = &token {
            req = req.token(token);
        }
        let r = req.send().await;
        assert_eq!(r.status, 401, "{token:?}: {r:?}");
        assert!(!r.detail().is_empty());
        assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    }
    let r = d
        .req("GET", CONFIG)
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await;
    assert_eq!(r.status, 401);

    let (_, pat) = d.user_pat(&Scope::ALL).await;
    let r = d.req("GET", CONFIG).token(&pat).send().await;
    assert_eq!(
        (r.status, r.detail()),
        (401, "Token is missing organization claim")
    );
    d.stop().await;
}

async fn personal_tokens_need_membership(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let a = tenant(&d).await;
    let b = tenant(&d).await;
    let (user, pat) = d.user_pat(&[Scope::RoutingRead, Scope::AgentsRead]).await;
    d.store.add_membership(&user, &a.org).await.unwrap();

    let r = d
        .req("GET", "/core/agents")
        .token(&pat)
        .header("X-Anyreach-Org", &a.org)
        .send()
        .await;
    assert_eq!(r.status, 200, "member: {r:?}");
    assert_eq!(r.body["items"][0]["id"], json!("agent_a"));
    let r = d
        .req("GET", "/core/agents")
        .token(&pat)
        .header("X-Anyreach-Org", &b.org)
        .send()
        .await;
    assert_eq!(r.status, 403, "non-member: {r:?}");
    let r = d
        .req("GET", "/core/agents")
        .token(&pat)
        .header("X-Anyreach-Org", "org_does_not_exist")
        .send()
        .await;
    assert_eq!(
        r.status, 403,
        "unknown org looks like any other non-member org"
    );
    let r = d
        .req("POST", "/core/agents")
        .token(&pat)
        .header("X-Anyreach-Org", &a.org)
        .json(json!({"name": "x"}))
        .send()
        .await;
    assert_eq!(r.status, 403, "scopes still apply to PATs");
    // An organization key cannot be pointed at another organization.
    let r = d
        .req("GET", CONFIG)
        .token(&a.key)
        .header("X-Anyreach-Org", &b.org)
        .send()
        .await;
    assert_eq!(r.status, 403);
    let r = d
        .req("GET", CONFIG)
        .token(&a.key)
        .header("X-Anyreach-Org", &a.org)
        .send()
        .await;
    assert_eq!(r.status, 200);
    d.stop().await;
}

/// (method, path, scope that grants it)
fn routes(agent: &str, trunk: &str, number: &str) -> Vec<(&'static str, String, Scope)> {
    use Scope::*;
    vec![
        ("GET", CONFIG.into(), RoutingRead),
        ("POST", CONFIG.into(), RoutingManage),
        ("PUT", CONFIG.into(), RoutingManage),
        ("DELETE", CONFIG.into(), RoutingManage),
        ("GET", format!("{CONFIG}/revisions"), RoutingRead),
        (
            "POST",
            format!("{CONFIG}/revisions/1/restore"),
            RoutingManage,
        ),
        ("GET", "/core/agents".into(), AgentsRead),
        ("POST", "/core/agents".into(), AgentsManage),
        ("GET", format!("/core/agents/{agent}"), AgentsRead),
        ("PUT", format!("/core/agents/{agent}"), AgentsManage),
        ("DELETE", format!("/core/agents/{agent}"), AgentsManage),
        ("GET", format!("/core/agents/{agent}/versions"), AgentsRead),
        (
            "POST",
            format!("/core/agents/{agent}/versions"),
            AgentsManage,
        ),
        (
            "POST",
            format!("/core/agents/{agent}/versions/1/publish"),
            AgentsManage,
        ),
        ("GET", "/core/trunks".into(), TrunksRead),
        ("POST", "/core/trunks".into(), TrunksManage),
        ("GET", format!("/core/trunks/{trunk}"), TrunksRead),
        ("PUT", format!("/core/trunks/{trunk}"), TrunksManage),
        ("DELETE", format!("/core/trunks/{trunk}"), TrunksManage),
        ("GET", "/core/phone-numbers".into(), NumbersRead),
        ("POST", "/core/phone-numbers".into(), NumbersManage),
        ("GET", format!("/core/phone-numbers/{number}"), NumbersRead),
        (
            "PUT",
            format!("/core/phone-numbers/{number}"),
            NumbersManage,
        ),
        (
            "DELETE",
            format!("/core/phone-numbers/{number}"),
            NumbersManage,
        ),
    ]
}

async fn every_route_enforces_its_scope(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let t = tenant(&d).await;
    let r = d
        .req("POST", "/core/phone-numbers")
        .token(&t.key)
        .json(json!({"phone_number": "+14155550100", "trunk_id": t.trunk}))
        .send()
        .await;
    let number = r.body["id"].as_str().unwrap().to_owned();
    for (method, path, scope) in routes("agent_a", &t.trunk, &number) {
        // Every scope except the one required (and the manage scope implying it).
        let others: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| !scope.is_granted_by(&[*s]))
            .collect();
        let denied = d.org_key(&t.org, &others).await;
        let r = d
            .req(method, &path)
            .token(&denied)
            .json(json!({}))
            .send()
            .await;
        assert_eq!(r.status, 403, "{method} {path} without {scope}: {r:?}");
        assert!(
            r.detail().contains(scope.as_str()),
            "{method} {path}: {}",
            r.detail()
        );

        let allowed = d.org_key(&t.org, &[scope]).await;
        let r = d
            .req(method, &path)
            .token(&allowed)
            .json(json!({}))
            .send()
            .await;
        assert!(
            ![401, 403].contains(&r.status),
            "{method} {path} with {scope}: {r:?}"
        );
    }
    // Read scopes never grant writes; manage grants reads.
    let read = d.org_key(&t.org, &[Scope::RoutingRead]).await;
    assert_eq!(
        d.req("DELETE", CONFIG).token(&read).send().await.status,
        403
    );
    let manage = d.org_key(&t.org, &[Scope::AgentsManage]).await;
    assert_eq!(
        d.req("GET", "/core/agents")
            .token(&manage)
            .send()
            .await
            .status,
        200
    );
    // Assigning numbers while publishing also needs phone_numbers:manage.
    let r = d
        .req("POST", "/core/agents/agent_a/versions/2/publish")
        .token(&manage)
        .json(json!({"phone_numbers": ["+14155550100"]}))
        .send()
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    d.stop().await;
}

async fn organizations_are_isolated(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let a = tenant(&d).await;
    let b = tenant(&d).await;
    d.req("POST", CONFIG)
        .token(&a.key)
        .json(json!({"workflow_definition": definition(), "fallback_agent_id": "agent_a"}))
        .send()
        .await;
    let r = d.req("POST", "/core/phone-numbers").token(&a.key)
        .json(json!({"phone_number": "+14155550100", "trunk_id": a.trunk, "inbound_agent_id": "agent_a"})).send().await;
    let number = r.body["id"].as_str().unwrap().to_owned();
    let snapshot = |key: String| {
        let d = &d;
        let trunk = a.trunk.clone();
        let number = number.clone();
        async move {
            let mut all = Vec::new();
            for path in [
                CONFIG.to_owned(),
                "/core/agents".into(),
                "/core/agents/agent_a/versions".into(),
                format!("/core/trunks/{trunk}"),
                format!("/core/phone-numbers/{number}"),
            ] {
                all.push(d.req("GET", &path).token(&key).send().await.body);
            }
            all
        }
    };
    let before = snapshot(a.key.clone()).await;

    // B sees none of A's data.
    assert_eq!(
        d.req("GET", CONFIG).token(&b.key).send().await.body,
        Value::Null
    );
    assert_eq!(
        d.req("GET", "/core/trunks").token(&b.key).send().await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        d.req("GET", "/core/phone-numbers")
            .token(&b.key)
            .send()
            .await
            .body["items"],
        json!([])
    );
    assert_eq!(
        d.req("GET", &format!("/core/trunks/{}", a.trunk))
            .token(&b.key)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("GET", &format!("/core/phone-numbers/{number}"))
            .token(&b.key)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("GET", "/core/inbound-routing-config/revisions")
            .token(&b.key)
            .send()
            .await
            .body["items"],
        json!([])
    );

    // B cannot change or delete A's data, nor point at it.
    assert_eq!(
        d.req("PUT", &format!("/core/trunks/{}", a.trunk))
            .token(&b.key)
            .json(json!({"name": "x"}))
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("DELETE", &format!("/core/trunks/{}", a.trunk))
            .token(&b.key)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("PUT", &format!("/core/phone-numbers/{number}"))
            .token(&b.key)
            .json(json!({}))
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("DELETE", &format!("/core/phone-numbers/{number}"))
            .token(&b.key)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("POST", "/core/inbound-routing-config/revisions/1/restore")
            .token(&b.key)
            .send()
            .await
            .status,
        404
    );
    let r = d
        .req("POST", "/core/phone-numbers")
        .token(&b.key)
        .json(json!({"phone_number": "+14155550199", "trunk_id": a.trunk}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (422, vec!["$.trunk_id".to_owned()]),
        "{r:?}"
    );
    // B's own agent_a is a different agent from A's.
    let r = d
        .req("DELETE", "/core/agents/agent_a")
        .token(&b.key)
        .send()
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = d
        .req("POST", CONFIG)
        .token(&b.key)
        .json(json!({"workflow_definition": definition(), "fallback_agent_id": "agent_a"}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (422, vec!["$.fallback_agent_id".to_owned()]),
        "{r:?}"
    );
    assert_eq!(
        d.req("POST", "/core/agents/agent_a/versions/1/publish")
            .token(&b.key)
            .send()
            .await
            .status,
        404
    );

    assert_eq!(
        snapshot(a.key.clone()).await,
        before,
        "A's data is unchanged"
    );
    d.stop().await;
}

async fn agents_trunks_and_numbers(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let t = tenant(&d).await;
    let k = &t.key;
    // Agents: generated ids, partial update, versions, publish with numbers.
    let r = d
        .req("POST", "/core/agents")
        .token(k)
        .json(json!({"name": "Gen", "sip_uri": "sip:gen@agents.example.com"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let gen = r.body["id"].as_str().unwrap().to_owned();
    assert!(gen.starts_with("agent_"));
    assert_eq!(
        d.req("POST", "/core/agents")
            .token(k)
            .json(json!({"id": "agent_a", "name": "dup"}))
            .send()
            .await
            .status,
        409
    );
    let r = d
        .req("PUT", &format!("/core/agents/{gen}"))
        .token(k)
        .json(json!({"sip_uri": null}))
        .send()
        .await;
    assert_eq!(
        (r.status, &r.body["sip_uri"], &r.body["name"]),
        (200, &Value::Null, &json!("Gen"))
    );
    let r = d
        .req("GET", "/core/agents/agent_a/versions")
        .token(k)
        .send()
        .await;
    let statuses: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["published", "draft"]);
    assert_eq!(
        d.req("GET", "/core/agents/nope")
            .token(k)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("GET", "/core/agents/nope/versions")
            .token(k)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("POST", "/core/agents/agent_a/versions/9/publish")
            .token(k)
            .send()
            .await
            .status,
        404
    );
    assert_eq!(
        d.req("POST", "/core/agents/agent_a/versions/x/publish")
            .token(k)
            .send()
            .await
            .status,
        400
    );

    // Trunks: CIDRs normalized, password write-only.
    let r = d
        .req("POST", "/core/trunks")
        .token(k)
        .json(json!({
        "name": "secure", "inbound_addresses": ["203.0.113.7/24", "::1"], "auth_username": "u",
        "auth_password": "s3cret", "trust_asserted_identity": true, "default_country_code": "44"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.body["inbound_addresses"],
        json!(["203.0.113.0/24", "::1/128"])
    );
    assert_eq!(r.body["has_auth_password"], json!(true));
    assert!(
        !r.body.to_string().contains("s3cret"),
        "password never returned"
    );
    let trunk2 = r.body["id"].as_str().unwrap().to_owned();
    let r = d
        .req("PUT", &format!("/core/trunks/{trunk2}"))
        .token(k)
        .json(json!({"auth_username": null, "auth_password": null}))
        .send()
        .await;
    assert_eq!(
        (r.status, &r.body["has_auth_password"], &r.body["name"]),
        (200, &json!(false), &json!("secure"))
    );
    let r = d
        .req("PUT", &format!("/core/trunks/{trunk2}"))
        .token(k)
        .json(json!({"auth_username": "only"}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (422, vec!["$.auth_password".to_owned()])
    );

    // Numbers: create, assign by publish, partial update, conflicts.
    let r = d
        .req("POST", "/core/phone-numbers")
        .token(k)
        .json(json!({"phone_number": "+14155550100", "trunk_id": t.trunk}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let number = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        d.req("POST", "/core/phone-numbers")
            .token(k)
            .json(json!({"phone_number": "+14155550100", "trunk_id": t.trunk}))
            .send()
            .await
            .status,
        409
    );
    let r = d
        .req("POST", "/core/agents/agent_a/versions/2/publish")
        .token(k)
        .json(json!({"phone_numbers": ["+14155550100"], "direction": "inbound"}))
        .send()
        .await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("published")),
        "{r:?}"
    );
    let r = d
        .req("GET", &format!("/core/phone-numbers/{number}"))
        .token(k)
        .send()
        .await;
    assert_eq!(
        (
            &r.body["inbound_agent_id"],
            &r.body["inbound_agent_version"]
        ),
        (&json!("agent_a"), &Value::Null)
    );
    let r = d
        .req("PUT", &format!("/core/phone-numbers/{number}"))
        .token(k)
        .json(json!({"inbound_agent_version": 2}))
        .send()
        .await;
    assert_eq!(
        (r.status, &r.body["inbound_agent_version"]),
        (200, &json!(2))
    );
    let r = d
        .req("PUT", &format!("/core/phone-numbers/{number}"))
        .token(k)
        .json(json!({"inbound_agent_id": null}))
        .send()
        .await;
    assert_eq!(
        (
            &r.body["inbound_agent_id"],
            &r.body["inbound_agent_version"]
        ),
        (&Value::Null, &Value::Null)
    );
    let r = d
        .req("POST", "/core/agents/agent_a/versions/2/publish")
        .token(k)
        .json(json!({"phone_numbers": ["+19995550000"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error_paths()),
        (422, vec!["$.phone_numbers[0]".to_owned()])
    );

    // Referenced rows cannot be deleted.
    assert_eq!(
        d.req("DELETE", &format!("/core/trunks/{}", t.trunk))
            .token(k)
            .send()
            .await
            .status,
        409
    );
    d.req("PUT", &format!("/core/phone-numbers/{number}"))
        .token(k)
        .json(json!({"inbound_agent_id": "agent_a"}))
        .send()
        .await;
    assert_eq!(
        d.req("DELETE", "/core/agents/agent_a")
            .token(k)
            .send()
            .await
            .status,
        409
    );
    assert_eq!(
        d.req("DELETE", &format!("/core/phone-numbers/{number}"))
            .token(k)
            .send()
            .await
            .status,
        204
    );
    assert_eq!(
        d.req("DELETE", &format!("/core/trunks/{}", t.trunk))
            .token(k)
            .send()
            .await
            .status,
        204
    );
    assert_eq!(
        d.req("DELETE", "/core/agents/agent_a")
            .token(k)
            .send()
            .await
            .status,
        204
    );

    let r = d.req("GET", "/core/agents?limit=1").token(k).send().await;
    assert_eq!(
        (
            r.body["items"].as_array().unwrap().len(),
            r.body["next_cursor"].is_null()
        ),
        (1, true)
    );
    for bad in ["limit=0", "limit=201", "limit=x", "bogus=1"] {
        let r = d
            .req("GET", &format!("/core/agents?{bad}"))
            .token(k)
            .send()
            .await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    d.stop().await;
}

async fn bad_input_is_a_4xx_with_detail_and_changes_nothing(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    let t = tenant(&d).await;
    let k = &t.key;
    d.req("POST", CONFIG)
        .token(k)
        .json(json!({"workflow_definition": definition()}))
        .send()
        .await;
    let state = || async {
        let mut all = Vec::new();
        for path in [
            CONFIG,
            "/core/agents",
            "/core/trunks",
            "/core/phone-numbers",
            "/core/inbound-routing-config/revisions",
        ] {
            all.push(d.req("GET", path).token(k).send().await.body);
        }
        all
    };
    let before = state().await;

    let malformed = [
        "{",
        "{\"enabled\": }",
        "nul",
        "[1,",
        "{\"a\":1} trailing",
        "\u{0}",
    ];
    for (method, path) in [
        ("POST", CONFIG),
        ("PUT", CONFIG),
        ("POST", "/core/agents"),
        ("POST", "/core/trunks"),
        ("POST", "/core/phone-numbers"),
    ] {
        for body in malformed {
            let r = d
                .req(method, path)
                .token(k)
                .header("content-type", "application/json")
                .raw(body)
                .send()
                .await;
            assert_eq!(r.status, 400, "{method} {path} {body:?}: {r:?}");
            assert!(r.detail().contains("JSON"), "{}", r.detail());
        }
        let r = d
            .req(method, path)
            .token(k)
            .header("content-type", "text/plain")
            .raw("{}")
            .send()
            .await;
        assert_eq!(r.status, 415, "{r:?}");
        let r = d
            .req(method, path)
            .token(k)
            .json(json!({"unknown_field": 1}))
            .send()
            .await;
        assert_eq!(r.status, 422, "{method} {path} unknown field: {r:?}");
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("unknown_field"),
            "{r:?}"
        );
        // 2 MiB, over the default 1 MiB limit: refused before being read.
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20));
        let r = d
            .req(method, path)
            .token(k)
            .header("content-type", "application/json")
            .raw(big)
            .send()
            .await;
        assert_eq!(r.status, 413, "{method} {path}: {r:?}");
        assert!(r.detail().contains("larger than"));
    }

    let wrong_types = [
        (
            CONFIG,
            "POST",
            json!({"workflow_definition": definition(), "enabled": "true"}),
            "$.enabled",
        ),
        (
            CONFIG,
            "POST",
            json!({"workflow_definition": definition(), "fallback_agent_version": "4"}),
            "$.fallback_agent_version",
        ),
        ("/core/agents", "POST", json!({"name": 5}), "$.name"),
        (
            "/core/trunks",
            "POST",
            json!({"name": "t", "inbound_addresses": "10.0.0.0/8"}),
            "$.inbound_addresses",
        ),
        (
            "/core/trunks",
            "POST",
            json!({"name": "t", "inbound_addresses": ["10.0.0.0/8", 7]}),
            "$.inbound_addresses[1]",
        ),
        (
            "/core/phone-numbers",
            "POST",
            json!({"phone_number": 14155550100u64, "trunk_id": t.trunk}),
            "$.phone_number",
        ),
    ];
    for (path, method, body, field) in wrong_types {
        let r = d.req(method, path).token(k).json(body.clone()).send().await;
        assert_eq!(r.status, 422, "{body}: {r:?}");
        assert_eq!(r.error_paths(), [field], "{body}");
    }

    let invalid = [
        (
            "/core/phone-numbers",
            json!({"phone_number": "4155550100", "trunk_id": t.trunk}),
            vec!["$.phone_number"],
        ),
        (
            "/core/phone-numbers",
            json!({"phone_number": "+1 415 555", "trunk_id": "nope"}),
            vec!["$.phone_number", "$.trunk_id"],
        ),
        (
            "/core/trunks",
            json!({"name": "t", "inbound_addresses": ["10.0.0.0/33", "ok.example", "10.0.0.1"], "default_country_code": "0"}),
            vec![
                "$.inbound_addresses[0]",
                "$.inbound_addresses[1]",
                "$.default_country_code",
            ],
        ),
        (
            "/core/trunks",
            json!({"name": "", "inbound_addresses": []}),
            vec!["$.name", "$.inbound_addresses"],
        ),
        (
            "/core/agents",
            json!({"name": "a", "sip_uri": "http://x"}),
            vec!["$.sip_uri"],
        ),
        (
            "/core/agents",
            json!({"id": "a b", "name": "a", "sip_uri": "sip:a b@x"}),
            vec!["$.id", "$.sip_uri"],
        ),
        (
            "/core/agents/agent_a/versions/1/publish",
            json!({"phone_numbers": ["+1", "123"], "direction": "outbound"}),
            vec!["$.direction", "$.phone_numbers[0]", "$.phone_numbers[1]"],
        ),
    ];
    for (path, body, paths) in invalid {
        let r = d.req("POST", path).token(k).json(body.clone()).send().await;
        assert_eq!(r.status, 422, "{body}: {r:?}");
        assert_eq!(r.error_paths(), paths, "{body}");
        assert!(!r.detail().is_empty());
    }

    // SQL metacharacters in every string field: rejected by validation or
    // stored verbatim, never an error of the database.
    let sql = "x'); DROP TABLE agents; --\"\\";
    for (path, body) in [
        (
            "/core/agents",
            json!({"id": sql, "name": sql, "sip_uri": sql}),
        ),
        (
            "/core/trunks",
            json!({"name": sql, "inbound_addresses": [sql], "auth_username": sql, "auth_password": sql, "default_country_code": sql}),
        ),
        (
            "/core/phone-numbers",
            json!({"phone_number": sql, "trunk_id": sql, "inbound_agent_id": sql}),
        ),
        (
            CONFIG,
            json!({"workflow_definition": {"k": sql}, "fallback_agent_id": sql}),
        ),
    ] {
        let r = d.req("POST", path).token(k).json(body.clone()).send().await;
        assert!(r.status == 422 || r.status == 409, "{path}: {r:?}");
    }
    assert_eq!(state().await, before, "nothing changed");

    // A name with metacharacters is just text.
    let r = d
        .req("POST", "/core/agents")
        .token(k)
        .json(json!({"id": "agent_sql", "name": sql}))
        .send()
        .await;
    assert_eq!((r.status, &r.body["name"]), (201, &json!(sql)));
    assert_eq!(
        d.req("GET", "/core/agents/agent_sql")
            .token(k)
            .send()
            .await
            .body["name"],
        json!(sql)
    );
    let r = d
        .req("GET", &format!("/core/agents/{}", urlencode(sql)))
        .token(k)
        .send()
        .await;
    assert_eq!(r.status, 404);
    d.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn health_readiness_and_openapi(backend: Backend) {
    let Some(d) = TestDaemon::start(backend).await else {
        return;
    };
    assert_eq!(d.req("GET", "/healthz").send().await.status, 200);
    let r = d.req("GET", "/readyz").send().await;
    assert_eq!((r.status, &r.body["status"]), (200, &json!("ready")));
    let r = d.req("GET", "/openapi.json").send().await;
    assert_eq!(r.status, 200);
    let paths = r.body["paths"].as_object().unwrap();
    for path in [
        CONFIG,
        "/core/inbound-routing-config/revisions",
        "/core/agents/{id}/versions/{version}/publish",
        "/core/trunks/{id}",
        "/core/phone-numbers",
    ] {
        assert!(paths.contains_key(path), "{path} missing from OpenAPI");
    }
    assert!(r.body["components"]["schemas"]["RoutingConfigView"].is_object());
    let r = d.req("GET", "/nope").send().await;
    assert_eq!((r.status, r.detail()), (404, "no such route"));
    let r = d.req("PATCH", CONFIG).send().await;
    assert_eq!(r.status, 405);
    assert!(!r.detail().is_empty());
    d.stop().await;
}

on_both_backends!(
    routing_config_crud_follows_the_spec,
    etag_and_if_match_guard_concurrent_changes,
    revisions_record_every_change_and_restore,
    authentication_failures_are_401,
    personal_tokens_need_membership,
    every_route_enforces_its_scope,
    organizations_are_isolated,
    agents_trunks_and_numbers,
    bad_input_is_a_4xx_with_detail_and_changes_nothing,
    health_readiness_and_openapi,
);
