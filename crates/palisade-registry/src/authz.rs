//! Authorisation, deny by default. A principal's roles are `admin`, `reader`, `publisher`,
//! `approver`, optionally scoped to one model as `role:model-name`; an action is allowed
//! only when some role grants it (for a model-scoped action, a global role or a role scoped
//! to that model).
//!
//! | action | reader | publisher | approver | admin |
//! |---|---|---|---|---|
//! | read (models, versions, blobs, checkpoints, proofs) | ✓ | ✓ | ✓ | ✓ |
//! | create-model, push (blobs, versions, tags) | | ✓ | | ✓ |
//! | promote (set or remove an alias) | | | ✓ | ✓ |
//! | read-audit (the events themselves) | | | | ✓ |
//! | manage-keys (create and revoke API keys) | | | | ✓ |
//! | manage-gates (set promotion gates) | | | | ✓ |

use crate::meta::Principal;

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
    pub const ALL: [Action; 6] = [
        Action::Read,
        Action::CreateModel,
        Action::Push,
        Action::Promote,
        Action::ReadAudit,
        Action::ManageKeys,
    ];

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

/// The actions a role grants.
fn grants(role: &str, action: Action) -> bool {
    match role {
        "admin" => true,
        "reader" => action == Action::Read,
        "publisher" => matches!(action, Action::Read | Action::CreateModel | Action::Push),
        "approver" => matches!(action, Action::Read | Action::Promote),
        _ => false,
    }
}

/// Whether `p` may do `action`, on `model` when the action concerns one.
pub fn allowed(p: &Principal, action: Action, model: Option<&str>) -> bool {
    p.roles.iter().any(|r| match r.split_once(':') {
        None => grants(r, action),
        Some((role, scope)) => model == Some(scope) && grants(role, action),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(roles: &[&str]) -> Principal {
        Principal {
            key_id: "k".into(),
            subject: "s".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// Every role × every action, global and model-scoped.
    #[test]
    fn rbac_matrix() {
        let table: [(&str, [bool; 7]); 5] = [
            ("reader", [true, false, false, false, false, false, false]),
            ("publisher", [true, true, true, false, false, false, false]),
            ("approver", [true, false, false, true, false, false, false]),
            ("admin", [true; 7]),
            ("nobody", [false; 7]),
        ];
        for (role, expected) in table {
            for (action, want) in Action::ALL.into_iter().zip(expected) {
                assert_eq!(allowed(&p(&[role]), action, Some("m")), want, "{role} {action:?}");
                let scoped = format!("{role}:m");
                assert_eq!(
                    allowed(&p(&[&scoped]), action, Some("m")),
                    want,
                    "{scoped} {action:?} on m"
                );
                assert!(
                    !allowed(&p(&[&scoped]), action, Some("other")),
                    "{scoped} {action:?} on other"
                );
                assert!(!allowed(&p(&[&scoped]), action, None), "{scoped} {action:?} unscoped");
            }
        }
        assert!(!allowed(&p(&[]), Action::Read, None), "no roles, no access");
    }
}
