//! `/api/v1/containers/{c}/inspect`: how a container was set up (command,
//! ports, mounts, networks, restart policy and count, health, limits), as
//! the Engine tells it, secrets redacted. For the container's page.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use jaga_model::ContainerSetup;
use serde::Serialize;

use super::ApiError;
use crate::ServerState;

#[derive(Serialize)]
pub struct SetupAnswer {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub setup: ContainerSetup,
}

pub async fn inspect(
    State(state): State<Arc<ServerState>>,
    Path(query_id): Path<String>,
) -> Result<Json<SetupAnswer>, ApiError> {
    let Some(view) = state.setup.clone() else {
        return Err(ApiError::not_found(
            "container set-up is not available here",
        ));
    };
    let found = super::resolve(&state, &query_id).await?;
    let setup = view
        .setup(found.view.id.clone())
        .await
        .map_err(ApiError::bad_gateway)?;
    Ok(Json(SetupAnswer {
        id: found.view.id,
        name: found.view.name,
        setup,
    }))
}
