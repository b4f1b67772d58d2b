//! The registration authority: the regulation's five processes, step by step: the processes as
//! data ([`regulation`]), applications (numbered by [`crate::ids::number`]) with their steps and
//! refusals ([`application`]) with their requests ([`request`]) and views ([`views`]), the typed
//! nouns, who acts and what is recorded to be done ([`model`]), receipts and the document
//! archive ([`archive`]), the result
//! step done from its recorded intent ([`outcome`]) and the driver that finishes what a fault
//! left undone ([`driver`]), refusal messages in the three languages ([`refusals`]), and the
//! SLA report ([`report`]).

pub mod application;
pub mod archive;
pub mod centre;
pub mod confirmation;
pub mod desk;
pub mod driver;
pub mod id_card;
pub mod model;
pub mod outcome;
pub mod portal;
pub mod refusals;
pub mod registry_check;
pub mod regulation;
pub mod report;
pub mod request;
pub mod survey;
pub mod views;
