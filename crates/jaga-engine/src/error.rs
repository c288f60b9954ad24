use thiserror::Error;

/// What can go wrong talking to the Engine. Messages say what was tried and,
/// for the common set-up mistakes, how to fix it.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot connect to the Docker engine at {endpoint}: {reason}; is dockerd running? start it, or point DOCKER_HOST (or [engine] host) at the right socket")]
    Unreachable { endpoint: String, reason: String },

    #[error("permission denied on the Docker engine socket {endpoint}: run jaga as root or as a member of the 'docker' group")]
    PermissionDenied { endpoint: String },

    #[error("unsupported Docker host '{endpoint}': use unix://PATH, tcp://HOST:PORT or https://HOST:PORT")]
    UnsupportedHost { endpoint: String },

    #[error("cannot set up TLS to the Docker engine at {endpoint} with certificates from '{cert_path}': {reason}")]
    Tls {
        endpoint: String,
        cert_path: String,
        reason: String,
    },

    #[error(
        "the Docker engine at {endpoint} did not answer within {timeout:?} ([engine] timeout)"
    )]
    Timeout {
        endpoint: String,
        timeout: std::time::Duration,
    },

    #[error("No such container: {0}")]
    NoSuchContainer(String),

    #[error("Docker engine request '{what}' failed: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl EngineError {
    /// Whether the container asked for is gone (removed, or never existed).
    pub fn is_no_such_container(&self) -> bool {
        matches!(self, Self::NoSuchContainer(_))
    }
}
