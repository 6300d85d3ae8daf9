//! Basic auth from the web config: every request needs a user and password
//! matching a bcrypt hash, except writes that carry a bearer token when
//! tokens are configured (one `Authorization` header cannot hold both).
//!
//! bcrypt is slow on purpose, so a verified header is remembered (as a keyed
//! hash, never the password) and later requests with it skip the check.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::AppState;

/// Verified headers remembered; the set starts over when full.
const CACHE: usize = 1024;

/// The users of the web config and the headers already verified.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// A hash of nothing at the users' highest cost: an unknown user is
    /// checked against it, so that a wrong name takes as long as a wrong
    /// password and names cannot be guessed by timing (as exporter-toolkit
    /// does).
    decoy: String,
    verified: Mutex<HashSet<u64>>,
    keys: std::collections::hash_map::RandomState,
}

impl BasicAuth {
    /// Guards with `users` (user name to bcrypt hash).
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let cost = users
            .values()
            .filter_map(|h| h.get(4..6)?.parse::<u32>().ok())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let decoy = bcrypt::hash("", cost)
            .or_else(|_| bcrypt::hash("", bcrypt::DEFAULT_COST))
            .unwrap_or_default();
        BasicAuth {
            users,
            decoy,
            verified: Mutex::new(HashSet::new()),
            keys: std::collections::hash_map::RandomState::new(),
        }
    }

    async fn allows(&self, header: &[u8]) -> bool {
        let key = self.keys.hash_one(header);
        if self.verified.lock().is_ok_and(|v| v.contains(&key)) {
            return true;
        }
        let Some((user, password)) = header
            .strip_prefix(b"Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let matched =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let ok = known && matched;
        if ok && let Ok(mut v) = self.verified.lock() {
            if v.len() >= CACHE {
                v.clear();
            }
            v.insert(key);
        }
        ok
    }
}

/// Middleware: 401 with a `Basic` challenge unless the request may pass.
pub async fn require(
    State((auth, app)): State<(Arc<BasicAuth>, AppState)>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let bearer_write = request.method() == Method::POST
        && presented
            .as_deref()
            .is_some_and(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case(b"bearer "))
        && !app.ingest.catalog().auth.is_open();
    if bearer_write {
        // The handler checks the token.
        return next.run(request).await;
    }
    match presented {
        Some(h) if auth.allows(&h).await => next.run(request).await,
        _ => {
            let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"amaze-exporter\""),
            );
            r
        }
    }
}
