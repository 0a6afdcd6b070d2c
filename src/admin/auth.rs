//! Who is calling: bearer token → organization and scopes.
//!
//! * `ak_<id>.<secret>` carries its organization.
//! * `pat_<id>.<secret>` needs `X-Anyreach-Org: <organization id>` and a
//!   membership of that organization.
//!
//! Missing, malformed, unknown, wrong-secret and revoked tokens are all the
//! same 401, so a caller learns nothing about which ids exist.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use super::error::ApiError;
use super::AdminState;
use crate::token::{self, Scope, TokenKind};

/// Header naming the organization for personal access tokens.
pub const ORG_HEADER: &str = "x-anyreach-org";

/// An authenticated caller acting in one organization, whose token holds the
/// scope `S` (checked during extraction, before the body is read).
#[derive(Debug, Clone)]
pub(crate) struct Caller<S> {
    pub organization_id: String,
    /// Token id, recorded as `changed_by` in revisions.
    pub token_id: String,
    scopes: Vec<Scope>,
    _needs: PhantomData<S>,
}

/// A scope required by a handler, named in its signature: `Caller<needs::AgentsRead>`.
pub(crate) trait Needs {
    const SCOPE: Scope;
}

/// Marker types for [`Caller`], one per [`Scope`].
pub(crate) mod needs {
    use super::{Needs, Scope};

    macro_rules! needs {
        ($($name:ident),*) => {$(
            #[derive(Debug, Clone)]
            pub(crate) struct $name;
            impl Needs for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }
    needs!(
        RoutingRead,
        RoutingManage,
        AgentsRead,
        AgentsManage,
        TrunksRead,
        TrunksManage,
        NumbersRead,
        NumbersManage
    );
}

impl<S> Caller<S> {
    /// 403 unless the token holds `scope` (or the `manage` scope implying it).
    pub(crate) fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if scope.is_granted_by(&self.scopes) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token lacks the `{scope}` scope"
            )))
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("missing, invalid or revoked token".to_owned())
}

impl<S: Needs> FromRequestParts<AdminState> for Caller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(unauthorized)?;
        let presented = token::parse(bearer).ok_or_else(unauthorized)?;
        let stored = state
            .store
            .token(presented.id)
            .await?
            .filter(|t| t.kind == presented.kind && t.revoked_at.is_none())
            .filter(|t| token::verify_secret(presented.secret, &t.secret_hash))
            .ok_or_else(unauthorized)?;

        let claimed = parts
            .headers
            .get(ORG_HEADER)
            .map(|v| v.to_str().map(str::trim).unwrap_or(""));
        let organization_id = match stored.kind {
            TokenKind::OrgKey => {
                let own = stored.organization_id.clone().ok_or_else(unauthorized)?;
                if claimed.is_some_and(|c| c != own) {
                    return Err(ApiError::Forbidden(
                        "this key is not valid for the organization in X-Anyreach-Org".to_owned(),
                    ));
                }
                own
            }
            TokenKind::Pat => {
                let org = claimed.filter(|c| !c.is_empty()).ok_or_else(|| {
                    ApiError::Unauthorized("Token is missing organization claim".to_owned())
                })?;
                let user = stored.user_id.as_deref().ok_or_else(unauthorized)?;
                if !state.store.is_member(user, org).await? {
                    return Err(ApiError::Forbidden(
                        "you are not a member of this organization".to_owned(),
                    ));
                }
                org.to_owned()
            }
        };
        if let Err(e) = state.store.touch_token(&stored.id).await {
            tracing::debug!(error = %e, "could not record token use");
        }
        tracing::Span::current().record("org", organization_id.as_str());
        let caller = Self {
            organization_id,
            token_id: stored.id,
            scopes: stored.scopes,
            _needs: PhantomData,
        };
        caller.require(S::SCOPE)?;
        Ok(caller)
    }
}
