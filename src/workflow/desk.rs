//! What the operator's console shows of an application: the application as the applicant sees
//! it, and the applicant's data as submitted, for the identity check and the receipt.

use serde::Serialize;

use super::application::{ApplicationView, Workflow, WorkflowError};
use crate::model::{ApplicantData, OrganizationData};
use crate::operators::Operator;
use crate::pki::status::rfc3339;

/// The application's fields at the top level (what the station reads to resume an enrolment),
/// and the applicant's data beside them.
#[derive(Debug, Serialize)]
pub struct DeskView {
    #[serde(flatten)]
    pub application: ApplicationView,
    /// `{iin, surname, name, patronymic, email, region, locality}` as submitted; null for a
    /// revocation, which names only the IIN.
    pub applicant: Option<ApplicantData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationData>,
    pub storage: String,
    /// The registration centre with its names and address, for the receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub centre: Option<crate::operators::centres::Centre>,
    pub created_at: String,
    pub confirmed_by: Option<String>,
}

impl Workflow<'_> {
    /// An application of the operator's centre, with its applicant's data; with `iin`, only if
    /// it is that applicant's (a number mistyped into another person's application is not found).
    pub async fn desk_view(&self, op: &Operator, number: &str, iin: Option<&str>) -> Result<DeskView, WorkflowError> {
        let a = self.operators_application(op, number).await?;
        if iin.is_some_and(|i| i != a.iin) {
            return Err(WorkflowError::NotFound(number.into()));
        }
        Ok(DeskView {
            application: self.view(&a.number).await?,
            applicant: a.applicant.person,
            organization: a.applicant.organization,
            storage: a.storage,
            centre: self.centres.centre(&a.centre).cloned(),
            created_at: rfc3339(a.created_at),
            confirmed_by: a.confirmed_by,
        })
    }
}
