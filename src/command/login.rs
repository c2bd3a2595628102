//! `strata login` and `strata logout`, writing docker's credential store.
//! Asking for a user name or password at a terminal is the front end's
//! job: the request carries them.

use std::io::{BufRead, Write};

use serde::Deserialize;

use crate::transport::registry::Client;
use crate::transport::registry::auth::Credential;
use crate::transport::registry::credentials::{self, Stored};

use super::{CommandError, Context, Ui};

/// `login [OPTIONS] [SERVER]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoginRequest {
    /// The registry (Docker Hub when omitted).
    pub server: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Password (in a pipeline, take it from the environment: `${{ env.PASSWORD }}`).
    pub password: Option<String>,
    /// Take the password from stdin.
    pub password_stdin: bool,
}

/// `logout [SERVER]`
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogoutRequest {
    /// The registry (Docker Hub when omitted).
    pub server: Option<String>,
}

/// The registry a `login`/`logout` server argument names, as docker keys it.
pub fn registry_of(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" | "" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// Runs `login`: checks the credential against the registry, then stores it.
pub fn login(
    ctx: &Context,
    args: &LoginRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let registry = registry_of(args.server.as_deref());
    let mut password = args.password.clone();
    if args.password_stdin {
        if args.password.is_some() {
            return Err(CommandError::Invalid(
                "--password and --password-stdin are mutually exclusive".into(),
            ));
        }
        if args.username.is_none() {
            return Err(CommandError::Invalid(
                "Must provide --username with --password-stdin".into(),
            ));
        }
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut text)
            .map_err(|e| CommandError::io("reading the password from stdin", e))?;
        password = Some(text.trim_end_matches(['\n', '\r']).to_string());
    }
    let (Some(username), Some(password)) = (args.username.clone(), password) else {
        return Err(CommandError::Invalid(
            "Cannot perform an interactive login from a non TTY device".into(),
        ));
    };
    if username.is_empty() || password.is_empty() {
        return Err(CommandError::Invalid(
            "Error: Username and password are both required".into(),
        ));
    }
    let mut options = ctx.registries().options(&registry)?;
    options.credential = Some(Credential::Basic {
        username: username.clone(),
        password: password.clone(),
    });
    let client = Client::new(&registry, &options)?;
    client.check_login().map_err(|e| LoginError::Refused {
        registry: registry.clone(),
        source: e,
    })?;
    if let Stored::File(path) = credentials::store(&registry, &username, &password)? {
        ui.warn(&format!(
            "WARNING! Your password will be stored unencrypted in {}.",
            path.display()
        ));
        ui.warn("Configure a credential helper to remove this warning. See");
        ui.warn("https://docs.docker.com/engine/reference/commandline/login/#credentials-store");
        ui.warn("");
    }
    ctx.registries().forget(&registry);
    writeln!(ui.stdout(), "Login Succeeded")?;
    Ok(serde_json::json!({ "registry": registry }))
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The registry refused the credential (or could not be reached).
    #[error("login to {registry} failed: {source}")]
    Refused {
        /// The registry.
        registry: String,
        /// What it answered.
        #[source]
        source: crate::transport::registry::RegistryError,
    },
}

/// Runs `logout`.
pub fn logout(
    ctx: &Context,
    args: &LogoutRequest,
    ui: &dyn Ui,
) -> Result<serde_json::Value, CommandError> {
    let registry = registry_of(args.server.as_deref());
    let key = credentials::server_key(&registry);
    let mut out = ui.stdout();
    if credentials::erase(&registry)? {
        writeln!(out, "Removing login credentials for {key}")?;
    } else {
        writeln!(out, "Not logged in to {key}")?;
    }
    ctx.registries().forget(&registry);
    Ok(serde_json::json!({ "registry": registry }))
}
