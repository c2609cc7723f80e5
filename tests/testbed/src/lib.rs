//! vmctl testbed library.
