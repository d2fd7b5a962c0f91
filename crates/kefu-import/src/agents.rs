//! WeChat userids (servicer_userid, archive `from`, OA `worker`) → kefu
//! agents: the `--agent-map` file first, then an agent whose email (or its
//! local part) equals the userid, else an inactive placeholder, so history
//! still shows who answered without giving anyone a login.

use crate::ImportError;
use crate::report::Report;
use kefu_core::{AgentPatch, NewAgent, Role};
use kefu_store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

/// Reads `userid,email` lines (a header line and blank lines are skipped).
pub fn read_map(path: &Path) -> Result<HashMap<String, String>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::io(path, e))?;
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || (n == 0 && !line.contains('@')) {
            continue;
        }
        let (userid, email) = line.split_once(',').ok_or_else(|| {
            ImportError::AgentMap(format!(
                "{}:{}: expected userid,email",
                path.display(),
                n + 1
            ))
        })?;
        map.insert(userid.trim().to_string(), email.trim().to_ascii_lowercase());
    }
    Ok(map)
}

/// Resolves the refs not known yet into `known`.
pub async fn resolve(
    store: &Store,
    refs: &[String],
    map: &HashMap<String, String>,
    known: &mut HashMap<String, Uuid>,
    report: &mut Report,
) -> Result<(), ImportError> {
    let todo: Vec<&String> = refs.iter().filter(|r| !known.contains_key(*r)).collect();
    if todo.is_empty() {
        return Ok(());
    }
    let agents = store.list_agents().await?;
    let by_email: HashMap<String, Uuid> = agents
        .iter()
        .map(|a| (a.email.to_ascii_lowercase(), a.id))
        .collect();
    let by_local: HashMap<String, Uuid> = agents
        .iter()
        .filter_map(|a| Some((a.email.split_once('@')?.0.to_ascii_lowercase(), a.id)))
        .collect();
    for userid in todo {
        let lower = userid.to_ascii_lowercase();
        let local = lower.split('@').next().unwrap_or(&lower).to_string();
        let found = map
            .get(userid)
            .and_then(|e| by_email.get(e))
            .or_else(|| by_email.get(&lower))
            .or_else(|| by_local.get(&lower))
            .or_else(|| by_local.get(&local));
        let id = match found {
            Some(id) => {
                report.agents_mapped += 1;
                *id
            }
            None => placeholder(store, userid, report).await?,
        };
        known.insert(userid.clone(), id);
    }
    Ok(())
}

/// `userid@wechat-import.invalid` (`.invalid` can never receive mail),
/// reused when an earlier run made it.
async fn placeholder(
    store: &Store,
    userid: &str,
    report: &mut Report,
) -> Result<Uuid, ImportError> {
    let email = placeholder_email(userid);
    match store.agent_by_email(&email).await {
        Ok(a) => return Ok(a.id),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let new = NewAgent {
        email,
        name: userid.to_string(),
        role: Role::Agent,
        password: None,
    };
    let agent = store.create_agent(&new, None).await?;
    let patch = AgentPatch {
        active: Some(false),
        ..Default::default()
    };
    store.update_agent(agent.id, &patch).await?;
    report.agents_created += 1;
    Ok(agent.id)
}

fn placeholder_email(userid: &str) -> String {
    let safe = userid
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if safe && !userid.is_empty() && userid.len() <= 64 {
        format!("{}@wechat-import.invalid", userid.to_ascii_lowercase())
    } else {
        // Chinese names or `name@account` workers: a stable hash instead.
        let h = hex::encode(Sha256::digest(userid.as_bytes()));
        format!("wx-{}@wechat-import.invalid", &h[..16])
    }
}
