//! API tokens: the wire format, secret generation, hashing and scopes.
//!
//! Two kinds of bearer token reach the admin API:
//!
//! * organization keys, `ak_<id>.<secret>`, which carry their organization;
//! * personal access tokens, `pat_<id>.<secret>`, which belong to a user and
//!   name the organization per request with `X-Anyreach-Org`.
//!
//! Only a SHA-256 hash of the secret is stored. The secret is 256 random bits,
//! so a fast hash is enough (no password stretching needed), and comparison is
//! constant-time. Pure code: no I/O, no store access.
//!
//! Allowed imports: std, `rand`, `sha2`, `subtle`, `serde`.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Which kind of principal a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `ak_...`: bound to one organization.
    OrgKey,
    /// `pat_...`: bound to a user, who may belong to several organizations.
    Pat,
}

impl TokenKind {
    /// The token's prefix on the wire, without the underscore.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::OrgKey => "ak",
            Self::Pat => "pat",
        }
    }

    /// The value stored in `api_tokens.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgKey => "org_key",
            Self::Pat => "pat",
        }
    }

    /// Reads the value stored in `api_tokens.kind`.
    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "org_key" => Some(Self::OrgKey),
            "pat" => Some(Self::Pat),
            _ => None,
        }
    }
}

/// A bearer token split into its parts; nothing is verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    pub kind: TokenKind,
    pub id: &'a str,
    pub secret: &'a str,
}

/// Splits `ak_<id>.<secret>` / `pat_<id>.<secret>`; `None` for anything else.
pub fn parse(token: &str) -> Option<PresentedToken<'_>> {
    let (kind, rest) = if let Some(rest) = token.strip_prefix("ak_") {
        (TokenKind::OrgKey, rest)
    } else if let Some(rest) = token.strip_prefix("pat_") {
        (TokenKind::Pat, rest)
    } else {
        return None;
    };
    let (id, secret) = rest.split_once('.')?;
    let well_formed =
        |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (well_formed(id) && well_formed(secret)).then_some(PresentedToken { kind, id, secret })
}

/// A freshly minted token: the full bearer string (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub kind: TokenKind,
    pub id: String,
    pub bearer: String,
    pub secret_hash: String,
}

/// Creates a new random token of `kind`.
pub fn mint(kind: TokenKind) -> MintedToken {
    let id = random_alnum(16);
    let secret = random_alnum(43);
    let bearer = format!("{}_{id}.{secret}", kind.prefix());
    MintedToken {
        kind,
        secret_hash: hash_secret(&secret),
        id,
        bearer,
    }
}

/// Hex SHA-256 of a secret, as stored in `api_tokens.secret_hash`.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Constant-time check of a presented secret against a stored hash.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// `len` random characters from `[a-z0-9]` (about 5.2 bits each).
pub fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A permission a token may hold. `...:manage` implies `...:read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    RoutingRead,
    RoutingManage,
    AgentsRead,
    AgentsManage,
    TrunksRead,
    TrunksManage,
    NumbersRead,
    NumbersManage,
}

impl Scope {
    /// Every scope, in display order.
    pub const ALL: [Self; 8] = [
        Self::RoutingRead,
        Self::RoutingManage,
        Self::AgentsRead,
        Self::AgentsManage,
        Self::TrunksRead,
        Self::TrunksManage,
        Self::NumbersRead,
        Self::NumbersManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoutingRead => "inbound_routing_configs:read",
            Self::RoutingManage => "inbound_routing_configs:manage",
            Self::AgentsRead => "agents:read",
            Self::AgentsManage => "agents:manage",
            Self::TrunksRead => "trunks:read",
            Self::TrunksManage => "trunks:manage",
            Self::NumbersRead => "phone_numbers:read",
            Self::NumbersManage => "phone_numbers:manage",
        }
    }

    /// The scope that also grants this one, if any (`manage` grants `read`).
    fn implied_by(self) -> Option<Self> {
        match self {
            Self::RoutingRead => Some(Self::RoutingManage),
            Self::AgentsRead => Some(Self::AgentsManage),
            Self::TrunksRead => Some(Self::TrunksManage),
            Self::NumbersRead => Some(Self::NumbersManage),
            _ => None,
        }
    }

    /// Whether a token holding `held` may do what `self` guards.
    pub fn is_granted_by(self, held: &[Self]) -> bool {
        held.contains(&self) || self.implied_by().is_some_and(|s| held.contains(&s))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown scope name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown scope `{0}` (known: {known})", known = known_scopes())]
pub struct UnknownScope(pub String);

fn known_scopes() -> String {
    Scope::ALL.map(Scope::as_str).join(", ")
}

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_parses_and_verifies() {
        let minted = mint(TokenKind::OrgKey);
        let parsed = parse(&minted.bearer).expect("minted token parses");
        assert_eq!(parsed.kind, TokenKind::OrgKey);
        assert_eq!(parsed.id, minted.id);
        assert!(verify_secret(parsed.secret, &minted.secret_hash));
        assert!(!verify_secret("wrong", &minted.secret_hash));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in [
            "",
            "ak_",
            "ak_abc",
            "ak_.x",
            "ak_x.",
            "xx_a.b",
            "ak_a.b'--",
            "pat_a b.c",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} should not parse");
        }
        assert_eq!(parse("pat_a.b").map(|t| t.kind), Some(TokenKind::Pat));
    }

    #[test]
    fn manage_implies_read_but_not_the_reverse() {
        assert!(Scope::RoutingRead.is_granted_by(&[Scope::RoutingManage]));
        assert!(!Scope::RoutingManage.is_granted_by(&[Scope::RoutingRead]));
        assert!(!Scope::TrunksRead.is_granted_by(&[Scope::AgentsManage]));
    }

    #[test]
    fn scopes_round_trip_through_their_names() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        assert!("agents:write".parse::<Scope>().is_err());
    }
}
