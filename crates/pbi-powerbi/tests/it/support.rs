//! A sandbox and clients pointed at it; waits advance the sandbox's clock instead of sleeping.

use futures_util::future::BoxFuture;
use pbi_powerbi::{AccessToken, ClientCredentials, ClientSecret, Cloud, PowerBiClient, RetryPolicy, Sleep, StaticToken, TokenSource};
use pbi_sandbox::{Sandbox, SandboxConfig, SandboxHandle, demo};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// Records each wait and moves the sandbox clock by it.
pub struct ClockSleep {
    clock: pbi_clock::Clock,
    pub waits: Mutex<Vec<Duration>>,
}

impl Sleep for ClockSleep {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.waits.lock().expect("lock").push(duration);
        let _ = self.clock.advance(time::Duration::try_from(duration).unwrap_or(time::Duration::ZERO));
        Box::pin(async {})
    }
}

pub struct Env {
    pub sandbox: SandboxHandle,
    pub sleep: Arc<ClockSleep>,
}

impl Env {
    pub async fn start() -> Self {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
        let sleep = Arc::new(ClockSleep { clock: sandbox.clock().clone(), waits: Mutex::new(Vec::new()) });
        Self { sandbox, sleep }
    }

    pub fn base(&self) -> Url {
        Url::parse(self.sandbox.base_url()).expect("url")
    }

    pub fn cloud(&self) -> Cloud {
        Cloud::custom(self.base())
    }

    /// The demo service principal's client-credentials source, reading time from `clock`.
    pub fn app_tokens(&self, clock: pbi_clock::Clock) -> ClientCredentials {
        let authority = self.base().join(demo::CONTOSO_DOMAIN).expect("authority");
        ClientCredentials::new(
            reqwest::Client::new(),
            &authority,
            pbi_sandbox::demo_automation_client_id().to_string(),
            ClientSecret::new(demo::AUTOMATION_SECRET),
            self.cloud().resource(),
        )
        .expect("source")
        .with_clock(move || clock.now())
    }

    pub fn client(&self, tokens: Arc<dyn TokenSource>, retry: RetryPolicy) -> PowerBiClient {
        PowerBiClient::new(&self.cloud(), tokens).with_retry(retry).with_sleep(self.sleep.clone())
    }

    /// A client acting as the demo service principal (a Member of "Sales Analytics").
    pub fn app_client(&self, retry: RetryPolicy) -> PowerBiClient {
        self.client(Arc::new(self.app_tokens(self.sandbox.clock().clone())), retry)
    }

    pub fn static_client(&self, token: &str) -> PowerBiClient {
        self.client(Arc::new(StaticToken(AccessToken::new(token))), RetryPolicy::none())
    }

    /// The Entra ID and Power BI calls whose path ends with `path_suffix` (not the tests' own `/_sandbox/` calls).
    pub fn calls_to(&self, path_suffix: &str) -> Vec<pbi_sandbox::LoggedRequest> {
        self.sandbox
            .requests()
            .into_iter()
            .filter(|r| r.service != pbi_sandbox::Service::Control && r.path.ends_with(path_suffix))
            .collect()
    }
}

pub fn fixed_retry(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        backoff: pbi_powerbi::Backoff::Fixed(Duration::from_secs(2)),
        retry_on: pbi_powerbi::RetryOn::ServerAndNetwork,
        max_total_wait: Duration::from_secs(120),
    }
}
