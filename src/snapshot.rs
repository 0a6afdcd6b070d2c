//! The in-memory routing snapshot: everything a call needs, per organization,
//! loaded from the store and swapped atomically when it changes.
//!
//! A call reads one `Arc<OrgSnapshot>` and never sees half a change. Writers
//! (the admin API after a successful write) reload the organization from the
//! store; reloads are serialized so an older read can never replace a newer one.
//!
//! Allowed imports: `store`, `routing`, `arc-swap`. Must not import `admin` or `sip`.

use std::collections::HashMap;
use std::sync::Arc;

use std::net::IpAddr;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::sync::Mutex;

use crate::routing::{self, AgentDirectory, AgentRef, Limits, Plan, ResolvedAgent, Unresolved};
use crate::store::{Store, StoreError};

/// One organization's routing state.
#[derive(Debug, Default)]
pub struct OrgSnapshot {
    pub organization_id: String,
    pub config: Option<ConfigEntry>,
    pub agents: Agents,
    pub secrets: Arc<HashMap<String, String>>,
    /// E.164 → the number's own agent assignment.
    pub numbers: HashMap<String, NumberEntry>,
    pub trunks: Vec<TrunkEntry>,
}

/// A trunk as the call path uses it.
#[derive(Debug, Clone)]
pub struct TrunkEntry {
    pub id: String,
    pub networks: Vec<IpNet>,
    pub trust_asserted_identity: bool,
    pub default_country_code: Option<String>,
}

/// The routing config as calls use it.
#[derive(Debug)]
pub struct ConfigEntry {
    pub enabled: bool,
    pub fallback: Option<AgentRef>,
    /// The compiled plan, or why the stored definition does not compile
    /// (stored before validation existed, or under other limits).
    pub plan: Result<Arc<Plan>, String>,
}

/// A phone number's entry.
#[derive(Debug, Clone)]
pub struct NumberEntry {
    pub trunk_id: String,
    pub assignment: Option<AgentRef>,
}

/// The organization's agents and their published versions.
#[derive(Debug, Default)]
pub struct Agents(HashMap<String, AgentEntry>);

#[derive(Debug, Default)]
struct AgentEntry {
    sip_uri: Option<String>,
    /// Published versions, ascending.
    published: Vec<i64>,
}

impl AgentDirectory for Agents {
    fn resolve(&self, agent_id: &str, version: Option<i64>) -> Result<ResolvedAgent, Unresolved> {
        let agent = self.0.get(agent_id).ok_or(Unresolved::UnknownAgent)?;
        let version = match version {
            Some(v) if agent.published.binary_search(&v).is_ok() => v,
            Some(_) => return Err(Unresolved::UnpublishedVersion),
            None => *agent
                .published
                .last()
                .ok_or(Unresolved::UnpublishedVersion)?,
        };
        Ok(ResolvedAgent {
            version,
            sip_uri: agent.sip_uri.clone(),
        })
    }
}

impl OrgSnapshot {
    /// Reads one organization from the store and compiles its config.
    ///
    /// # Errors
    /// Store failures.
    pub async fn load(store: &Store, org_id: &str, limits: &Limits) -> Result<Self, StoreError> {
        let mut agents: HashMap<String, AgentEntry> = store
            .all_agents(org_id)
            .await?
            .into_iter()
            .map(|a| {
                (
                    a.id,
                    AgentEntry {
                        sip_uri: a.sip_uri,
                        published: Vec::new(),
                    },
                )
            })
            .collect();
        for (agent_id, version) in store.published_versions(org_id).await? {
            if let Some(entry) = agents.get_mut(&agent_id) {
                entry.published.push(version);
            }
        }
        let numbers = store
            .all_phone_numbers(org_id)
            .await?
            .into_iter()
            .map(|n| {
                let assignment = n.fields.inbound_agent_id.map(|agent_id| AgentRef {
                    agent_id,
                    version: n.fields.inbound_agent_version,
                });
                (
                    n.fields.phone_number,
                    NumberEntry {
                        trunk_id: n.fields.trunk_id,
                        assignment,
                    },
                )
            })
            .collect();
        let config = store.routing_config(org_id).await?.map(|c| ConfigEntry {
            enabled: c.fields.enabled,
            fallback: c.fields.fallback_agent_id.map(|agent_id| AgentRef {
                agent_id,
                version: c.fields.fallback_agent_version,
            }),
            plan: routing::compile(&c.fields.workflow_definition, limits)
                .map(Arc::new)
                .map_err(|problems| describe(&problems)),
        });
        let trunks = store
            .all_trunks(org_id)
            .await?
            .into_iter()
            .map(|t| TrunkEntry {
                networks: t
                    .fields
                    .inbound_addresses
                    .iter()
                    .filter_map(|c| c.parse().ok())
                    .collect(),
                id: t.id,
                trust_asserted_identity: t.fields.trust_asserted_identity,
                default_country_code: t.fields.default_country_code,
            })
            .collect();
        Ok(Self {
            organization_id: org_id.to_owned(),
            trunks,
            config,
            agents: Agents(agents),
            secrets: Arc::new(store.secrets(org_id).await?.into_iter().collect()),
            numbers,
        })
    }
}

/// IPv4-mapped IPv6 sources (dual-stack sockets) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn describe(problems: &[routing::Problem]) -> String {
    let first: Vec<String> = problems
        .iter()
        .take(3)
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    format!("{} problem(s): {}", problems.len(), first.join("; "))
}

/// Every organization's snapshot plus the global number index.
#[derive(Debug, Default)]
pub struct Snapshot {
    orgs: HashMap<String, Arc<OrgSnapshot>>,
    /// E.164 → organization id.
    numbers: HashMap<String, String>,
    /// Every trunk network, deduplicated (carriers are often shared).
    networks: Vec<IpNet>,
    /// Every trunk's default country code, deduplicated.
    country_codes: Vec<Option<String>>,
}

impl Snapshot {
    pub fn org(&self, id: &str) -> Option<&Arc<OrgSnapshot>> {
        self.orgs.get(id)
    }

    /// The organization that owns a number.
    pub fn number_owner(&self, e164: &str) -> Option<&Arc<OrgSnapshot>> {
        self.numbers.get(e164).and_then(|org| self.orgs.get(org))
    }

    /// Whether `ip` belongs to any trunk. Cheap: networks are deduplicated.
    pub fn knows_source(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The number a call from `ip` to `called` is for: its organization, the
    /// trunk (which must contain `ip`) and the E.164 form. One index lookup
    /// per candidate form, whatever the number of organizations.
    pub fn find_number(
        &self,
        called: &str,
        ip: IpAddr,
        candidates: impl Fn(&str, Option<&str>) -> Vec<String>,
    ) -> Option<(&Arc<OrgSnapshot>, &TrunkEntry, String)> {
        let ip = canonical(ip);
        for cc in &self.country_codes {
            for e164 in candidates(called, cc.as_deref()) {
                let Some(org) = self.number_owner(&e164) else {
                    continue;
                };
                let Some(number) = org.numbers.get(&e164) else {
                    continue;
                };
                let trunk = org.trunks.iter().find(|t| t.id == number.trunk_id);
                if let Some(trunk) = trunk.filter(|t| t.networks.iter().any(|n| n.contains(&ip))) {
                    return Some((org, trunk, e164));
                }
            }
        }
        None
    }

    /// Every trunk (with its organization) whose networks contain `ip`.
    pub fn trunks_for(&self, ip: IpAddr) -> impl Iterator<Item = (&Arc<OrgSnapshot>, &TrunkEntry)> {
        let ip = canonical(ip);
        self.orgs.values().flat_map(move |org| {
            org.trunks
                .iter()
                .filter(move |t| t.networks.iter().any(|n| n.contains(&ip)))
                .map(move |t| (org, t))
        })
    }

    fn with_org(&self, org: OrgSnapshot) -> Self {
        let mut orgs = self.orgs.clone();
        let mut numbers = self.numbers.clone();
        numbers.retain(|_, owner| *owner != org.organization_id);
        for e164 in org.numbers.keys() {
            numbers.insert(e164.clone(), org.organization_id.clone());
        }
        orgs.insert(org.organization_id.clone(), Arc::new(org));
        let mut networks: Vec<IpNet> = orgs
            .values()
            .flat_map(|o| o.trunks.iter().flat_map(|t| t.networks.iter().copied()))
            .collect();
        networks.sort();
        networks.dedup();
        let mut country_codes: Vec<Option<String>> = orgs
            .values()
            .flat_map(|o| o.trunks.iter().map(|t| t.default_country_code.clone()))
            .collect();
        country_codes.sort();
        country_codes.dedup();
        if country_codes.is_empty() {
            country_codes.push(None);
        }
        Self {
            orgs,
            numbers,
            networks,
            country_codes,
        }
    }
}

/// The live snapshot. Cheap to clone; all clones share it.
#[derive(Clone, Debug)]
pub struct Routing {
    current: Arc<ArcSwap<Snapshot>>,
    reload: Arc<Mutex<()>>,
    limits: Arc<Limits>,
    /// Counts reloads, so callers can wait for the next one.
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Routing {
    /// Loads every organization.
    ///
    /// # Errors
    /// Store failures.
    pub async fn load(store: &Store, limits: Limits) -> Result<Self, StoreError> {
        let routing = Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            reload: Arc::new(Mutex::new(())),
            limits: Arc::new(limits),
            generation: Arc::new(tokio::sync::watch::channel(0).0),
        };
        for org in store.orgs().await? {
            routing.reload_org(store, &org.id).await?;
        }
        Ok(routing)
    }

    /// The snapshot as of now; hold it for the whole call.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Whether `ip` belongs to any trunk, without taking a reference on the
    /// snapshot (called for every received message).
    pub fn knows_source(&self, ip: IpAddr) -> bool {
        self.current.load().knows_source(ip)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many reloads have happened.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Waits until a reload of `org_id` (or any) happens after generation `after`
    /// and `org_id`'s snapshot satisfies `ready`.
    pub async fn wait_for(&self, after: u64, mut ready: impl FnMut(&Snapshot) -> bool) {
        let mut rx = self.generation.subscribe();
        let _ = rx
            .wait_for(|g| *g > after && ready(&self.current.load()))
            .await;
    }

    /// Re-reads one organization and swaps it in.
    ///
    /// # Errors
    /// Store failures; the previous snapshot stays in force.
    pub async fn reload_org(&self, store: &Store, org_id: &str) -> Result<(), StoreError> {
        let _serialized = self.reload.lock().await;
        let org = OrgSnapshot::load(store, org_id, &self.limits).await?;
        let next = self.current.load().with_org(org);
        self.current.store(Arc::new(next));
        self.generation.send_modify(|g| *g += 1);
        let m = crate::metrics::metrics();
        m.snapshot_reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.snapshot_loaded_at.store(
            chrono::Utc::now().timestamp(),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }
}

/// A routed call: the decision, and the workflow run if one happened.
#[derive(Debug, Clone)]
pub struct Routed {
    pub decision: routing::Decision,
    pub run: Option<routing::Run>,
}

impl OrgSnapshot {
    /// Applies the spec's flow to one call: no config or disabled → the
    /// number's own agent; else run the workflow and resolve its output,
    /// falling back as the rules say. `config` is normally `self.config`; a
    /// dry run may pass a definition under test instead.
    pub async fn route(
        &self,
        config: Option<&ConfigEntry>,
        input: &routing::CallInput,
        env: &routing::RunEnv,
    ) -> Routed {
        let assignment = || {
            self.numbers
                .get(&input.called_number)
                .and_then(|n| n.assignment.as_ref())
        };
        let config = match config {
            Some(c) if c.enabled => c,
            other => {
                let decision = routing::decide_without_workflow(
                    other.map(|c| c.enabled),
                    assignment(),
                    &self.agents,
                );
                return Routed {
                    decision,
                    run: None,
                };
            }
        };
        let run = match &config.plan {
            Ok(plan) => routing::run(plan, input, env).await,
            Err(why) => routing::Run {
                result: Err(routing::RunError::Invalid(why.clone())),
                raw_output: None,
                trace: Vec::new(),
            },
        };
        let decision = routing::decide(&run.result, config.fallback.as_ref(), &self.agents);
        Routed {
            decision,
            run: Some(run),
        }
    }
}
