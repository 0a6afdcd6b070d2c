//! Creates the load benchmark's data: 100 organizations x 100 numbers
//! (10,000 numbers) on one trunk network (127.0.0.0/8), each organization with
//! a workflow of a `schedule`, two `condition`s and an `output` with
//! `initial_context`, and a SIPp CSV of varied caller and called numbers.
//!
//! `cargo run --release --example bench_setup -- DATABASE_URL CSV_PATH [ORGS] [NUMBERS_PER_ORG]`

use inroute::config::DatabaseConfig;
use inroute::store::types::{
    AgentFields, ChangeKind, PhoneNumberFields, RoutingConfigFields, TrunkFields,
};
use inroute::store::Store;
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, csv) = (
        args.get(1).expect("DATABASE_URL"),
        args.get(2).expect("CSV_PATH"),
    );
    let orgs: usize = args.get(3).map_or(Ok(100), |s| s.parse())?;
    let per_org: usize = args.get(4).map_or(Ok(100), |s| s.parse())?;
    let store = Store::connect(&DatabaseConfig {
        url: url.clone(),
        max_connections: 4,
        acquire_timeout_ms: 10_000,
    })
    .await?;
    store.migrate().await?;
    let mut lines = vec!["SEQUENTIAL".to_owned()];
    for o in 0..orgs {
        let org = format!("org_bench{o:03}");
        store.create_org(&org, &format!("Bench {o}")).await?;
        let trunk = store
            .create_trunk(
                &org,
                &TrunkFields {
                    name: "carrier".into(),
                    inbound_addresses: vec!["127.0.0.0/8".into()],
                    auth_username: None,
                    auth_password: None,
                    trust_asserted_identity: false,
                    default_country_code: Some("1".into()),
                },
            )
            .await?;
        for agent in ["agent_main", "agent_intl"] {
            store
                .create_agent(
                    &org,
                    agent,
                    &AgentFields {
                        name: agent.into(),
                        sip_uri: None,
                    },
                )
                .await?;
            let v = store.create_agent_version(&org, agent).await?;
            store
                .publish_agent_version(&org, agent, v.version, &[])
                .await?;
        }
        for n in 0..per_org {
            let number = format!("+1555{o:03}{n:04}");
            let fields = PhoneNumberFields {
                phone_number: number.clone(),
                trunk_id: trunk.id.clone(),
                inbound_agent_id: None,
                inbound_agent_version: None,
            };
            store.create_phone_number(&org, &fields).await?;
        }
        let definition = json!({"version": 1, "start": "in", "steps": [
            {"id": "in", "type": "input", "next": "hours"},
            {"id": "hours", "type": "schedule", "timezone": "America/New_York",
             "open": {"daily": ["00:00-24:00"]}, "closed_dates": ["2020-12-25"],
             "branches": {"open": "intl", "closed": "closed"}},
            {"id": "intl", "type": "condition", "branches": [
                {"name": "uk", "when": "{{ $substring(input.caller_number, 0, 3) = '+44' }}", "next": "to_intl"}],
             "default": "vip"},
            {"id": "vip", "type": "condition", "branches": [
                {"name": "vip", "when": "{{ $substring(input.caller_number, 11, 1) = '7' }}", "next": "to_intl"}],
             "default": "to_main"},
            {"id": "to_main", "type": "output", "fields": {"agent_id": "agent_main",
                "initial_context": "{{ 'Caller ' & input.caller_number & ' dialed ' & input.called_number }}"}},
            {"id": "to_intl", "type": "output", "fields": {"agent_id": "agent_intl",
                "initial_context": "{{ 'Priority caller ' & input.caller_number }}"}},
            {"id": "closed", "type": "output", "fields": {"reject": true}}
        ]});
        let fields = RoutingConfigFields {
            workflow_definition: definition,
            fallback_agent_id: Some("agent_main".into()),
            fallback_agent_version: None,
            enabled: true,
        };
        store
            .create_routing_config(&org, &fields, ChangeKind::Create, "bench")
            .await?;
    }
    // Varied callers (some +44) over every number, interleaved across organizations.
    for i in 0..(orgs * per_org) {
        let (o, n) = (i % orgs, (i / orgs) % per_org);
        let caller = if i % 10 == 3 {
            format!("+44207183{:04}", i % 10_000)
        } else {
            format!("+1415555{:04}", i % 10_000)
        };
        lines.push(format!("{caller};+1555{o:03}{n:04}"));
    }
    std::fs::write(csv, lines.join("\n") + "\n")?;
    eprintln!(
        "created {orgs} organizations, {} numbers; wrote {csv}",
        orgs * per_org
    );
    Ok(())
}
