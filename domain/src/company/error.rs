/// Each variant names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompanyError {
    #[error("a company with this id already exists")]
    AlreadyExists,
    #[error("company not found")]
    NotFound,
    #[error("the company is deactivated; reactivate it before changing it")]
    Deactivated,
    #[error("the company is already deactivated")]
    AlreadyDeactivated,
    #[error("the company is not deactivated")]
    NotDeactivated,
}
