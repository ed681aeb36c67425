//! Report rendering (in progress).
