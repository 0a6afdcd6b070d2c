//! `/openapi.json`, generated from the handlers' types with utoipa.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    agents, decisions, dry_run, error, health, phone_numbers, routing_config, secrets, trunks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "inroute admin API", description = "Configure inbound call routing."),
    paths(
        routing_config::get, routing_config::create, routing_config::update,
        routing_config::delete, routing_config::revisions, routing_config::restore,
        dry_run::test, decisions::list, decisions::get, secrets::list, secrets::put, secrets::delete,
        agents::list, agents::create, agents::get, agents::update, agents::delete,
        agents::versions, agents::create_version, agents::publish,
        trunks::list, trunks::create, trunks::get, trunks::update, trunks::delete,
        phone_numbers::list, phone_numbers::create, phone_numbers::get,
        phone_numbers::update, phone_numbers::delete,
        health::healthz, health::readyz,
    ),
    components(schemas(error::ErrorBody, error::FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`ak_<id>.<secret>` organization key, or `pat_<id>.<secret>` \
                         with `X-Anyreach-Org`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of this API.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
