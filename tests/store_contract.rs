//! The store contract: one battery, run against SQLite and PostgreSQL.

mod support;

use inroute::store::types::*;
use inroute::store::{new_id, Store, StoreError};
use inroute::token::{self, Scope, TokenKind};
use serde_json::json;
use support::{Backend, TestDb};

async fn store(backend: Backend) -> Option<(TestDb, Store)> {
    let db = TestDb::new(backend).await?;
    let store = db.store().await;
    Some((db, store))
}

async fn org(store: &Store) -> String {
    store.create_org(&new_id("org"), "Org").await.unwrap().id
}

fn page(limit: u32, after: Option<String>) -> PageRequest {
    PageRequest { limit, after }
}

fn trunk_fields(name: &str) -> TrunkFields {
    TrunkFields {
        name: name.to_owned(),
        inbound_addresses: vec!["203.0.113.0/24".into(), "2001:db8::/32".into()],
        auth_username: Some("user".into()),
        auth_password: Some("pa'ss\"word;--".into()),
        trust_asserted_identity: true,
        default_country_code: Some("1".into()),
    }
}

fn agent_fields(name: &str) -> AgentFields {
    AgentFields {
        name: name.to_owned(),
        sip_uri: None,
    }
}

fn config_fields(agent: Option<&str>) -> RoutingConfigFields {
    RoutingConfigFields {
        // Key order must survive storage: "z" stays before "a".
        workflow_definition: json!({"z": 1, "a": {"y": "'; DROP TABLE x; --", "b": "é✓"}}),
        fallback_agent_id: agent.map(str::to_owned),
        fallback_agent_version: None,
        enabled: true,
    }
}

async fn organizations_tokens_and_memberships(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let org_id = org(&store).await;
    assert_eq!(store.org(&org_id).await.unwrap().unwrap().name, "Org");
    assert!(store.org("org_missing").await.unwrap().is_none());
    assert!(store.orgs().await.unwrap().iter().any(|o| o.id == org_id));
    assert!(matches!(
        store.create_org(&org_id, "again").await,
        Err(StoreError::Conflict { .. })
    ));

    let minted = token::mint(TokenKind::OrgKey);
    let created = store
        .create_token(&NewToken {
            id: minted.id.clone(),
            kind: TokenKind::OrgKey,
            organization_id: Some(org_id.clone()),
            user_id: None,
            name: "ci".into(),
            scopes: vec![Scope::AgentsRead, Scope::RoutingManage],
            secret_hash: minted.secret_hash.clone(),
        })
        .await
        .unwrap();
    let found = store.token(&minted.id).await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(found.scopes, vec![Scope::AgentsRead, Scope::RoutingManage]);
    assert!(found.revoked_at.is_none());
    store.touch_token(&minted.id).await.unwrap();
    assert!(store
        .token(&minted.id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .is_some());
    assert_eq!(store.org_tokens(&org_id).await.unwrap().len(), 1);
    assert!(store.revoke_token(&minted.id).await.unwrap());
    assert!(
        !store.revoke_token(&minted.id).await.unwrap(),
        "second revoke is a no-op"
    );
    assert!(store
        .token(&minted.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());

    let user = store.create_user(&new_id("usr"), "U").await.unwrap().id;
    assert!(!store.is_member(&user, &org_id).await.unwrap());
    store.add_membership(&user, &org_id).await.unwrap();
    store.add_membership(&user, &org_id).await.unwrap();
    assert!(store.is_member(&user, &org_id).await.unwrap());
    assert!(matches!(
        store.add_membership(&user, "org_missing").await,
        Err(StoreError::Conflict { .. })
    ));
}

async fn agents_versions_and_publishing(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let (a, b) = (org(&store).await, org(&store).await);
    let agent = store
        .create_agent(&a, "agent_x", &agent_fields("X"))
        .await
        .unwrap();
    assert_eq!(agent.id, "agent_x");
    assert!(matches!(
        store
            .create_agent(&a, "agent_x", &agent_fields("dup"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    // Agent ids are per organization: B may use the same id, and sees only its own.
    store
        .create_agent(&b, "agent_x", &agent_fields("B's X"))
        .await
        .unwrap();
    assert_eq!(store.agent(&a, "agent_x").await.unwrap().unwrap().name, "X");
    assert_eq!(
        store.agent(&b, "agent_x").await.unwrap().unwrap().name,
        "B's X"
    );

    let changed = AgentFields {
        name: "X2".into(),
        sip_uri: Some("sip:x@agents.example".into()),
    };
    let updated = store
        .update_agent(&a, "agent_x", &changed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.sip_uri.as_deref()),
        ("X2", Some("sip:x@agents.example"))
    );
    assert!(store
        .update_agent(&a, "agent_none", &changed)
        .await
        .unwrap()
        .is_none());

    for n in 1..=3 {
        let v = store.create_agent_version(&a, "agent_x").await.unwrap();
        assert_eq!((v.version, v.status.as_str()), (n, "draft"));
    }
    assert_eq!(
        store.agent_versions(&b, "agent_x").await.unwrap().len(),
        0,
        "versions are per org"
    );

    let trunk = store.create_trunk(&a, &trunk_fields("t")).await.unwrap();
    let number = store
        .create_phone_number(
            &a,
            &PhoneNumberFields {
                phone_number: "+14155550100".into(),
                trunk_id: trunk.id.clone(),
                inbound_agent_id: None,
                inbound_agent_version: None,
            },
        )
        .await
        .unwrap();
    let published = store
        .publish_agent_version(&a, "agent_x", 2, &["+14155550100".into()])
        .await
        .unwrap();
    assert_eq!(published.status, "published");
    assert!(published.published_at.is_some());
    let assigned = store.phone_number(&a, &number.id).await.unwrap().unwrap();
    assert_eq!(assigned.fields.inbound_agent_id.as_deref(), Some("agent_x"));

    // All or nothing: an unknown number rolls the publish back.
    let err = store
        .publish_agent_version(
            &a,
            "agent_x",
            3,
            &["+14155550100".into(), "+19995550000".into()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { ref path, .. } if path == "$.phone_numbers[1]"),
        "{err:?}"
    );
    assert_eq!(
        store
            .agent_version(&a, "agent_x", 3)
            .await
            .unwrap()
            .unwrap()
            .status,
        "draft"
    );
    assert!(matches!(
        store.publish_agent_version(&a, "agent_x", 9, &[]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.publish_agent_version(&b, "agent_x", 2, &[]).await,
        Err(StoreError::NotFound { .. })
    ));

    // Referenced agents cannot be deleted; unreferenced ones can.
    assert!(matches!(
        store.delete_agent(&a, "agent_x").await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.delete_agent(&b, "agent_x").await.unwrap());
    assert!(!store.delete_agent(&b, "agent_x").await.unwrap());
}

async fn listing_pages_by_cursor(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let (a, b) = (org(&store).await, org(&store).await);
    for i in 0..5 {
        store
            .create_agent(&a, &format!("agent_{i}"), &agent_fields("x"))
            .await
            .unwrap();
    }
    store
        .create_agent(&b, "agent_b", &agent_fields("b"))
        .await
        .unwrap();
    let first = store.agents(&a, &page(2, None)).await.unwrap();
    assert_eq!(
        first
            .items
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["agent_0", "agent_1"]
    );
    let second = store.agents(&a, &page(2, first.next_cursor)).await.unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["agent_2", "agent_3"]
    );
    let third = store
        .agents(&a, &page(2, second.next_cursor))
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.next_cursor.is_none());
    assert_eq!(
        store.agents(&b, &page(50, None)).await.unwrap().items.len(),
        1
    );
}

async fn trunks_and_numbers(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let (a, b) = (org(&store).await, org(&store).await);
    let trunk = store.create_trunk(&a, &trunk_fields("main")).await.unwrap();
    assert_eq!(store.trunk(&a, &trunk.id).await.unwrap().unwrap(), trunk);
    assert_eq!(
        trunk.fields,
        trunk_fields("main"),
        "stored verbatim, list order kept"
    );
    assert!(
        store.trunk(&b, &trunk.id).await.unwrap().is_none(),
        "isolation"
    );
    assert!(store
        .update_trunk(&b, &trunk.id, &trunk_fields("evil"))
        .await
        .unwrap()
        .is_none());
    assert!(!store.delete_trunk(&b, &trunk.id).await.unwrap());

    let mut changed = trunk_fields("renamed");
    changed.auth_username = None;
    changed.auth_password = None;
    let updated = store
        .update_trunk(&a, &trunk.id, &changed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.fields, changed);

    let fields = PhoneNumberFields {
        phone_number: "+442071838750".into(),
        trunk_id: trunk.id.clone(),
        inbound_agent_id: None,
        inbound_agent_version: None,
    };
    let number = store.create_phone_number(&a, &fields).await.unwrap();
    assert_eq!(number.fields, fields);
    // A number belongs to one organization only.
    let trunk_b = store.create_trunk(&b, &trunk_fields("b")).await.unwrap();
    let mut stolen = fields.clone();
    stolen.trunk_id = trunk_b.id.clone();
    assert!(matches!(
        store.create_phone_number(&b, &stolen).await,
        Err(StoreError::Conflict { .. })
    ));
    // No cross-tenant references: B's trunk or agent cannot be used by A.
    let mut cross = fields.clone();
    cross.phone_number = "+442071838751".into();
    cross.trunk_id = trunk_b.id.clone();
    assert!(matches!(
        store.create_phone_number(&a, &cross).await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .create_agent(&b, "agent_b", &agent_fields("b"))
        .await
        .unwrap();
    cross.trunk_id = trunk.id.clone();
    cross.inbound_agent_id = Some("agent_b".into());
    assert!(matches!(
        store.create_phone_number(&a, &cross).await,
        Err(StoreError::Conflict { .. })
    ));

    assert!(store.phone_number(&b, &number.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_trunk(&a, &trunk.id).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(!store.delete_phone_number(&b, &number.id).await.unwrap());
    assert!(store.delete_phone_number(&a, &number.id).await.unwrap());
    assert!(store.delete_trunk(&a, &trunk.id).await.unwrap());
    assert_eq!(
        store
            .phone_numbers(&a, &page(10, None))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
}

async fn routing_config_revisions(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let (a, b) = (org(&store).await, org(&store).await);
    store
        .create_agent(&a, "agent_fb", &agent_fields("fb"))
        .await
        .unwrap();
    let created = store
        .create_routing_config(
            &a,
            &config_fields(Some("agent_fb")),
            ChangeKind::Create,
            "tok1",
        )
        .await
        .unwrap();
    assert_eq!(created.revision, 1);
    assert_eq!(created.fields, config_fields(Some("agent_fb")));
    let read = store.routing_config(&a).await.unwrap().unwrap();
    assert_eq!(read, created);
    assert_eq!(
        serde_json::to_string(&read.fields.workflow_definition).unwrap(),
        r#"{"z":1,"a":{"y":"'; DROP TABLE x; --","b":"é✓"}}"#,
        "key order and text survive storage"
    );
    assert!(
        store.routing_config(&b).await.unwrap().is_none(),
        "isolation"
    );
    assert!(matches!(
        store
            .create_routing_config(&a, &config_fields(None), ChangeKind::Create, "tok1")
            .await,
        Err(StoreError::Conflict { .. })
    ));

    let mut off = config_fields(None);
    off.enabled = false;
    let updated = store
        .update_routing_config(&a, 1, &off, ChangeKind::Update, "tok2")
        .await
        .unwrap();
    assert_eq!((updated.revision, updated.fields.enabled), (2, false));
    assert_eq!(updated.created_at, created.created_at);
    assert!(matches!(
        store
            .update_routing_config(&a, 1, &off, ChangeKind::Update, "tok2")
            .await,
        Err(StoreError::Stale)
    ));
    assert!(matches!(
        store
            .update_routing_config(&b, 2, &off, ChangeKind::Update, "tok2")
            .await,
        Err(StoreError::Stale)
    ));
    assert!(matches!(
        store.delete_routing_config(&a, 1, "tok3").await,
        Err(StoreError::Stale)
    ));
    store.delete_routing_config(&a, 2, "tok3").await.unwrap();
    assert!(store.routing_config(&a).await.unwrap().is_none());

    // Numbering continues after a delete; a restore is its own revision.
    let again = store
        .create_routing_config(&a, &config_fields(None), ChangeKind::Restore, "tok4")
        .await
        .unwrap();
    assert_eq!(again.revision, 4);
    let revisions = store.routing_config_revisions(&a, 10, None).await.unwrap();
    let summary: Vec<_> = revisions
        .iter()
        .map(|r| (r.revision, r.change, r.changed_by.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (4, ChangeKind::Restore, "tok4"),
            (3, ChangeKind::Delete, "tok3"),
            (2, ChangeKind::Update, "tok2"),
            (1, ChangeKind::Create, "tok1"),
        ]
    );
    assert!(revisions[1].config.is_none());
    assert_eq!(revisions[2].config.as_ref(), Some(&off));
    let older = store
        .routing_config_revisions(&a, 2, Some(3))
        .await
        .unwrap();
    assert_eq!(older.iter().map(|r| r.revision).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(
        store
            .routing_config_revision(&a, 2)
            .await
            .unwrap()
            .unwrap()
            .config,
        Some(off)
    );
    assert!(store
        .routing_config_revision(&b, 2)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .routing_config_revisions(&b, 10, None)
        .await
        .unwrap()
        .is_empty());
}

async fn fallback_agent_must_exist_in_the_organization(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let (a, b) = (org(&store).await, org(&store).await);
    store
        .create_agent(&b, "agent_b", &agent_fields("b"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_routing_config(&a, &config_fields(Some("agent_b")), ChangeKind::Create, "t")
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.routing_config(&a).await.unwrap().is_none());
    assert!(
        store
            .routing_config_revisions(&a, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "no orphan revision"
    );
}

async fn migrations_are_idempotent(backend: Backend) {
    let Some((db, store)) = store(backend).await else {
        return;
    };
    store.migrate().await.unwrap();
    db.store().await.ping().await.unwrap();
}

async fn decision_batches_are_written_once_across_retries(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let org_id = org(&store).await;
    // 70 records: one full multi-row statement and a remainder.
    let batch: Vec<std::sync::Arc<DecisionRecord>> = (0..70)
        .map(|i| {
            std::sync::Arc::new(DecisionRecord {
                id: format!("dec_{i:04}"),
                organization_id: org_id.clone(),
                call_id: format!("call-{i}@carrier; '--"),
                trunk_id: None,
                caller_number: Some("+14155550100".into()),
                called_number: Some("+15550100001".into()),
                // Whole microseconds: PostgreSQL keeps no more.
                received_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
                duration_us: i,
                outcome: "redirect".into(),
                reason: "agent".into(),
                agent_id: Some("agent_main".into()),
                agent_version: Some(1),
                sip_status: 302,
                initial_context: Some("é✓".into()),
                custom_metadata: Some(json!({"z": 1, "a": 2})),
                trace: Some(JsonText::encode(&json!([{"step": "in", "type": "input"}]))),
            })
        })
        .collect();
    store.insert_decisions(&batch).await.unwrap();
    // A retry after an outage writes the same batch again: nothing doubles.
    store.insert_decisions(&batch).await.unwrap();
    let stored = store
        .decisions(&org_id, &DecisionFilter::default(), 200, None)
        .await
        .unwrap();
    assert_eq!(stored.len(), 70);
    let last = store.decision(&org_id, "dec_0069").await.unwrap().unwrap();
    assert_eq!(last, *batch[69], "every column round-trips");
    assert_eq!(
        serde_json::to_value(&last).unwrap()["trace"][0]["step"],
        json!("in"),
        "the trace is served as JSON, not as a string"
    );
}

on_both_backends!(
    decision_batches_are_written_once_across_retries,
    organizations_tokens_and_memberships,
    agents_versions_and_publishing,
    listing_pages_by_cursor,
    trunks_and_numbers,
    routing_config_revisions,
    fallback_agent_must_exist_in_the_organization,
    migrations_are_idempotent,
);
