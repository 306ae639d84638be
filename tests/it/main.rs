//! Integration tests: the real app on port 0 with a fresh SQLite file in a temp dir, spoken to
//! over HTTP (and, in `browser`, through headless Chromium). One binary for the whole suite.

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod analyses;
mod annotations;
mod audit;
mod auth;
mod backup;
mod browser;
mod cases;
mod cli;
mod helpers;
mod jobs;
mod lock;
mod longitudinal;
mod mfa;
mod models;
mod quality;
mod server;
mod slides;
mod sso;
mod stats;
mod studies;
mod vendor_slides;
