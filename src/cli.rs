//! The command line. `inroute` alone runs the daemon (`serve`); the other
//! subcommands are one-shot operator tasks against the configured database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::app;
use crate::config::{self, Config, Sources};
use crate::store::types::NewToken;
use crate::store::{new_id, Store};
use crate::telemetry;
use crate::token::{self, Scope, TokenKind};

/// Exit code for an invalid configuration (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// inroute: SIP inbound call router.
///
/// Carriers send INVITEs; inroute runs the called organization's routing
/// workflow and answers 302 to the chosen AI voice agent, or 603. The admin
/// API (default http://127.0.0.1:8080) configures it.
///
/// Quick start: `inroute serve --demo` creates a demo organization and prints
/// an API key. Configuration: config/inroute.toml, INROUTE__SECTION__KEY
/// environment variables, and the flags below (highest precedence).
#[derive(Debug, Parser)]
#[command(name = "inroute", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do; without one, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand understands.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: config/inroute.toml if it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://data/inroute.db or postgres://user@host/db.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Admin API address, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, global = true, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Set any configuration key, e.g. --set log.format=json (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve {
        /// Create (if missing) a demo organization with a trunk for 127.0.0.0/8
        /// and ::1, two agents, two numbers and a routing config; print a fresh
        /// API key with every scope.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration without binding any port; exit 78 if invalid.
    CheckConfig,
    /// Work with routing workflow definitions.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage users (holders of personal access tokens).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens. Secrets are printed once and stored hashed.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Validate a workflow definition (or a whole config with a
    /// `workflow_definition` field) as POST/PUT would; exit 1 listing every problem.
    Check {
        /// JSON file; `-` reads standard input.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id.
    Create {
        /// Display name.
        name: String,
    },
    /// List organizations.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print their id.
    Create {
        /// Display name.
        name: String,
    },
    /// Make a user a member of an organization.
    AddToOrg {
        #[arg(long)]
        user: String,
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an organization key (--org) or a personal access token (--user).
    ///
    /// Scopes: inbound_routing_configs:read|manage, agents:read|manage,
    /// trunks:read|manage, phone_numbers:read|manage, or `all`.
    Create {
        /// Organization the key belongs to (an `ak_` key).
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        org: Option<String>,
        /// User the token belongs to (a `pat_` token; send X-Anyreach-Org with it).
        #[arg(long)]
        user: Option<String>,
        /// Scopes granted (repeatable, or comma-separated).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List an organization's keys (never their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a token by id (the part between `ak_`/`pat_` and the dot).
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Runs the parsed command line; `env` is the process environment.
pub async fn run(cli: Cli, env: Vec<(String, String)>) -> ExitCode {
    let config = match load_config(&cli.global, env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init(&config.log);
    match execute(
        cli.command.unwrap_or(Command::Serve { demo: false }),
        config,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(
    global: &GlobalArgs,
    env: Vec<(String, String)>,
) -> Result<Config, config::ConfigError> {
    let mut overrides = Vec::new();
    for pair in &global.set {
        match pair.split_once('=') {
            Some((k, v)) => overrides.push((k.trim().to_owned(), v.to_owned())),
            None => {
                return Err(config::ConfigError {
                    problems: vec![format!("--set {pair}: expected KEY=VALUE")],
                })
            }
        }
    }
    if let Some(url) = &global.database_url {
        overrides.push(("database.url".to_owned(), url.clone()));
    }
    if let Some(addr) = &global.admin_listen {
        overrides.push(("admin.listen".to_owned(), addr.clone()));
    }
    config::load(&Sources {
        file: global.config.clone(),
        env,
        overrides,
    })
}

async fn execute(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { demo } => app::run(config, demo).await,
        Command::CheckConfig => {
            println!("configuration is valid");
            Ok(())
        }
        Command::Migrate => {
            app::open_store(&config).await?.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Workflow(WorkflowCommand::Check { file }) => workflow_check(&file, &config),
        Command::Org(cmd) => org(cmd, &app::open_store(&config).await?).await,
        Command::User(cmd) => user(cmd, &app::open_store(&config).await?).await,
        Command::Token(cmd) => token_cmd(cmd, &app::open_store(&config).await?).await,
    }
}

fn workflow_check(file: &std::path::Path, config: &Config) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("could not read standard input")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("could not read {}", file.display()))?
    };
    let value: serde_json::Value = serde_json::from_str(&text).context("not valid JSON")?;
    let definition = value.get("workflow_definition").unwrap_or(&value);
    match crate::routing::compile(definition, &config.routing.limits()) {
        Ok(plan) => {
            println!(
                "ok: {} steps, deadline {} ms",
                plan.len(),
                plan.deadline().as_millis()
            );
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                println!("{}: {}", p.path, p.message);
            }
            bail!("{} problem(s) in {}", problems.len(), file.display())
        }
    }
}

async fn org(cmd: OrgCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create { name } => {
            let org = store.create_org(&new_id("org"), &name).await?;
            println!("{}", org.id);
        }
        OrgCommand::List => {
            for org in store.orgs().await? {
                println!("{}\t{}\t{}", org.id, org.created_at.to_rfc3339(), org.name);
            }
        }
    }
    Ok(())
}

async fn user(cmd: UserCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create { name } => {
            let user = store.create_user(&new_id("usr"), &name).await?;
            println!("{}", user.id);
        }
        UserCommand::AddToOrg { user, org } => {
            store
                .add_membership(&user, &org)
                .await
                .context("could not add the membership")?;
            println!("{user} is a member of {org}");
        }
    }
    Ok(())
}

async fn token_cmd(cmd: TokenCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            org,
            user,
            scopes,
            name,
        } => {
            let scopes = parse_scopes(&scopes)?;
            let kind = if user.is_some() {
                TokenKind::Pat
            } else {
                TokenKind::OrgKey
            };
            if let Some(org) = &org {
                if store.org(org).await?.is_none() {
                    bail!("organization {org} does not exist");
                }
            }
            let minted = token::mint(kind);
            store
                .create_token(&NewToken {
                    id: minted.id.clone(),
                    kind,
                    organization_id: org,
                    user_id: user,
                    name,
                    scopes,
                    secret_hash: minted.secret_hash,
                })
                .await
                .context("could not create the token")?;
            eprintln!(
                "token id {} created; the secret below is shown only once",
                minted.id
            );
            println!("{}", minted.bearer);
        }
        TokenCommand::List { org } => {
            for t in store.org_tokens(&org).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{}\t{state}\t{}\t{}\t{}",
                    t.id,
                    t.created_at.to_rfc3339(),
                    t.name,
                    scopes.join(",")
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(&id).await? {
                bail!("no active token with id {id}");
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}

fn parse_scopes(names: &[String]) -> anyhow::Result<Vec<Scope>> {
    let mut scopes = Vec::new();
    for name in names.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if name == "all" {
            scopes.extend(Scope::ALL);
        } else {
            scopes.push(name.parse::<Scope>()?);
        }
    }
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        bail!("give at least one --scope");
    }
    Ok(scopes)
}
