//! Rebuilds when a migration is added or changed: `embed_migrations!` (src/db/mod.rs) reads the
//! folder at compile time, but cargo does not see a new migration as a change by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
