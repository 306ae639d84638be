//! Recomputes the hash chains: an edited, deleted or reordered event breaks its chain.

use diesel::prelude::*;
use serde_json::Value;

use super::{canonical_event, chain_hash, AuditEvent, GENESIS};
use crate::db::schema::{audit_events, audit_heads};
use crate::db::Conn;
use crate::error::Result;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChainReport {
    pub chain: String,
    pub events: i64,
    /// `None` when the chain holds; else the first event that does not.
    pub broken: Option<Broken>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Broken {
    pub event_id: Option<i32>,
    pub seq: i64,
    pub problem: String,
}

/// Every chain name, system first.
pub fn chain_names(conn: &mut Conn) -> Result<Vec<String>> {
    let mut names: Vec<String> = audit_events::table.select(audit_events::chain).distinct().load(conn)?;
    let heads: Vec<String> = audit_heads::table.select(audit_heads::chain).load(conn)?;
    for h in heads {
        if !names.contains(&h) {
            names.push(h);
        }
    }
    names.sort_by_key(|n| (n != super::SYSTEM_CHAIN, n.clone()));
    Ok(names)
}

fn parse_value(raw: &Option<String>) -> std::result::Result<Option<Value>, String> {
    match raw {
        None => Ok(None),
        Some(s) => serde_json::from_str(s).map(Some).map_err(|e| format!("stored value is not JSON: {e}")),
    }
}

/// Verifies one chain from genesis to its recorded head.
pub fn verify_chain(conn: &mut Conn, chain: &str) -> Result<ChainReport> {
    let events: Vec<AuditEvent> = audit_events::table
        .filter(audit_events::chain.eq(chain))
        .order((audit_events::seq.asc(), audit_events::id.asc()))
        .select(AuditEvent::as_select())
        .load(conn)?;
    let mut prev_hash = GENESIS.to_string();
    let mut prev_id = 0;
    let broken = |e: &AuditEvent, problem: String| Broken { event_id: Some(e.id), seq: e.seq, problem };
    for (i, e) in events.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        let problem = if e.seq != expected_seq {
            Some(format!("expected sequence number {expected_seq}, found {} (an event was removed)", e.seq))
        } else if e.id <= prev_id {
            Some("events are out of order".to_string())
        } else if e.prev_hash != prev_hash {
            Some("previous-hash link does not match the preceding event".to_string())
        } else {
            match (parse_value(&e.old_value), parse_value(&e.new_value)) {
                (Err(p), _) | (_, Err(p)) => Some(p),
                (Ok(old), Ok(new)) => {
                    let canonical = canonical_event(
                        &e.chain,
                        e.seq,
                        &e.at,
                        &e.actor,
                        e.action.as_str(),
                        e.entity.as_str(),
                        &e.entity_id,
                        &old,
                        &new,
                        e.reason.as_deref(),
                    )?;
                    (chain_hash(&prev_hash, &canonical) != e.hash)
                        .then(|| "content does not match its hash (the event was edited)".to_string())
                }
            }
        };
        if let Some(p) = problem {
            return Ok(ChainReport {
                chain: chain.to_string(),
                events: events.len() as i64,
                broken: Some(broken(e, p)),
            });
        }
        prev_hash = e.hash.clone();
        prev_id = e.id;
    }
    let head: Option<(i64, String)> = audit_heads::table
        .filter(audit_heads::chain.eq(chain))
        .select((audit_heads::seq, audit_heads::hash))
        .first(conn)
        .optional()?;
    let n = events.len() as i64;
    let head_problem = match head {
        None if n > 0 => Some((n, "chain head is missing".to_string())),
        Some((seq, hash)) if seq != n || hash != prev_hash => {
            Some((seq, format!("chain head says {seq} events but {n} were found (events removed at the end)")))
        }
        _ => None,
    };
    Ok(ChainReport {
        chain: chain.to_string(),
        events: n,
        broken: head_problem.map(|(seq, problem)| Broken { event_id: None, seq, problem }),
    })
}

/// Verifies every chain.
pub fn verify_all(conn: &mut Conn) -> Result<Vec<ChainReport>> {
    let mut out = Vec::new();
    for name in chain_names(conn)? {
        out.push(verify_chain(conn, &name)?);
    }
    Ok(out)
}
