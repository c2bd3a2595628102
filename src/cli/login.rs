//! What `login` asks at a terminal before the library takes over: the user
//! name and a password typed with echo off.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strata::command::login::LoginRequest;

use super::args::LoginArgs;

/// Reads a password at the terminal with echo off (rpassword, which puts
/// the terminal back as it found it however the read ends). Ctrl-C reaches
/// it as a character and it raises SIGINT while echo is still off: during
/// the prompt the signal only sets a flag, and once the terminal is restored
/// the process ends by SIGINT as the shell expects. After the prompt SIGINT
/// ends the process at once again, as it did before.
fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    use signal_hook::consts::SIGINT;
    let interrupted = Arc::new(AtomicBool::new(false));
    let prompt_over = Arc::new(AtomicBool::new(false));
    // Once a handler is installed it stays; the default action is taken
    // back by this second one when the prompt is over.
    signal_hook::flag::register(SIGINT, Arc::clone(&interrupted))?;
    signal_hook::flag::register_conditional_default(SIGINT, Arc::clone(&prompt_over))?;
    let read = rpassword::prompt_password(prompt);
    prompt_over.store(true, Ordering::SeqCst);
    if interrupted.load(Ordering::SeqCst) {
        signal_hook::low_level::emulate_default_handler(SIGINT)?;
    }
    Ok(read?)
}

/// The login request, asking for what the flags leave out when standard
/// input is a terminal.
pub fn request(args: LoginArgs) -> anyhow::Result<LoginRequest> {
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let mut request = LoginRequest {
        server: args.server,
        username: args.username,
        password: args.password,
        password_stdin: args.password_stdin,
    };
    if request.password_stdin || !std::io::stdin().is_terminal() {
        return Ok(request);
    }
    if request.username.is_none() {
        eprint!("Username: ");
        let mut u = String::new();
        std::io::stdin().read_line(&mut u)?;
        request.username = Some(u.trim().to_string());
    }
    if request.password.is_none() {
        request.password = Some(read_hidden("Password: ")?);
    }
    Ok(request)
}
