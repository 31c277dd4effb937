//! The consent flow and the token broker against the sandbox over real HTTP, with a real store.

mod broker;
mod flow;
mod support;
mod validate;
