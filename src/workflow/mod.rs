//! The registration authority: the regulation's five processes, step by step. This stage has
//! the processes as data ([`regulation`]) and application numbers ([`number`]); applications,
//! their steps and refusals follow.

pub mod application;
pub mod desk;
pub mod number;
pub mod regulation;
pub mod survey;
