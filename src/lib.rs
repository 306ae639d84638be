//! Evidentia: clinical studies of AI pathology biomarkers, from de-identified cases to the
//! signed evidence dossier. The binary (`main.rs`) is a CLI over these modules.

pub mod analyses;
pub mod annotations;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod biomarker;
pub mod cases;
pub mod config;
pub mod db;
pub mod demo;
pub mod dossier;
pub mod error;
pub mod export;
pub mod jobs;
pub use evidentia_report as report;
pub mod quality;
pub mod secrets;
pub mod slides;
pub mod startup;
pub mod storage;
pub use evidentia_stats as stats;
pub mod studies;
pub mod telemetry;
pub mod text;
pub mod tmp;
pub mod web;
