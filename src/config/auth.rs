//! The `auth` section: bearer tokens read from files or environment
//! variables, each with its SLA allow-list and admin right.

use std::collections::HashSet;

use super::raw::RawAuth;
use crate::auth::{Auth, Secret, Token};
use crate::fields::{Problems, unique_name};
use crate::sla::Sla;

/// Shorter tokens are guessable.
const MIN_TOKEN_BYTES: usize = 16;

pub(super) fn validate(p: &mut Problems, raw: &RawAuth, slas: &[Sla]) -> Auth {
    let mut tokens = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in raw.tokens.iter().enumerate() {
        let path = format!("auth.tokens[{i}]");
        let before = p.len();
        let name = unique_name(p, &path, t.name.as_ref(), &mut names, "token");
        let secret = match (&t.token_file, &t.token_env) {
            (Some(file), None) => p.parse(&format!("{path}.token_file"), Some(file), |f| {
                crate::fields::file::text(std::path::Path::new(f), crate::fields::file::TOKEN_BYTES)
                    .map_err(|e| format!("cannot read token file `{f}`: {e}"))
                    .and_then(|s| checked(s.trim()))
            }),
            (None, Some(var)) => p.parse(&format!("{path}.token_env"), Some(var), |v| {
                std::env::var(v)
                    .map_err(|_| format!("environment variable `{v}` is not set"))
                    .and_then(|s| checked(s.trim()))
            }),
            (Some(_), Some(var)) => {
                p.at(
                    format!("{path}.token_env"),
                    Some(var),
                    "give token_file or token_env, not both",
                );
                None
            }
            (None, None) => {
                p.at(
                    format!("{path}.token_file"),
                    None,
                    "required: token_file or token_env",
                );
                None
            }
        };
        let mut allowed = HashSet::new();
        for (j, s) in t.slas.iter().enumerate() {
            let name = s.value.trim();
            if slas.iter().any(|x| x.name == name) {
                allowed.insert(name.to_owned());
            } else {
                let known: Vec<&str> = slas.iter().map(|x| x.name.as_str()).collect();
                p.at(
                    format!("{path}.slas[{j}]"),
                    Some(s),
                    format!("unknown SLA `{name}`; configured: {}", known.join(", ")),
                );
            }
        }
        let admin = p
            .parse(
                &format!("{path}.admin"),
                t.admin.as_ref(),
                crate::fields::flag,
            )
            .unwrap_or(false);
        if p.len() > before {
            continue;
        }
        if let (Some(name), Some(secret)) = (name, secret) {
            if tokens.iter().any(|x: &Token| x.secret == secret) {
                p.at(
                    format!("{path}.name"),
                    t.name.as_ref(),
                    format!("token `{name}` has the same value as another token"),
                );
                continue;
            }
            tokens.push(Token {
                name,
                secret,
                slas: (!t.slas.is_empty()).then_some(allowed),
                admin,
            });
        }
    }
    Auth { tokens }
}

fn checked(value: &str) -> Result<Secret, String> {
    if value.len() < MIN_TOKEN_BYTES {
        // Never quote the value itself.
        return Err(format!(
            "the token is {} bytes; use at least {MIN_TOKEN_BYTES} random bytes (e.g. `openssl rand -hex 32`)",
            value.len()
        ));
    }
    if value
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("the token contains whitespace or control characters".to_owned());
    }
    Ok(Secret::new(value.to_owned()))
}
