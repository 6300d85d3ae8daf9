//! Bearer tokens for writes: who may push deliveries and events (per-token
//! SLA allow-lists) and who may reload the config. Reads stay open unless the
//! web config (TLS, basic auth) closes them.
//!
//! Secrets are read from files or environment variables named in the config,
//! compared in constant time, and never logged or exported: [`Secret`]'s
//! `Debug` prints a placeholder.

use std::collections::HashSet;

use subtle::ConstantTimeEq;

use crate::source::Reason;

/// A token's value; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from a file or the environment.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One bearer token of the config and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Names the token in logs and errors.
    pub name: String,
    /// The token itself; never printed.
    pub secret: Secret,
    /// SLAs it may write; `None` for every SLA.
    pub slas: Option<HashSet<String>>,
    /// May reload the config.
    pub admin: bool,
}

/// Every token of the config; none means writes are open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// The configured tokens, in config order.
    pub tokens: Vec<Token>,
}

/// Why a request may not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    #[error("authentication required: send `Authorization: Bearer <token>`")]
    Missing,
    /// A token that matches none configured.
    #[error("the bearer token is not valid")]
    Invalid,
    /// A token whose `slas` list leaves this SLA out.
    #[error("token `{token}` may not write SLA `{sla}`")]
    Sla {
        /// The token's name.
        token: String,
        /// The SLA it asked to write.
        sla: String,
    },
    /// A token without `admin: true` asked to reload.
    #[error("token `{0}` may not reload the config; it needs `admin: true`")]
    NotAdmin(String),
}

impl Denied {
    /// 401 for no or a wrong token, 403 for a token without the right.
    pub fn status(&self) -> u16 {
        match self {
            Denied::Missing | Denied::Invalid => 401,
            Denied::Sla { .. } | Denied::NotAdmin(_) => 403,
        }
    }

    /// Reason label on the rejected-events counter.
    pub fn reason(&self) -> Reason {
        match self {
            Denied::Missing | Denied::Invalid => Reason::Unauthorized,
            Denied::Sla { .. } | Denied::NotAdmin(_) => Reason::Forbidden,
        }
    }
}

/// Who is asking: a token, or anyone when no tokens are configured.
#[derive(Debug, Clone)]
pub struct Caller(Option<Token>);

impl Auth {
    /// Whether writes need no token (none configured).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The caller of a request with this `Authorization` header value.
    pub fn caller(&self, authorization: Option<&[u8]>) -> Result<Caller, Denied> {
        if self.is_open() {
            return Ok(Caller(None));
        }
        let presented = authorization
            .and_then(|h| {
                let (scheme, value) = h.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(value)
            })
            .map(<[u8]>::trim_ascii)
            .ok_or(Denied::Missing)?;
        // Compare with every token, so the time taken says nothing of which matched.
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.secret.0.as_bytes().ct_eq(presented)) {
                found = Some(t);
            }
        }
        found
            .map(|t| Caller(Some(t.clone())))
            .ok_or(Denied::Invalid)
    }
}

impl Caller {
    /// Whether this caller may write SLA `sla`.
    pub fn may_write(&self, sla: &str) -> Result<(), Denied> {
        match &self.0 {
            Some(Token {
                name,
                slas: Some(allowed),
                ..
            }) if !allowed.contains(sla) => Err(Denied::Sla {
                token: name.clone(),
                sla: sla.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether this caller may reload the config.
    pub fn may_reload(&self) -> Result<(), Denied> {
        match &self.0 {
            Some(t) if !t.admin => Err(Denied::NotAdmin(t.name.clone())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth {
            tokens: vec![
                Token {
                    name: "pusher".into(),
                    secret: Secret::new("s3cret-pusher-token".into()),
                    slas: Some(["checkout".to_owned()].into()),
                    admin: false,
                },
                Token {
                    name: "ops".into(),
                    secret: Secret::new("s3cret-ops-token".into()),
                    slas: None,
                    admin: true,
                },
            ],
        }
    }

    #[test]
    fn tokens_name_their_rights() {
        let a = auth();
        assert_eq!(a.caller(None).unwrap_err().status(), 401);
        assert_eq!(a.caller(Some(b"Bearer nope")).unwrap_err(), Denied::Invalid);
        assert_eq!(
            a.caller(Some(b"Basic s3cret-pusher-token")).unwrap_err(),
            Denied::Missing
        );
        let pusher = a.caller(Some(b"Bearer s3cret-pusher-token")).unwrap();
        assert!(pusher.may_write("checkout").is_ok());
        assert_eq!(pusher.may_write("search").unwrap_err().status(), 403);
        assert_eq!(pusher.may_reload().unwrap_err().status(), 403);
        let ops = a.caller(Some(b"bearer  s3cret-ops-token ")).unwrap();
        assert!(ops.may_write("search").is_ok() && ops.may_reload().is_ok());
        assert!(Auth::default().caller(None).unwrap().may_reload().is_ok());
    }

    #[test]
    fn secrets_never_print() {
        let shown = format!("{:?}", auth());
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
