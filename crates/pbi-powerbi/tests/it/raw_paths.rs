//! Raw-request paths drawn from every character class a path could hide an escape in, checked on what the
//! sandbox actually received (and on a trap listener standing in for "another host").

use crate::support::Env;
use pbi_powerbi::{ErrorKind, RawRequest};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts the connections made to it: a request that reached it left the API.
struct Trap {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self { port, connections, task }
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Paths built from the pieces the decisions are about: mostly well-formed segments (so that many cases are
/// accepted and sent), mixed with whitespace of every kind, controls, encodings, separators and URL syntax.
fn paths(trap_port: u16) -> impl Strategy<Value = String> {
    let well_formed = prop_oneof![Just(String::new()), Just("/".to_owned()), Just("myorg/".to_owned()), Just("/v1.0/myorg/".to_owned())];
    let odd = prop_oneof![
        Just(" ".to_owned()),
        Just("\t/".to_owned()),
        Just("//".to_owned()),
        Just(" //".to_owned()),
        Just("\u{a0}//".to_owned()),
        Just("\u{3000}/".to_owned()),
        Just("\\\\".to_owned()),
        Just(format!("http://127.0.0.1:{trap_port}/")),
        Just(format!("//127.0.0.1:{trap_port}/")),
    ];
    let prefix = prop_oneof![3 => well_formed, 1 => odd];
    let valid = prop_oneof![
        Just("groups"),
        Just("datasets"),
        Just("reports"),
        Just("tables"),
        Just("Sales%20Orders"),
        Just("rows"),
        Just("6f1c3d2e-0000-4000-8000-000000000001"),
        Just("_sandbox"),
        Just("clock"),
        Just("v1.0"),
        Just("myorg"),
        Just("caf%C3%A9"),
        Just("é"),
    ]
    .prop_map(str::to_owned);
    let special = prop_oneof![
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E%2e".to_owned()),
        Just("%2f".to_owned()),
        Just("%5C".to_owned()),
        Just("%25".to_owned()),
        Just("%252e%252e".to_owned()),
        Just("%00".to_owned()),
        Just("%0d%0a".to_owned()),
        Just("%20".to_owned()),
        Just("%c2%a0".to_owned()),
        Just("%ff".to_owned()),
        Just("%".to_owned()),
        Just("\\".to_owned()),
        Just("@".to_owned()),
        Just(":".to_owned()),
        Just("?".to_owned()),
        Just("#".to_owned()),
        Just("//".to_owned()),
        Just(format!("127.0.0.1:{trap_port}")),
        prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2028}', '\u{3000}'
        ])
        .prop_map(String::from),
        prop::sample::select(vec!['\u{0}', '\u{1}', '\u{1b}', '\u{7f}', '\u{9f}', '\u{feff}']).prop_map(String::from),
    ];
    let piece = prop_oneof![6 => valid, 6 => Just("/".to_owned()), 2 => special];
    (prefix, prop::collection::vec(piece, 0..10)).prop_map(|(prefix, pieces)| prefix + &pieces.concat())
}

#[test]
fn no_raw_path_reaches_anything_but_the_api() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (env, trap, token) = runtime.block_on(async {
        let env = Env::start().await;
        let token = pbi_powerbi::TokenSource::token(&env.app_tokens(env.sandbox.clock().clone()), false).await.expect("token");
        (env, Trap::start().await, token)
    });
    let client = env.static_client(token.secret());
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config { cases: 600, failure_persistence: None, ..Config::default() });
    let outcome = runner.run(&paths(trap.port), |path| {
        runtime.block_on(async {
            env.sandbox.clear_requests();
            let result = client.raw(&RawRequest::new(Method::GET, path.clone())).await;
            let received = env.sandbox.requests();
            match result {
                Err(error) if matches!(error.kind, ErrorKind::Invalid(_)) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(received.is_empty(), "{path:?} was refused but sent: {received:?}");
                    prop_assert!(error.to_string().contains("path"), "the error names the field: {error}");
                }
                other => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    if let Err(error) = &other {
                        prop_assert!(!matches!(error.kind, ErrorKind::Transport(_)), "{path:?} went somewhere else: {error}");
                    }
                    prop_assert_eq!(received.len(), 1, "{:?} was accepted: exactly one request reaches the sandbox", path);
                    let sent = &received[0].path;
                    prop_assert!(sent == "/v1.0/myorg" || sent.starts_with("/v1.0/myorg/"), "{:?} was sent as {}", path, sent);
                    prop_assert!(!sent.split('/').any(|s| s == ".." || s == "."), "{:?} was sent as {}", path, sent);
                }
            }
            prop_assert_eq!(trap.connections.load(Ordering::SeqCst), 0, "{:?} reached another host", path);
            Ok(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    // The strategy must spend its cases on both sides of the decision.
    assert!(accepted >= 100 && refused >= 100, "accepted {accepted}, refused {refused} of 600");
}
