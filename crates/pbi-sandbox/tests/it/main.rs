//! The sandbox's black-box suite: a real sandbox on 127.0.0.1:0, driven over HTTP as clients would.

mod admin;
mod browser;
mod clones;
mod control;
mod embed;
mod entra;
mod msal;
mod powerbi;
mod push;
mod shapes;
mod support;
mod web;
