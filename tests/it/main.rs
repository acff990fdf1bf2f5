//! Integration tests: the regkit binary against trees the real registry
//! wrote, checked with the real registry and skopeo.

mod common;

mod bad_input;
mod bundle;
mod delete;
mod du;
mod export;
mod extract;
mod fixtures;
mod gc;
mod import;
mod inspect;
mod interrupt;
mod lock;
mod ls;
mod names;
mod overlap;
mod promises;
mod pull;
mod push;
mod referrers;
mod s3;
mod select;
mod serve;
mod special;
mod stdout;
mod unpack_safety;
mod verify;
mod walk;
