//! pbi-bridge's own accounts: argon2id password hashes (PHC strings), never passwords.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HashError(String);

/// At least this many characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// An account detail that cannot be used, with the field at fault and what to enter instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AccountError {
    pub field: &'static str,
    pub message: String,
}

/// A user name: 1 to 64 of the letters a–z, A–Z, digits and `. _ @ -` (an e-mail address is fine).
pub fn parse_username(text: &str) -> Result<String, AccountError> {
    let name = text.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(AccountError {
            field: "username",
            message: "a user name is 1 to 64 letters, digits and . _ @ - (such as jane.doe or jane@contoso.com)".into(),
        });
    }
    Ok(name.to_owned())
}

/// A display name: 1 to 100 characters on one line; the user name when left empty.
pub fn parse_display_name(text: &str, username: &str) -> Result<String, AccountError> {
    let name = text.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AccountError { field: "displayName", message: "a display name is at most 100 characters on one line".into() });
    }
    Ok(if name.is_empty() { username.to_owned() } else { name.to_owned() })
}

/// Whether `password` is long enough to be hashed.
pub fn check_password(password: &SecretString) -> Result<(), HashError> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        return Err(HashError(format!("a password needs at least {MIN_PASSWORD_CHARS} characters")));
    }
    Ok(())
}

/// An argon2id hash of `password`, made right here: on an async task, go through `PasswordSlot::hash`.
pub fn hash_password(password: &SecretString) -> Result<String, HashError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.expose_secret().as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `hash`; a malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// The password hashes and checks the server runs at once. argon2 is made to be slow (tens of milliseconds
/// of CPU and 19 MiB each), so it runs on tokio's blocking pool, where it cannot hold up the async workers
/// that answer every other request, and at most one per core runs at a time: a request that finds every slot
/// taken is refused at once (429 with `Retry-After`) rather than queued, so a flood of sign-ins costs the
/// server no more than a few cores' worth of work and no memory for a queue. Clones share the slots.
#[derive(Clone, Debug)]
pub struct PasswordSlots(Arc<Semaphore>);

impl PasswordSlots {
    /// What a refused request is told to wait, in seconds: about the time a few checks take.
    pub const RETRY_AFTER_SECONDS: u64 = 1;

    /// `slots` at once (at least one).
    pub fn new(slots: usize) -> Self {
        Self(Arc::new(Semaphore::new(slots.max(1))))
    }

    /// A slot if one is free now; `None` when all are taken (the caller refuses the request).
    pub fn try_take(&self) -> Option<PasswordSlot> {
        self.0.clone().try_acquire_owned().ok().map(PasswordSlot)
    }
}

impl Default for PasswordSlots {
    /// One slot per core the process may use.
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    }
}

/// A taken slot: one hash or check, run on the blocking pool; the slot is free again when it has finished
/// (also when the request that asked for it has gone away).
#[derive(Debug)]
pub struct PasswordSlot(OwnedSemaphorePermit);

impl PasswordSlot {
    /// Whether `password` matches `hash`; with no hash (no such user) it is checked against a decoy, so both
    /// take the same time and the answer does not tell which user names exist.
    pub async fn verify(self, password: SecretString, hash: Option<String>) -> bool {
        let permit = self.0;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let hash = hash.as_deref().unwrap_or_else(|| decoy_hash());
            verify_password(password.expose_secret(), hash)
        })
        .await
        .unwrap_or_else(|error| {
            tracing::error!(%error, "a password check failed to run");
            false
        })
    }

    /// `hash_password` on the blocking pool.
    pub async fn hash(self, password: SecretString) -> Result<String, HashError> {
        let permit = self.0;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash_password(&password)
        })
        .await
        .unwrap_or_else(|error| Err(HashError(format!("the password could not be hashed: {error}"))))
    }
}

/// A user name as the sign-in guard counts it: trimmed and lowercased, as user names are compared (`Alice`
/// and ` alice ` are one account), and at most `MAX_BYTES` long, the longest a user name can be, so a name
/// sent to sign in cannot make the guard hold more than that per entry. Anything longer is refused before
/// a password is checked or the guard is touched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignInName(String);

impl SignInName {
    pub const MAX_BYTES: usize = 64;

    pub fn parse(text: &str) -> Result<Self, AccountError> {
        let name = text.trim();
        if name.is_empty() || name.len() > Self::MAX_BYTES {
            return Err(AccountError { field: "username", message: format!("a user name is 1 to {} characters", Self::MAX_BYTES) });
        }
        Ok(Self(name.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The part of a client's address the guard counts failures under: an IPv4 address, or the /64 network of an
/// IPv6 one (a single IPv6 host commonly holds a whole /64, so counting per address would count nothing).
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Failed sign-ins, counted twice: per (user name, client address) and per user name across all addresses.
///
/// - After `MAX_FAILURES_PER_ADDRESS` failures for a name from one address within `WINDOW_SECONDS`, that
///   address is refused for that name until the window has passed, whatever the password: guessing from one
///   place is slowed to 10 guesses per 15 minutes, and it locks no one else out.
/// - After `MAX_FAILURES_PER_NAME` failures for a name from all addresses within the window, the name is
///   refused from every address until the window has passed: a guess spread over many addresses is slowed
///   too, at the price that such an attack can keep the name's owner out (an administrator setting a new
///   password lifts both kinds of lock).
///
/// A success clears its own (name, address) count only, so a guesser cannot reset the name's count by
/// signing in to an account of their own. Kept in memory, per instance; times are Unix seconds from the
/// caller's clock. Each count holds at most `capacity` entries; when full, windows that have passed are
/// forgotten first, then the oldest entry that is not a lock, and only when every entry is a lock the
/// oldest lock (the one that ends first): filling the guard with new names cannot lift a lock.
pub struct SignInGuard {
    counts: Mutex<Counts>,
    capacity: usize,
}

#[derive(Default)]
struct Counts {
    pairs: HashMap<(SignInName, IpAddr), Window>,
    names: HashMap<SignInName, Window>,
}

/// Failures since the first one of the window.
#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    since: i64,
}

impl Window {
    fn open(&self, now: i64) -> bool {
        now - self.since < SignInGuard::WINDOW_SECONDS
    }

    fn locked_for(&self, limit: u32, now: i64) -> Option<i64> {
        (self.failures >= limit && self.open(now)).then_some(self.since + SignInGuard::WINDOW_SECONDS - now)
    }
}

/// A user name that is refused now, from some addresses or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLock {
    /// When the last of its locks ends (Unix seconds).
    pub until: i64,
    /// How many client addresses (IPv6: /64 networks) are refused for this name.
    pub addresses: usize,
    /// Whether the name's own limit was reached, so every address is refused.
    pub all_addresses: bool,
}

impl Default for SignInGuard {
    fn default() -> Self {
        Self::with_capacity(Self::CAPACITY)
    }
}

impl SignInGuard {
    pub const MAX_FAILURES_PER_ADDRESS: u32 = 10;
    pub const MAX_FAILURES_PER_NAME: u32 = 100;
    pub const WINDOW_SECONDS: i64 = 15 * 60;
    /// Entries per count: with names of at most 64 bytes, a few MiB at most.
    pub const CAPACITY: usize = 10_000;

    pub fn with_capacity(capacity: usize) -> Self {
        Self { counts: Mutex::default(), capacity: capacity.max(1) }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seconds until `name` may try again from `client`, when it is refused now.
    pub fn locked_for(&self, name: &SignInName, client: IpAddr, now: i64) -> Option<i64> {
        let counts = self.counts();
        let pair = counts.pairs.get(&(name.clone(), client_key(client))).and_then(|w| w.locked_for(Self::MAX_FAILURES_PER_ADDRESS, now));
        let all = counts.names.get(name).and_then(|w| w.locked_for(Self::MAX_FAILURES_PER_NAME, now));
        pair.max(all)
    }

    pub fn failed(&self, name: &SignInName, client: IpAddr, now: i64) {
        let mut counts = self.counts();
        let capacity = self.capacity;
        count(&mut counts.pairs, (name.clone(), client_key(client)), Self::MAX_FAILURES_PER_ADDRESS, capacity, now);
        count(&mut counts.names, name.clone(), Self::MAX_FAILURES_PER_NAME, capacity, now);
    }

    /// A success from `client` clears that address's count for the name (not the name's own count).
    pub fn succeeded(&self, name: &SignInName, client: IpAddr) {
        self.counts().pairs.remove(&(name.clone(), client_key(client)));
    }

    /// Forgets every failure for `name`, lifting its locks (an administrator set a new password).
    pub fn lift(&self, name: &SignInName) {
        let mut counts = self.counts();
        counts.names.remove(name);
        counts.pairs.retain(|(n, _), _| n != name);
    }

    /// The names refused now (lowercased, as `SignInName` has them), for administrators to see.
    pub fn locks(&self, now: i64) -> HashMap<String, SignInLock> {
        let counts = self.counts();
        let mut locks: HashMap<String, SignInLock> = HashMap::new();
        let mut lock = |name: &SignInName, window: &Window, limit: u32, all: bool| {
            if let Some(left) = window.locked_for(limit, now) {
                let entry = locks.entry(name.0.clone()).or_insert(SignInLock { until: now, addresses: 0, all_addresses: false });
                entry.until = entry.until.max(now + left);
                if all {
                    entry.all_addresses = true;
                } else {
                    entry.addresses += 1;
                }
            }
        };
        for ((name, _), window) in &counts.pairs {
            lock(name, window, Self::MAX_FAILURES_PER_ADDRESS, false);
        }
        for (name, window) in &counts.names {
            lock(name, window, Self::MAX_FAILURES_PER_NAME, true);
        }
        locks
    }
}

/// One more failure under `key`, making room first when the count is full.
fn count<K: Clone + Eq + Hash>(map: &mut HashMap<K, Window>, key: K, limit: u32, capacity: usize, now: i64) {
    if !map.contains_key(&key) && map.len() >= capacity {
        map.retain(|_, window| window.open(now));
        if map.len() >= capacity {
            // Not a lock before a lock, then the oldest first.
            let evict = map.iter().min_by_key(|(_, w)| (w.failures >= limit, w.since)).map(|(k, _)| k.clone());
            if let Some(evict) = evict {
                map.remove(&evict);
            }
        }
    }
    let window = map.entry(key).or_insert(Window { failures: 0, since: now });
    if !window.open(now) {
        *window = Window { failures: 0, since: now };
    }
    window.failures = window.failures.saturating_add(1);
}

/// A hash to verify against when the user does not exist, so both cases take the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&SecretString::from("decoy-password-never-used".to_owned())).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-";

    /// Names built from the rule: valid ones (1 to 64 characters of the alphabet, maybe padded with
    /// spaces), then the same names broken one way each: empty, too long, or one character from outside
    /// the alphabet (Unicode look-alikes, spaces, controls, punctuation) put anywhere.
    fn names() -> impl Strategy<Value = (String, bool)> {
        let valid = proptest::collection::vec(proptest::sample::select(ALPHABET.chars().collect::<Vec<_>>()), 1..=64)
            .prop_map(|chars| chars.into_iter().collect::<String>());
        let padded = (valid.clone(), proptest::sample::select(vec!["", " ", "\t", "  "]))
            .prop_map(|(name, pad)| (format!("{pad}{name}{pad}"), true));
        let outsider =
            proptest::sample::select(vec![' ', '\n', '\u{0}', '\u{a0}', 'é', 'а', '\u{3000}', '/', '<', '"', '\'', '+', '#', '%']);
        let broken_char = (valid.clone(), outsider, any::<prop::sample::Index>()).prop_map(|(name, c, at)| {
            let mut chars: Vec<char> = name.chars().collect();
            // Inside the name (not at an end, where a space would be trimmed).
            let at = 1 + at.index(chars.len().max(1));
            chars.insert(at.min(chars.len()), c);
            if chars.last() == Some(&c) && c.is_whitespace() {
                chars.push('x');
            }
            (chars.into_iter().collect(), false)
        });
        let too_long = valid.prop_map(|name| (format!("{name}{}", "a".repeat(65)), false));
        prop_oneof![3 => padded, 2 => broken_char, 1 => too_long, 1 => Just((String::new(), false)), 1 => Just(("   ".to_owned(), false))]
    }

    proptest! {
        #[test]
        fn a_user_name_is_accepted_only_in_its_alphabet((text, valid) in names()) {
            match parse_username(&text) {
                Ok(name) => {
                    prop_assert!(valid, "{:?} was accepted", text);
                    prop_assert!(!name.is_empty() && name.len() <= 64 && name == text.trim());
                    prop_assert!(name.chars().all(|c| ALPHABET.contains(c)), "{:?}", name);
                }
                Err(error) => {
                    prop_assert!(!valid, "{:?} was refused", text);
                    prop_assert_eq!(error.field, "username");
                }
            }
        }
    }

    fn name(text: &str) -> SignInName {
        SignInName::parse(text).expect("a sign-in name")
    }

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));

    fn address(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn ten_failures_lock_a_name_from_that_address_until_its_window_has_passed() {
        let guard = SignInGuard::default();
        for i in 0..SignInGuard::MAX_FAILURES_PER_ADDRESS {
            assert_eq!(guard.locked_for(&name("Alice"), HERE, 100 + i64::from(i)), None);
            guard.failed(&name("Alice"), HERE, 100 + i64::from(i));
        }
        let left = Some(100 + SignInGuard::WINDOW_SECONDS - 200);
        assert_eq!(guard.locked_for(&name(" alice "), HERE, 200), left, "names are compared trimmed, any case");
        assert_eq!(guard.locked_for(&name("alice"), THERE, 200), None, "other addresses are not affected");
        assert_eq!(guard.locked_for(&name("bob"), HERE, 200), None, "other names are not affected");
        assert_eq!(guard.locked_for(&name("alice"), HERE, 100 + SignInGuard::WINDOW_SECONDS), None, "the window passed");
        guard.failed(&name("alice"), HERE, 100 + SignInGuard::WINDOW_SECONDS);
        assert_eq!(guard.locked_for(&name("alice"), HERE, 101 + SignInGuard::WINDOW_SECONDS), None, "a new window starts counting again");
    }

    #[test]
    fn a_hundred_failures_from_anywhere_lock_the_name_everywhere() {
        let guard = SignInGuard::default();
        // Nine guesses from each of many addresses: no address reaches its own limit.
        for i in 0..SignInGuard::MAX_FAILURES_PER_NAME {
            assert_eq!(guard.locked_for(&name("alice"), HERE, 100), None, "{i} failures");
            guard.failed(&name("alice"), address(i / 9), 100);
        }
        assert_eq!(
            guard.locked_for(&name("alice"), HERE, 100),
            Some(SignInGuard::WINDOW_SECONDS),
            "even from an address that never failed"
        );
        assert_eq!(guard.locked_for(&name("bob"), HERE, 100), None);
        let lock = guard.locks(100)["alice"];
        assert_eq!(lock, SignInLock { until: 100 + SignInGuard::WINDOW_SECONDS, addresses: 0, all_addresses: true });
        assert_eq!(guard.locked_for(&name("alice"), HERE, 100 + SignInGuard::WINDOW_SECONDS), None, "until the window has passed");
    }

    #[test]
    fn a_success_clears_its_own_address_only_and_a_lift_clears_everything() {
        let guard = SignInGuard::default();
        for _ in 0..9 {
            guard.failed(&name("alice"), HERE, 100);
            guard.failed(&name("alice"), THERE, 100);
        }
        guard.succeeded(&name("alice"), HERE);
        guard.failed(&name("alice"), HERE, 100);
        guard.failed(&name("alice"), THERE, 100);
        assert_eq!(guard.locked_for(&name("alice"), HERE, 100), None, "HERE's count started again");
        assert!(guard.locked_for(&name("alice"), THERE, 100).is_some(), "THERE's did not");
        assert_eq!(guard.counts().names[&name("alice")].failures, 20, "nor did the name's own count");
        assert_eq!(guard.locks(100).get("alice").map(|l| (l.addresses, l.all_addresses)), Some((1, false)));
        guard.lift(&name("ALICE"));
        assert_eq!(guard.locked_for(&name("alice"), THERE, 100), None);
        assert!(guard.locks(100).is_empty());
        let counts = guard.counts();
        assert!(counts.pairs.is_empty() && counts.names.is_empty());
    }

    #[test]
    fn filling_the_guard_to_its_cap_does_not_lift_a_lock() {
        let guard = SignInGuard::with_capacity(4);
        for _ in 0..SignInGuard::MAX_FAILURES_PER_ADDRESS {
            guard.failed(&name("alice"), HERE, 100);
        }
        for i in 0..50 {
            guard.failed(&name(&format!("user{i}")), address(i), 101 + i64::from(i));
            let counts = guard.counts();
            assert!(counts.pairs.len() <= 4 && counts.names.len() <= 4, "bounded");
        }
        assert!(guard.locked_for(&name("alice"), HERE, 200).is_some(), "alice is still refused from HERE");
        // The oldest of the others went first: the newest three are still counted.
        let counts = guard.counts();
        for i in 47..50 {
            assert!(counts.pairs.contains_key(&(name(&format!("user{i}")), address(i))), "user{i}");
        }
        drop(counts);
        // When every entry is a lock, the one that ends first makes room.
        let guard = SignInGuard::with_capacity(2);
        for (at, who) in [(100, "a"), (110, "b"), (120, "c")] {
            for _ in 0..SignInGuard::MAX_FAILURES_PER_ADDRESS {
                guard.failed(&name(who), HERE, at);
            }
        }
        assert_eq!(guard.locked_for(&name("a"), HERE, 120), None);
        assert!(guard.locked_for(&name("b"), HERE, 120).is_some() && guard.locked_for(&name("c"), HERE, 120).is_some());
    }

    #[test]
    fn a_name_longer_than_a_user_name_cannot_be_counted() {
        let long = "x".repeat(60_000);
        assert_eq!(SignInName::parse(&long).map_err(|e| e.field), Err("username"));
        assert_eq!(SignInName::parse("   ").map_err(|e| e.field), Err("username"));
        assert_eq!(SignInName::parse(&format!("  {}  ", "X".repeat(64))).map(|n| n.as_str().to_owned()), Ok("x".repeat(64)));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let same_network: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other_network: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(one), client_key(same_network));
        assert_ne!(client_key(one), client_key(other_network));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(client_key(mapped), HERE, "an IPv4 client over IPv6 is its IPv4 address");
        let guard = SignInGuard::default();
        for _ in 0..SignInGuard::MAX_FAILURES_PER_ADDRESS {
            guard.failed(&name("alice"), one, 100);
        }
        assert!(guard.locked_for(&name("alice"), same_network, 100).is_some());
        assert!(guard.locked_for(&name("alice"), other_network, 100).is_none());
    }

    #[tokio::test]
    async fn password_work_takes_a_slot_and_gives_it_back() {
        let slots = PasswordSlots::new(1);
        let held = slots.try_take().expect("a free slot");
        assert!(slots.try_take().is_none(), "the only slot is taken: the next is refused at once");
        let hash = held.hash(SecretString::from("correct horse battery".to_owned())).await.expect("hash");
        let slot = slots.try_take().expect("free again when the work is done");
        assert!(slot.verify(SecretString::from("correct horse battery".to_owned()), Some(hash.clone())).await);
        let slot = slots.try_take().expect("free again");
        assert!(!slot.verify(SecretString::from("wrong".to_owned()), Some(hash)).await);
        assert!(!slots.try_take().expect("free").verify(SecretString::from("wrong".to_owned()), None).await, "the decoy");
        assert!(slots.try_take().expect("free").hash(SecretString::from("short".to_owned())).await.is_err());
        assert!(PasswordSlots::default().try_take().is_some());
    }

    #[test]
    fn account_details_are_checked() {
        assert_eq!(parse_username(" jane.doe@contoso.com ").as_deref(), Ok("jane.doe@contoso.com"));
        assert!(parse_username("jane doe").is_err() && parse_username("").is_err() && parse_username("<script>").is_err());
        assert_eq!(parse_display_name("", "jane").as_deref(), Ok("jane"));
        assert_eq!(parse_display_name("a\nb", "jane").map_err(|e| e.field), Err("displayName"));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password(&SecretString::from("correct horse battery".to_owned())).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("Correct horse battery", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password(&SecretString::from("short".to_owned())).is_err());
    }
}
