//! The registration authority: the regulation's five processes, step by step: the processes as
//! data ([`regulation`]), applications (numbered by [`crate::ids::number`]) with their steps and
//! refusals ([`application`]) with their requests ([`request`]) and views ([`views`]), the typed
//! nouns, who acts and what is recorded to be done (in [`crate::model`], beneath the store), receipts and the document
//! archive ([`archive`]), the result
//! step done from its recorded intent ([`outcome`]) and the driver that finishes what a fault
//! left undone ([`driver`]), refusal messages in the three languages ([`refusals`]), and the
//! SLA report ([`report`]).

pub mod application;
pub(crate) mod archive;
pub(crate) mod centre;
pub(crate) mod confirmation;
pub(crate) mod desk;
pub(crate) mod driver;
pub(crate) mod id_card;
pub(crate) mod outcome;
pub(crate) mod portal;
pub(crate) mod refusals;
pub(crate) mod registry_check;
pub mod regulation;
pub(crate) mod report;
pub mod request;
pub(crate) mod survey;
pub(crate) mod views;

/// The nouns were the workflow's own (`workflow::model`) until the store, which the workflow uses,
/// had to decode rows into them; named here too for one release, for code written against the old
/// path. New code names [`crate::model`].
pub use crate::model;
