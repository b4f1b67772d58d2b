//! The registration authority: the regulation's five processes, step by step: the processes as
//! data ([`regulation`]), application numbers ([`number`]), applications with their steps and
//! refusals ([`application`]), refusal messages in the three languages ([`refusals`]), and the
//! SLA report ([`report`]).

pub mod application;
pub mod desk;
pub mod id_card;
pub mod number;
pub mod refusals;
pub mod regulation;
pub mod report;
pub mod survey;
