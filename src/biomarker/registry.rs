//! The model registry: an ONNX file and its card become `name@version`, stored as
//! `<data dir>/models/<sha256>.onnx` once the model has loaded on this process's backend and its
//! inputs and outputs match the card. Versions never change; they are retired with a reason.
//! Administrators only; audited in the system chain.

use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::card::ModelCard;
use super::engine::{self, Model};
use crate::audit::{self, Action, Chain, Change, Entity};
use crate::auth::Actor;
use crate::db::schema::models;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};
use crate::storage::Storage;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = models)]
pub struct ModelRecord {
    pub id: i32,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub file_size: i64,
    #[serde(skip)]
    pub card: String,
    pub checked_backend: super::Backend,
    pub status: ModelStatus,
    pub status_reason: Option<String>,
    pub registered_by: String,
    pub created_at: NaiveDateTime,
}

crate::db::text_enum! {
    /// A registered model version: active, or retired (kept, with its runs; no new run uses it).
    pub enum ModelStatus {
        Active = "active",
        Retired = "retired",
    }
}

impl ModelRecord {
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
    /// The bundled demonstration model (trained on synthetic tissue, not for clinical use).
    pub fn is_demo(&self) -> bool {
        self.name == DEMO_NAME
    }
    pub fn card(&self) -> Result<ModelCard> {
        serde_json::from_str(&self.card)
            .map_err(|e| Error::Internal(anyhow::anyhow!("stored card of {}: {e}", self.key())))
    }
    /// The model as a file on this machine (ONNX Runtime opens files): the stored file, or on
    /// object storage a checked local copy.
    pub fn file(&self, storage: &Storage) -> std::io::Result<PathBuf> {
        storage.local_copy(&stored_key(&self.sha256), &self.sha256)
    }
    pub fn short_sha(&self) -> &str {
        self.sha256.get(..16).unwrap_or(&self.sha256)
    }
}

/// The storage key of a model file: `models/<sha256>.onnx`.
pub fn stored_key(sha256: &str) -> String {
    format!("models/{sha256}.onnx")
}

pub fn list(conn: &mut Conn) -> Result<Vec<ModelRecord>> {
    Ok(models::table.order((models::name.asc(), models::id.desc())).select(ModelRecord::as_select()).load(conn)?)
}

/// A model by `name@version`.
pub fn get(conn: &mut Conn, key: &str) -> Result<ModelRecord> {
    let (name, version) = key.split_once('@').ok_or_else(|| Error::invalid("model", "name a model as NAME@VERSION"))?;
    models::table
        .filter(models::name.eq(name))
        .filter(models::version.eq(version))
        .select(ModelRecord::as_select())
        .first(conn)
        .or_not_found()
}

/// Loads a model file and checks its card against it, on this process's backend.
pub fn check(file: &Path, card: &ModelCard) -> Result<Model> {
    let model = Model::load(file, 1).map_err(|e| Error::invalid("file", e))?;
    card.check_against(&model.inputs, &model.outputs)?;
    Ok(model)
}

/// Registers `file` with its card (see the module doc). The copy is written aside and renamed in,
/// and removed again if anything fails, so a failed registration leaves nothing behind.
pub fn register(
    conn: &mut Conn,
    actor: &Actor,
    storage: &Storage,
    file: &Path,
    card_bytes: &[u8],
) -> Result<ModelRecord> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators register models"));
    }
    let bytes = std::fs::read(file).map_err(|e| Error::invalid("file", format!("{}: {e}", file.display())))?;
    register_bytes(conn, actor, storage, &bytes, card_bytes)
}

/// [`register`] of a model held in memory.
pub fn register_bytes(
    conn: &mut Conn,
    actor: &Actor,
    storage: &Storage,
    bytes: &[u8],
    card_bytes: &[u8],
) -> Result<ModelRecord> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators register models"));
    }
    let card = ModelCard::parse(card_bytes)?;
    let sha256 = hex::encode(Sha256::digest(bytes));
    if get(conn, &card.key()).is_ok() {
        return Err(Error::Conflict(format!(
            "{} is registered already: versions never change, register a new version",
            card.key()
        )));
    }
    let key = stored_key(&sha256);
    let io = |e: std::io::Error| Error::Internal(anyhow::anyhow!("storing the model: {e}"));
    let created = !storage.exists(&key).map_err(io)?;
    if created {
        storage.put_bytes(&key, bytes.to_vec()).map_err(io)?;
    }
    let outcome = storage.local_copy(&key, &sha256).map_err(io).and_then(|file| check(&file, &card)).and_then(|_| {
        let backend = engine::backend().map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
        write_tx(conn, |conn| {
            let record: ModelRecord = crate::db::on_engine!(&mut *conn, |c| diesel::insert_into(models::table)
                .values((
                    models::name.eq(&card.name),
                    models::version.eq(&card.version),
                    models::sha256.eq(&sha256),
                    models::file_size.eq(bytes.len() as i64),
                    models::card.eq(serde_json::to_string(&card).map_err(|e| Error::Internal(e.into()))?),
                    models::checked_backend.eq(super::Backend::from(backend.kind)),
                    models::status.eq(ModelStatus::Active),
                    models::registered_by.eq(&actor.name),
                    models::created_at.eq(now()),
                ))
                .returning(ModelRecord::as_returning())
                .get_result(c))?;
            audit::record(
                conn,
                Change::new(Chain::System, &actor.name, Action::Register, Entity::Model, card.key()).after(
                    json!({"sha256": sha256, "file_size": bytes.len(), "backend": backend.kind.as_str(), "card": card}),
                ),
            )?;
            Ok(record)
        })
    });
    if outcome.is_err() && created {
        let _ = storage.delete(&key);
    }
    outcome
}

/// The bundled demonstration model (`models/`, trained on synthetic tissue by
/// `tools/train_demo_model.py`; not for clinical use).
pub const DEMO_ONNX: &[u8] = include_bytes!("../../models/evidentia-demo-til.onnx");
pub const DEMO_CARD: &[u8] = include_bytes!("../../models/evidentia-demo-til.json");

/// The bundled demonstration model's name.
pub const DEMO_NAME: &str = "evidentia-demo-til";

/// Registers the bundled demonstration model in a data dir that has never had it (once: a
/// retired demo model stays retired). Returns its key when it was registered now.
pub fn ensure_demo_model(conn: &mut Conn, storage: &Storage) -> Result<Option<String>> {
    let key = ModelCard::parse(DEMO_CARD)?.key();
    if get(conn, &key).is_ok() {
        return Ok(None);
    }
    register_bytes(conn, &Actor::system(), storage, DEMO_ONNX, DEMO_CARD)?;
    Ok(Some(key))
}

/// Retires a model version (it stays, with its runs; no new run may use it). Needs a reason.
pub fn retire(conn: &mut Conn, actor: &Actor, key: &str, reason: &str) -> Result<ModelRecord> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators retire models"));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why the model is retired"));
    }
    write_tx(conn, |conn| {
        let m = get(conn, key)?;
        if m.status == ModelStatus::Retired {
            return Err(Error::Conflict(format!("{key} is retired already")));
        }
        diesel::update(models::table.find(m.id))
            .set((models::status.eq(ModelStatus::Retired), models::status_reason.eq(reason)))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::Retire, Entity::Model, key)
                .before(json!({"status": m.status}))
                .after(json!({"status": "retired"}))
                .because(reason),
        )?;
        get(conn, key)
    })
}
