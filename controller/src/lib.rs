//! vmctl controller library.
