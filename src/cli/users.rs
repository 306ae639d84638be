//! `evidentia user`: accounts.

use clap::Subcommand;

use evidentia::auth::{passwords, users};
use evidentia::db::paging::PageRequest;
use evidentia::db::Conn;
use evidentia::error::Error;

use super::{input, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create an account.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        full_name: String,
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (else one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    Deactivate {
        username: String,
    },
    Reactivate {
        username: String,
    },
    Unlock {
        username: String,
    },
    /// Set a new password (generated and printed, or read with --password-stdin).
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Turn off someone's two-factor sign-in (a lost phone, no recovery code left): their
    /// sessions end, and they set it up again where it is required. The way back in for the
    /// last administrator.
    ResetMfa {
        username: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

fn find(conn: &mut Conn, name: &str) -> Result<users::User, Failure> {
    users::find_by_username(conn, name)?.ok_or_else(|| Failure::Input(format!("no user '{name}'")))
}

/// A new password: read from stdin, or generated (and then to be shown).
fn new_password(from_stdin: bool, username: &str) -> Result<(String, bool), Failure> {
    let (pw, show) = if from_stdin { (input::password_stdin()?, false) } else { (passwords::generate(), true) };
    passwords::check_policy("password", &pw, username)?;
    Ok((pw, show))
}

pub fn run(ctx: &Ctx, cmd: UserCmd) -> CliResult {
    let (mut conn, actor) = ctx.open()?;
    match cmd {
        UserCmd::Add { username, full_name, admin, password_stdin } => {
            if !actor.is_admin {
                return Err(Error::forbidden("only administrators create users").into());
            }
            let (pw, show) = new_password(password_stdin, &username)?;
            let input = users::NewUserInput { username, full_name, is_admin: admin };
            let u = users::create(&mut conn, &actor, &input, &passwords::hash(&pw)?)?;
            println!("created user {}", u.username);
            if show {
                println!("password: {pw}");
            }
        }
        UserCmd::List => {
            let t = evidentia::db::now();
            for u in users::list(&mut conn, "", PageRequest::all())?.items {
                let state = if !u.active {
                    "deactivated"
                } else if u.is_locked(t) {
                    "locked"
                } else {
                    "active"
                };
                let mfa = if u.has_mfa() { "2fa" } else { "" };
                let admin = if u.is_admin { "admin" } else { "" };
                println!("{:<20} {:<30} {admin:<6} {mfa:<4} {state}", u.username, u.full_name);
            }
        }
        UserCmd::Deactivate { username } => {
            let u = find(&mut conn, &username)?;
            users::apply_account_action(&mut conn, &actor, u.id, users::AccountAction::Deactivate)?;
            println!("{username} deactivated");
        }
        UserCmd::Reactivate { username } => {
            let u = find(&mut conn, &username)?;
            users::apply_account_action(&mut conn, &actor, u.id, users::AccountAction::Reactivate)?;
            println!("{username} reactivated");
        }
        UserCmd::Unlock { username } => {
            let u = find(&mut conn, &username)?;
            users::apply_account_action(&mut conn, &actor, u.id, users::AccountAction::Unlock)?;
            println!("{username} unlocked");
        }
        UserCmd::ResetPassword { username, password_stdin } => {
            let u = find(&mut conn, &username)?;
            let (pw, show) = new_password(password_stdin, &username)?;
            users::set_password(&mut conn, &actor, u.id, &passwords::hash(&pw)?, true, None)?;
            println!("password of {username} reset");
            if show {
                println!("password: {pw}");
            }
        }
        UserCmd::ResetMfa { username, reason } => {
            let u = find(&mut conn, &username)?;
            evidentia::auth::mfa::reset(&mut conn, &actor, u.id, &reason)?;
            println!("two-factor sign-in of {username} reset; their sessions ended");
        }
    }
    Ok(())
}
