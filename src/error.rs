//! oominit's own failures and the exit codes that report them.
//!
//! Everything that can go wrong in PID 1 comes back here as a value, never as a panic: a panic in
//! PID 1 takes the whole container down with no word about why.

use std::fmt;

/// Bad arguments or environment: one line on stderr and a pointer to `--help`.
pub const EXIT_USAGE: i32 = 2;
/// oominit itself could not set up or run (signals, epoll, fork). Docker uses 125 for the same.
pub const EXIT_FATAL: i32 = 125;
/// The command was found but could not be executed (tini's convention).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The command was not found (tini's and the shell's convention).
pub const EXIT_NOT_FOUND: i32 = 127;

/// A failure of oominit's own, with what it was doing and, where there is one, what to do.
#[derive(Debug)]
pub struct Error {
    pub context: String,
    pub cause: String,
    pub hint: Option<&'static str>,
}

impl Error {
    pub fn new(context: impl Into<String>, cause: impl fmt::Display) -> Error {
        Error { context: context.into(), cause: cause.to_string(), hint: None }
    }

    pub fn hint(mut self, hint: &'static str) -> Error {
        self.hint = Some(hint);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.cause)?;
        if let Some(hint) = self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Attach context to any displayable error, as `anyhow` would, without the dependency.
pub trait Context<T> {
    fn context(self, what: &str) -> Result<T, Error>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Error> {
        self.map_err(|e| Error::new(what, e))
    }
}
