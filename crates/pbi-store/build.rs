//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the files it finds, but the compiler
//! only watches the files that existed at the last build.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
