//! `audit_verify` job: recomputes the hash chains of one study (or all) with progress,
//! resuming after the last chain checked.

use serde_json::{json, Value};

use super::verify::{self, ChainReport};
use crate::jobs::kinds::{JobContext, JobHandler};

pub struct VerifyAuditJob;

/// What to verify: one chain (`study:CODE`), or every chain.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct VerifyParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// Where an interrupted verification resumes: the chains already checked.
#[derive(serde::Deserialize)]
struct Resume {
    reports: Vec<ChainReport>,
}

/// What a verification found: whether every chain holds, and each chain's report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VerifyOutput {
    pub ok: bool,
    pub chains: Vec<ChainReport>,
}

impl crate::jobs::JobParams for VerifyParams {
    const KIND: crate::jobs::JobKind = crate::jobs::JobKind::AuditVerify;
    type Output = VerifyOutput;
}

impl JobHandler for VerifyAuditJob {
    fn run(&self, ctx: &JobContext) -> anyhow::Result<Value> {
        let params: VerifyParams = ctx.job.params()?;
        let chains: Vec<String> = match params.chain {
            Some(c) => vec![c],
            None => verify::chain_names(&mut *ctx.conn()?)?,
        };
        let mut reports = ctx.checkpoint::<Resume>()?.map(|r| r.reports).unwrap_or_default();
        let total = chains.len() as i64;
        for chain in chains.iter().skip(reports.len()) {
            ctx.progress(reports.len() as i64, total, &format!("checking {chain}"), None)?;
            reports.push(verify::verify_chain(&mut *ctx.conn()?, chain)?);
            ctx.progress(reports.len() as i64, total, &format!("checked {chain}"), Some(&json!({"reports": reports})))?;
        }
        let broken = reports.iter().filter(|r| r.broken.is_some()).count();
        let events: i64 = reports.iter().map(|r| r.events).sum();
        ctx.progress(total, total, &format!("{} chains, {events} events, {broken} broken", reports.len()), None)?;
        crate::jobs::output::<VerifyParams>(&VerifyOutput { ok: broken == 0, chains: reports })
    }
}
