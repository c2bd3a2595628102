//! `strata login` and `strata logout`, writing docker's credential store.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use strata::transport::registry::auth::Credential;
use strata::transport::registry::credentials::{self, Stored};
use strata::transport::registry::{Client, ClientOptions};

use crate::cli::args::{LoginArgs, LogoutArgs};
use crate::cli::cmd::registry::Registries;

fn registry_of(server: Option<&str>) -> String {
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

/// Reads one line from the terminal without echo (for a password prompt).
fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr/tcsetattr on our own stdin.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let have = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
    if have {
        let mut quiet = term;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs `login`: checks the credential against the registry, then stores it.
pub fn login(registries: &Registries, args: &LoginArgs) -> anyhow::Result<()> {
    let registry = registry_of(args.server.as_deref());
    let mut password = args.password.clone();
    if password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if args.password_stdin {
        if args.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        if args.username.is_none() {
            bail!("Must provide --username with --password-stdin");
        }
        let mut text = String::new();
        std::io::stdin().read_line(&mut text)?;
        password = Some(text.trim_end_matches(['\n', '\r']).to_string());
    }
    let interactive = std::io::stdin().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if interactive => {
            eprint!("Username: ");
            let mut u = String::new();
            std::io::stdin().read_line(&mut u)?;
            u.trim().to_string()
        }
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    let password = match password {
        Some(p) => p,
        None if interactive => read_hidden("Password: ")?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    if username.is_empty() || password.is_empty() {
        bail!("Error: Username and password are both required");
    }
    let mut options: ClientOptions = registries.options(&registry).unwrap_or_default();
    options.credential = Some(Credential::Basic {
        username: username.clone(),
        password: password.clone(),
    });
    let client = Client::new(&registry, &options)?;
    client
        .check_login()
        .with_context(|| format!("login to {registry} failed"))?;
    match credentials::store(&registry, &username, &password)? {
        Stored::File(path) => {
            eprintln!(
                "WARNING! Your password will be stored unencrypted in {}.",
                path.display()
            );
            eprintln!("Configure a credential helper to remove this warning. See");
            eprintln!(
                "https://docs.docker.com/engine/reference/commandline/login/#credentials-store"
            );
            eprintln!();
        }
        Stored::Helper(_) => {}
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "Login Succeeded")?;
    Ok(())
}

/// Runs `logout`.
pub fn logout(args: &LogoutArgs) -> anyhow::Result<()> {
    let registry = registry_of(args.server.as_deref());
    let key = credentials::server_key(&registry);
    if credentials::erase(&registry)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(())
}
