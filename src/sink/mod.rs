//! Sinks write plans: to a new folder by hardlinks ([`fs`]), into an
//! existing storage tree through its store ([`store`]), as a tar stream
//! ([`tar`]), with the hardlink → reflink → checked copy helper
//! ([`place`]).

pub mod fs;
pub mod place;
pub mod store;
pub mod tar;
