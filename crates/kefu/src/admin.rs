//! `kefu admin …`: agents and API tokens from the shell, for scripts and for
//! the first admin of a server that has no browser at hand.

use anyhow::{Context, bail};
use clap::Subcommand;
use kefu_app::{AgentActor, Credential};
use kefu_core::{NewAgent, Role, TokenScope};
use kefu_store::Store;
use std::io::{IsTerminal, Read};
use uuid::Uuid;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an agent. The password is read from stdin when it is not a
    /// terminal, else prompted for.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "agent")]
        role: Role,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token for an agent and print it (shown only this once).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "read")]
        scope: TokenScope,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List an agent's tokens.
    List {
        #[arg(long)]
        email: String,
    },
    /// Revoke one token by id, or every token of an agent with --email.
    Revoke {
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        id: Option<Uuid>,
        #[arg(long)]
        email: Option<String>,
    },
}

pub async fn run(store: &Store, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Create { email, name, role } => {
            let password = read_password()?;
            let mut new = NewAgent {
                email,
                name,
                role,
                password: Some(password),
            };
            new.validate()?;
            let hash = kefu_app::secrets::hash_password(new.password.clone().unwrap_or_default())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let agent = store
                .create_agent(&new, Some(&hash))
                .await
                .map_err(explain)?;
            audit(store, "agent.created", &agent.id.to_string()).await?;
            println!(
                "created {} {} ({}) id={}",
                agent.role, agent.name, agent.email, agent.id
            );
        }
        AdminCommand::Token {
            command: TokenCommand::Create { email, scope, name },
        } => {
            let agent = store
                .agent_by_email(&email.to_lowercase())
                .await
                .map_err(explain)?;
            if scope == TokenScope::Admin && !agent.role.is_admin() {
                bail!("{email} is not an admin, so cannot hold an admin-scoped token");
            }
            // Minted (and audited, under `cli:$USER`) by the application
            // layer, as through the API.
            let app = kefu_app::App::for_operator(store.clone(), &operator());
            let operator = AgentActor {
                agent,
                credential: Credential::Console,
                ip: None,
            };
            let created = app
                .mint_token(&operator, &name, scope)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "token {} ({scope}) for {email}; it is shown only now:",
                created.info.id
            );
            println!("{}", created.token);
        }
        AdminCommand::Token {
            command: TokenCommand::List { email },
        } => {
            let agent = store
                .agent_by_email(&email.to_lowercase())
                .await
                .map_err(explain)?;
            for t in store.list_api_tokens(agent.id).await? {
                let used = t
                    .last_used_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{}  {:<6} {:<14} {}  last used {used}",
                    t.id, t.scope, t.prefix, t.name
                );
            }
        }
        AdminCommand::Token {
            command: TokenCommand::Revoke { id, email },
        } => {
            if let Some(id) = id {
                store.delete_api_token(id, None).await.map_err(explain)?;
                audit(store, "token.revoked", &id.to_string()).await?;
                println!("revoked {id}");
            } else if let Some(email) = email {
                let agent = store
                    .agent_by_email(&email.to_lowercase())
                    .await
                    .map_err(explain)?;
                let n = store.delete_api_tokens(agent.id).await?;
                audit(store, "token.revoked_all", &agent.id.to_string()).await?;
                println!("revoked {n} tokens of {email}");
            }
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let p = rpassword::prompt_password("password: ")?;
        if rpassword::prompt_password("again: ")? != p {
            bail!("the passwords differ");
        }
        p
    } else {
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        s.lines().next().unwrap_or_default().to_string()
    };
    kefu_core::validate::password(&password)?;
    Ok(password)
}

fn explain(e: kefu_store::StoreError) -> anyhow::Error {
    match e {
        kefu_store::StoreError::NotFound => anyhow::anyhow!("no such agent or token"),
        kefu_store::StoreError::Conflict { constraint } if constraint == "agents_email_key" => {
            anyhow::anyhow!("an agent with this email exists already")
        }
        other => other.into(),
    }
}

/// Who the audit log names for what is done here: the shell's user.
fn operator() -> String {
    let who = std::env::var("USER").unwrap_or_else(|_| "shell".into());
    format!("cli:{who}")
}

async fn audit(store: &Store, action: &str, target: &str) -> anyhow::Result<()> {
    let entry = kefu_store::NewAudit {
        actor_id: None,
        actor_label: &operator(),
        action,
        target: Some(target.to_string()),
        ip: None,
        details: serde_json::json!({ "via": "kefu admin" }),
    };
    Ok(store.audit(entry).await?)
}
