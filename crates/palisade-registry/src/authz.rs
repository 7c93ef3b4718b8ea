//! The registry's actions. Who may take them is decided by Cedar policies
//! ([`palisade_auth::policy`]), deny by default; the built-in policies grant:
//!
//! | action | reader | publisher | approver | admin |
//! |---|---|---|---|---|
//! | read (models, versions, blobs, checkpoints, proofs) | ✓ | ✓ | ✓ | ✓ |
//! | create-model, push (blobs, versions, tags, evidence) | | ✓ | | ✓ |
//! | promote (set or remove an alias) | | | ✓ | ✓ |
//! | read-audit (the events themselves) | | | | ✓ |
//! | manage-keys (create and revoke API keys) | | | | ✓ |
//! | manage-gates (set promotion gates) | | | | ✓ |
//!
//! A role scoped to a model (`publisher:fraud-model`) applies to that model only.
//! Operators add their own policies with `palisade serve --policy FILE`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    CreateModel,
    Push,
    Promote,
    ReadAudit,
    ManageKeys,
    ManageGates,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::CreateModel,
        Action::Push,
        Action::Promote,
        Action::ReadAudit,
        Action::ManageKeys,
        Action::ManageGates,
    ];

    /// The Cedar action id (`Palisade::Action::"<name>"`) and the audit event's action.
    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::CreateModel => "create-model",
            Action::Push => "push",
            Action::Promote => "promote",
            Action::ReadAudit => "read-audit",
            Action::ManageKeys => "manage-keys",
            Action::ManageGates => "manage-gates",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every registry action is an action the policy schema declares (a typo here would
    /// be denied for everyone).
    #[test]
    fn every_action_is_in_the_policy_schema() {
        let policy = palisade_auth::Policy::builtin().unwrap();
        let admin = palisade_auth::Principal {
            id: "pk_0".into(),
            subject: "root".into(),
            roles: vec!["admin".into()],
            method: palisade_auth::Method::ApiKey,
        };
        for a in Action::ALL {
            let d = policy.decide(&admin, a.name(), palisade_auth::Resource::Registry);
            assert!(d.allowed && d.errors.is_empty(), "{a:?}: {d:?}");
        }
    }
}
