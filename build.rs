//! Only for `sqlx::migrate!` (store/migrate.rs): it reads `migrations/` when the crate is compiled
//! and the compiler watches the files it found, not the directories, so a new migration file
//! would not rebuild the crate without this (as sqlx's documentation advises).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
