//! The demo's analyses, as a dossier would have them: the statistician's analysis plan — AI vs
//! reader consensus (OPA / PPA / NPA and kappa), inter-reader agreement, unaided vs AI-assisted
//! reads, and progression-free survival by AI phenotype — signed off, and each analysis saved
//! against it.

use crate::analyses::plan::{self, Criterion};
use crate::analyses::{saved, Request};
use crate::annotations::campaigns;
use crate::auth::permissions::study_access;
use crate::auth::{users, Actor};
use crate::biomarker::runs;
use crate::db::Conn;
use crate::error::{Error, Result};

/// (role, title, query after the sources, criterion).
fn items(run: i32, first: i32, reread: Option<i32>) -> Vec<(&'static str, &'static str, String, Option<Criterion>)> {
    let src = format!("run={run}&campaign={first}");
    let crit = |metric: &str, value: f64| Some(Criterion { metric: metric.into(), op: ">=".into(), value });
    let mut v = vec![
        (
            "primary",
            "AI vs reader consensus: overall percent agreement, inflamed vs not",
            format!("{src}&analysis=diagnostic&test=ai_phenotype&reference=phenotype__reference&positive=inflamed"),
            crit("opa.wilson_low", 0.70),
        ),
        (
            "secondary",
            "AI vs reader consensus: Cohen's kappa over the three phenotypes",
            format!("{src}&analysis=kappa&a=ai_phenotype&b=phenotype__reference"),
            crit("ci_low", 0.40),
        ),
        (
            "secondary",
            "Inter-reader agreement (first read, unaided)",
            format!("{src}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2"),
            None,
        ),
        (
            "secondary",
            "Progression-free survival by AI phenotype",
            format!(
                "{src}&analysis=survival&time=pfs_months&event=progression&group=ai_phenotype&reference_group=desert"
            ),
            None,
        ),
    ];
    if let Some(r) = reread {
        v.push((
            "secondary",
            "Unaided vs AI-assisted reading against the reference (annotator1)",
            format!(
                "{src}&campaign2={r}&analysis=paired-agreement&reference=phenotype__reference&a=phenotype__annotator1&b=phenotype__annotator1__c{r}"
            ),
            None,
        ));
    }
    v
}

/// Writes and signs the plan as the demo statistician and saves every analysis in it. Does
/// nothing when the study already has a plan or has no run or first read.
pub fn seed_analyses(conn: &mut Conn, study: &str) -> Result<Vec<String>> {
    let user = users::find_by_username(conn, "statistician")?.ok_or(Error::NotFound)?;
    let actor = Actor::from_user(&user);
    let access = study_access(conn, &actor, study)?;
    let sid = access.study.id;
    if !plan::versions(conn, sid)?.is_empty() {
        return Ok(Vec::new());
    }
    let (Some(run), Ok(first)) =
        (runs::list(conn, sid)?.into_iter().last(), campaigns::by_name(conn, sid, "First read"))
    else {
        return Ok(Vec::new());
    };
    let reread = campaigns::by_name(conn, sid, "AI-assisted re-read").ok().map(|c| c.id);
    // Only analyses that compute on the demo's data go into the plan (an open re-read has none).
    let planned: Vec<_> = items(run.id, first.id, reread)
        .into_iter()
        .filter(|(_, _, q, _)| {
            Request::parse(q)
                .and_then(|r| crate::analyses::compute(conn, sid, &r))
                .is_ok_and(|(c, _)| c.outcome.is_ok_and(|o| o.to_json()["n"].as_u64() != Some(0)))
        })
        .collect();
    for (role, title, query, criterion) in &planned {
        let req = Request::parse(query)?;
        let canonical = Request::canonical(&req.sources(), &req.analysis()?, req.level()?);
        plan::add_item(conn, &actor, &access, role, title, &canonical, criterion.clone())?;
    }
    let signed = plan::sign(conn, &actor, &access, super::demo_signing("approval"))?;
    let mut verdicts = Vec::new();
    for (_, title, query, _) in &planned {
        let s = saved::save(conn, &actor, &access, &Request::parse(query)?, title)?;
        verdicts.push(s.id);
    }
    Ok(vec![format!(
        "analysis plan version {} of {study} signed by {} with {} analyses, each saved (analyses {:?})",
        signed.version,
        user.full_name,
        planned.len(),
        verdicts
    )])
}
