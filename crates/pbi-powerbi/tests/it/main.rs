//! The client against the sandbox over real HTTP: every error kind, token refresh, retries, paging, raw requests.

mod admin;
mod calls;
mod errors;
mod push;
mod raw_paths;
mod support;
mod wire;
