//! Authorization: the RBAC matrix through the built-in Cedar policies, model-scoped roles,
//! operator policies (a `forbid` overrides), and policies that do not validate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use palisade_auth::{Method, Policy, Principal, Resource};

const ACTIONS: [&str; 7] = [
    "read",
    "create-model",
    "push",
    "promote",
    "read-audit",
    "manage-keys",
    "manage-gates",
];

fn who(roles: &[&str]) -> Principal {
    Principal {
        id: "pk_0123456789abcdef".into(),
        subject: "alice".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        method: Method::ApiKey,
    }
}

/// Every role × every action, global and scoped to a model.
#[test]
fn rbac_matrix() {
    let policy = Policy::builtin().unwrap();
    let table: [(&str, [bool; 7]); 6] = [
        ("reader", [true, false, false, false, false, false, false]),
        ("publisher", [true, true, true, false, false, false, false]),
        ("approver", [true, false, false, true, false, false, false]),
        ("admin", [true; 7]),
        ("nobody", [false; 7]),
        ("Admin", [false; 7]),
    ];
    for (role, expected) in table {
        for (action, want) in ACTIONS.into_iter().zip(expected) {
            let d = policy.decide(&who(&[role]), action, Resource::Model("m"));
            assert_eq!(d.allowed, want, "{role} {action} on m: {d:?}");
            assert!(d.errors.is_empty(), "{d:?}");
            assert_eq!(
                policy.decide(&who(&[role]), action, Resource::Registry).allowed,
                want,
                "{role} {action} on the registry"
            );
            let scoped = format!("{role}:m");
            assert_eq!(
                policy.decide(&who(&[&scoped]), action, Resource::Model("m")).allowed,
                want,
                "{scoped} {action} on m"
            );
            assert!(
                !policy
                    .decide(&who(&[&scoped]), action, Resource::Model("other"))
                    .allowed,
                "{scoped} {action} on other"
            );
            assert!(
                !policy.decide(&who(&[&scoped]), action, Resource::Registry).allowed,
                "{scoped} {action} on the registry"
            );
        }
    }
    assert!(
        !policy.decide(&who(&[]), "read", Resource::Registry).allowed,
        "no roles, no access"
    );
    assert!(
        !policy
            .decide(&who(&["admin"]), "delete-everything", Resource::Registry)
            .allowed,
        "unknown action"
    );
}

#[test]
fn decisions_name_the_policies_that_made_them() {
    let policy = Policy::builtin().unwrap();
    let d = policy.decide(&who(&["publisher"]), "push", Resource::Model("m"));
    assert!(d.allowed);
    assert_eq!(d.policies, ["builtin:publish"]);
    let d = policy.decide(&who(&["reader"]), "push", Resource::Model("m"));
    assert!(!d.allowed);
    assert!(d.policies.is_empty(), "default deny names no policy");
}

#[test]
fn operator_policies_extend_and_forbid_overrides() {
    let extra = r#"
        // Nobody promotes the payments model through an API key; humans use SSO.
        @id("payments-sso-only")
        forbid (principal, action == Palisade::Action::"promote", resource == Palisade::Model::"payments")
        when { principal.method == "api-key" };

        // Auditors read the audit log.
        @id("auditors")
        permit (principal, action == Palisade::Action::"read-audit", resource)
        when { context.roles.contains("auditor") };
    "#;
    let policy = Policy::with_sources(&[("ops.cedar".into(), extra.into())]).unwrap();
    assert_eq!(policy.len(), Policy::builtin().unwrap().len() + 2);
    let d = policy.decide(&who(&["admin"]), "promote", Resource::Model("payments"));
    assert!(!d.allowed, "forbid beats the admin permit");
    assert_eq!(d.policies, ["ops.cedar:payments-sso-only"]);
    assert!(
        policy
            .decide(&who(&["admin"]), "promote", Resource::Model("fraud"))
            .allowed
    );
    let mut sso = who(&["approver"]);
    sso.method = Method::Jwt;
    assert!(policy.decide(&sso, "promote", Resource::Model("payments")).allowed);
    assert!(
        policy
            .decide(&who(&["auditor"]), "read-audit", Resource::Registry)
            .allowed
    );
    assert!(!policy.decide(&who(&["auditor"]), "read", Resource::Registry).allowed);
}

#[test]
fn invalid_policies_are_errors_at_load() {
    for (name, text) in [
        ("syntax", "permit (principal, action, resource"),
        (
            "misspelt action",
            r#"permit (principal, action == Palisade::Action::"pushh", resource);"#,
        ),
        (
            "unknown attribute",
            r#"permit (principal, action, resource) when { principal.team == "x" };"#,
        ),
        (
            "type error",
            r#"permit (principal, action, resource) when { context.roles == "admin" };"#,
        ),
        ("template", "permit (principal == ?principal, action, resource);"),
    ] {
        let err = Policy::with_sources(&[("ops.cedar".into(), text.into())]);
        assert!(err.is_err(), "{name} accepted");
        let msg = err.err().unwrap().to_string();
        assert!(msg.contains("ops.cedar"), "{name}: the message names the file: {msg}");
    }
}

#[test]
fn gateway_roles_call_deploy_and_watch() {
    let policy = Policy::builtin().unwrap();
    let table: &[(&[&str], &str, Option<&str>, bool)] = &[
        (&["invoker"], "infer", Some("iris"), true),
        (&["invoker:iris"], "infer", Some("iris"), true),
        (&["invoker:iris"], "infer", Some("chat"), false),
        (&["reader"], "infer", Some("iris"), false),
        (&["publisher"], "infer", Some("iris"), false),
        (&["invoker"], "deploy", Some("iris"), false),
        (&["approver"], "deploy", Some("iris"), true),
        (&["approver:chat"], "deploy", Some("iris"), false),
        (&["monitor"], "read-metrics", None, true),
        (&["invoker"], "read-metrics", None, false),
        (&["admin"], "deploy", Some("iris"), true),
        // A team membership is not a role, even where it names a model.
        (&["team:iris"], "infer", Some("iris"), false),
        (&["team:invoker"], "infer", Some("invoker"), false),
    ];
    for (roles, action, model, want) in table {
        let resource = model.map_or(Resource::Registry, Resource::Model);
        let d = policy.decide(&who(roles), action, resource);
        assert_eq!(d.allowed, *want, "{roles:?} {action} {model:?}: {d:?}");
    }
}
