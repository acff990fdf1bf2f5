//! Sinks write plans: to a folder by hardlinks ([`fs`]), with the
//! hardlink → reflink → checked copy helper ([`place`]).

pub mod fs;
pub mod place;
pub mod tar;
