//! `serve --demo`: a ready-to-use organization for newcomers.
//!
//! Idempotent: the organization, trunk, agents, numbers and routing config
//! are created only if missing. A fresh organization key with every scope is
//! minted on every start (earlier demo keys are revoked), because secrets are
//! stored hashed and cannot be shown again.

use std::net::SocketAddr;

use serde_json::json;

use crate::store::types::NewToken;
use crate::store::types::{
    AgentFields, ChangeKind, PageRequest, PhoneNumberFields, RoutingConfigFields, TrunkFields,
};
use crate::store::{Store, StoreError};
use crate::token::{self, Scope, TokenKind};

/// The demo organization's id.
pub const ORG_ID: &str = "org_demo";
const KEY_NAME: &str = "demo";
const TRUNK_NAME: &str = "demo-trunk";
/// The demo numbers and the agent each is assigned to. The workflow sends
/// ...0002 to Sales, rejects ...0003, routes ...0004 after a 2 s `wait` (to
/// try CANCEL), and everything else to Support.
pub const NUMBERS: [(&str, &str); 4] = [
    ("+15550100001", "agent_support"),
    ("+15550100002", "agent_sales"),
    ("+15550100003", "agent_support"),
    ("+15550100004", "agent_support"),
];
const AGENTS: [(&str, &str); 2] = [("agent_support", "Support"), ("agent_sales", "Sales")];

/// What `--demo` created and the key to use it.
#[derive(Debug, Clone)]
pub struct DemoOrg {
    pub organization_id: String,
    pub api_key: String,
}

impl DemoOrg {
    /// The text printed once at start-up.
    pub fn banner(&self, admin: SocketAddr, sip_udp: &[SocketAddr]) -> String {
        let sip: Vec<String> = sip_udp.iter().map(ToString::to_string).collect();
        let numbers: Vec<&str> = NUMBERS.iter().map(|(n, _)| *n).collect();
        format!(
            "\ninroute demo organization `{org}` is ready.\n\
             SIP (UDP): {sip}; numbers {numbers} (trunk accepts 127.0.0.0/8 and ::1)\n\
             Admin API: http://{admin}\n\
             Organization key (all scopes, shown once): {key}\n\n\
             Try:\n  curl -s -H 'Authorization: Bearer {key}' http://{admin}/core/inbound-routing-config\n",
            org = self.organization_id,
            key = self.api_key,
            sip = sip.join(", "),
            numbers = numbers.join(", "),
        )
    }
}

/// Creates whatever part of the demo organization is missing and mints a key.
///
/// # Errors
/// Store failures, or a demo number already owned by another organization.
pub async fn seed(store: &Store) -> Result<DemoOrg, StoreError> {
    if store.org(ORG_ID).await?.is_none() {
        store.create_org(ORG_ID, "Demo").await?;
    }
    let api_key = mint_key(store).await?;
    let trunk_id = ensure_trunk(store).await?;
    for (id, name) in AGENTS {
        ensure_published_agent(store, id, name).await?;
    }
    ensure_numbers(store, &trunk_id).await?;
    if store.routing_config(ORG_ID).await?.is_none() {
        store
            .create_routing_config(ORG_ID, &routing_config(), ChangeKind::Create, "demo")
            .await?;
    }
    Ok(DemoOrg {
        organization_id: ORG_ID.to_owned(),
        api_key,
    })
}

async fn mint_key(store: &Store) -> Result<String, StoreError> {
    store.revoke_org_tokens_named(ORG_ID, KEY_NAME).await?;
    let minted = token::mint(TokenKind::OrgKey);
    store
        .create_token(&NewToken {
            id: minted.id,
            kind: TokenKind::OrgKey,
            organization_id: Some(ORG_ID.to_owned()),
            user_id: None,
            name: KEY_NAME.to_owned(),
            scopes: Scope::ALL.to_vec(),
            secret_hash: minted.secret_hash,
        })
        .await?;
    Ok(minted.bearer)
}

fn all() -> PageRequest {
    PageRequest {
        limit: 1000,
        after: None,
    }
}

async fn ensure_trunk(store: &Store) -> Result<String, StoreError> {
    let trunks = store.trunks(ORG_ID, &all()).await?;
    if let Some(trunk) = trunks
        .items
        .into_iter()
        .find(|t| t.fields.name == TRUNK_NAME)
    {
        return Ok(trunk.id);
    }
    let fields = TrunkFields {
        name: TRUNK_NAME.to_owned(),
        inbound_addresses: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
        auth_username: None,
        auth_password: None,
        trust_asserted_identity: true,
        default_country_code: Some("1".to_owned()),
    };
    Ok(store.create_trunk(ORG_ID, &fields).await?.id)
}

async fn ensure_published_agent(store: &Store, id: &str, name: &str) -> Result<(), StoreError> {
    if store.agent(ORG_ID, id).await?.is_none() {
        let fields = AgentFields {
            name: name.to_owned(),
            sip_uri: None,
        };
        store.create_agent(ORG_ID, id, &fields).await?;
    }
    let versions = store.agent_versions(ORG_ID, id).await?;
    if !versions.iter().any(|v| v.status == "published") {
        let version = match versions.first() {
            Some(v) => v.version,
            None => store.create_agent_version(ORG_ID, id).await?.version,
        };
        store
            .publish_agent_version(ORG_ID, id, version, &[])
            .await?;
    }
    Ok(())
}

async fn ensure_numbers(store: &Store, trunk_id: &str) -> Result<(), StoreError> {
    let existing = store.phone_numbers(ORG_ID, &all()).await?.items;
    for (number, agent) in NUMBERS {
        if existing.iter().any(|n| n.fields.phone_number == number) {
            continue;
        }
        let fields = PhoneNumberFields {
            phone_number: number.to_owned(),
            trunk_id: trunk_id.to_owned(),
            inbound_agent_id: Some(agent.to_owned()),
            inbound_agent_version: None,
        };
        store.create_phone_number(ORG_ID, &fields).await?;
    }
    Ok(())
}

/// Sales number → Sales agent with a context line; the reject and slow
/// numbers as above; everything else → Support.
fn routing_config() -> RoutingConfigFields {
    RoutingConfigFields {
        workflow_definition: json!({
            "version": 1,
            "start": "in",
            "steps": [
                {"id": "in", "type": "input", "next": "by_number"},
                {"id": "by_number", "type": "condition",
                 "branches": [
                    {"name": "sales", "when": "{{ input.called_number = '+15550100002' }}", "next": "sales"},
                    {"name": "reject", "when": "{{ input.called_number = '+15550100003' }}", "next": "decline"},
                    {"name": "slow", "when": "{{ input.called_number = '+15550100004' }}", "next": "slow"}],
                 "default": "support"},
                {"id": "decline", "type": "output", "fields": {"reject": true}},
                {"id": "slow", "type": "wait", "ms": 2000, "next": "support"},
                {"id": "sales", "type": "output", "fields": {
                    "agent_id": "agent_sales",
                    "initial_context": "{{ 'Caller ' & input.caller_number & ' dialed sales' }}"}},
                {"id": "support", "type": "output", "fields": {"agent_id": "agent_support"}}
            ]
        }),
        fallback_agent_id: Some("agent_support".to_owned()),
        fallback_agent_version: None,
        enabled: true,
    }
}
