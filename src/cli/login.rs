//! What `login` asks at a terminal before the library takes over: the user
//! name and a password typed with echo off.

use std::io::{BufRead, IsTerminal};

use strata::command::login::LoginRequest;

use super::args::LoginArgs;

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
