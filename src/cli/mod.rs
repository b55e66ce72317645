//! Command-line flags and logging setup.
