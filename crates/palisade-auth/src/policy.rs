//! Deny-by-default authorization with Cedar (the `cedar-policy` crate): the built-in role
//! policies (`builtin.cedar`) plus any the operator adds, validated against
//! `schema.cedarschema`.
//!
//! A request is: principal `Palisade::User::"<id>"` (attributes `subject`, `method`), an
//! action `Palisade::Action::"<name>"`, a resource (`Palisade::Model::"<name>"` or
//! `Palisade::Registry::"registry"` for actions on no one model), and a context whose
//! `roles` are the caller's roles that apply to that resource.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr as _;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::Principal;

/// The built-in policies.
pub const BUILTIN: &str = include_str!("builtin.cedar");
/// The schema every policy is validated against.
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// What a request is about.
#[derive(Clone, Copy, Debug)]
pub enum Resource<'a> {
    /// The registry as a whole (listing models, audit, keys).
    Registry,
    Model(&'a str),
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{source_name}: {message}")]
    Invalid { source_name: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The outcome of one authorization question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The `@id`s (or generated ids) of the policies that decided: the permits that
    /// allowed, or the forbids that denied. Empty when nothing applied (default deny).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (they are skipped, which can only deny).
    pub errors: Vec<String>,
}

pub struct Policy {
    set: PolicySet,
    authorizer: Authorizer,
    user_type: EntityTypeName,
    model_type: EntityTypeName,
    registry: EntityUid,
    /// One parsed uid per action name (the action set is fixed by the schema).
    actions: HashMap<String, EntityUid>,
}

fn invalid(source_name: &str, message: impl std::fmt::Display) -> PolicyError {
    PolicyError::Invalid {
        source_name: source_name.to_owned(),
        message: message.to_string(),
    }
}

impl Policy {
    /// The built-in role policies alone.
    pub fn builtin() -> Result<Self, PolicyError> {
        Self::with_sources(&[])
    }

    /// The built-in policies plus each `(name, text)` source, all validated.
    pub fn with_sources(extra: &[(String, String)]) -> Result<Self, PolicyError> {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).map_err(|e| invalid("schema", e))?;
        let mut set = PolicySet::new();
        let builtin = ("builtin".to_owned(), BUILTIN.to_owned());
        for (name, text) in std::iter::once(&builtin).chain(extra) {
            let parsed = PolicySet::from_str(text).map_err(|e| invalid(name, format!("{e:?}")))?;
            if parsed.templates().next().is_some() {
                return Err(invalid(name, "policy templates are not supported"));
            }
            for (i, p) in parsed.policies().enumerate() {
                let label = p.annotation("id").map_or_else(|| format!("{i}"), str::to_owned);
                let id = PolicyId::new(format!("{name}:{label}"));
                set.add(p.new_id(id)).map_err(|e| invalid(name, e))?;
            }
        }
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        if !result.validation_passed() {
            let msgs: Vec<String> = result
                .validation_errors()
                .map(|e| format!("policy {}: {e}", e.policy_id()))
                .collect();
            return Err(invalid("policies", msgs.join("; ")));
        }
        let ty = |s: &str| EntityTypeName::from_str(s).map_err(|e| invalid("schema", e));
        let user_type = ty("Palisade::User")?;
        let model_type = ty("Palisade::Model")?;
        let registry = EntityUid::from_type_name_and_id(ty("Palisade::Registry")?, EntityId::new("registry"));
        let action_type = ty("Palisade::Action")?;
        let actions = schema
            .actions()
            .map(|a| {
                let name = a.id().unescaped().to_owned();
                (
                    name.clone(),
                    EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(name)),
                )
            })
            .collect();
        Ok(Policy {
            set,
            authorizer: Authorizer::new(),
            user_type,
            model_type,
            registry,
            actions,
        })
    }

    /// The built-in policies plus the policies in these files.
    pub fn load(files: &[impl AsRef<Path>]) -> Result<Self, PolicyError> {
        let mut sources = Vec::new();
        for f in files {
            let path = f.as_ref();
            let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            sources.push((path.display().to_string(), text));
        }
        Self::with_sources(&sources)
    }

    /// The number of policies in force.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `p` may take `action` on `resource`. Unknown actions are denied.
    pub fn decide(&self, p: &Principal, action: &str, resource: Resource<'_>) -> Decision {
        match self.try_decide(p, action, resource) {
            Ok(d) => d,
            Err(e) => Decision {
                allowed: false,
                policies: Vec::new(),
                errors: vec![e],
            },
        }
    }

    fn try_decide(&self, p: &Principal, action: &str, resource: Resource<'_>) -> Result<Decision, String> {
        let action = self
            .actions
            .get(action)
            .ok_or_else(|| format!("unknown action `{action}`"))?
            .clone();
        let model = match resource {
            Resource::Registry => None,
            Resource::Model(m) => Some(m),
        };
        // `team:<name>` entries are memberships (rate-limit scopes), not roles.
        let roles: HashSet<&str> = p
            .roles
            .iter()
            .filter(|r| !r.starts_with("team:"))
            .filter_map(|r| match r.split_once(':') {
                None => Some(r.as_str()),
                Some((role, scope)) => (Some(scope) == model).then_some(role),
            })
            .collect();
        let user = EntityUid::from_type_name_and_id(self.user_type.clone(), EntityId::new(&p.id));
        let method = match p.method {
            crate::Method::ApiKey => "api-key",
            crate::Method::Jwt => "jwt",
        };
        let user_entity = Entity::new(
            user.clone(),
            HashMap::from([
                (
                    "subject".to_owned(),
                    RestrictedExpression::new_string(p.subject.clone()),
                ),
                ("method".to_owned(), RestrictedExpression::new_string(method.to_owned())),
            ]),
            HashSet::new(),
        )
        .map_err(|e| e.to_string())?;
        let (resource_uid, resource_entity) = match model {
            None => (
                self.registry.clone(),
                Entity::new_no_attrs(self.registry.clone(), HashSet::new()),
            ),
            Some(m) => {
                let uid = EntityUid::from_type_name_and_id(self.model_type.clone(), EntityId::new(m));
                let e = Entity::new(
                    uid.clone(),
                    HashMap::from([("name".to_owned(), RestrictedExpression::new_string(m.to_owned()))]),
                    HashSet::new(),
                )
                .map_err(|e| e.to_string())?;
                (uid, e)
            }
        };
        let entities = Entities::from_entities([user_entity, resource_entity], None).map_err(|e| e.to_string())?;
        let context = Context::from_pairs([(
            "roles".to_owned(),
            RestrictedExpression::new_set(
                roles
                    .into_iter()
                    .map(|r| RestrictedExpression::new_string(r.to_owned())),
            ),
        )])
        .map_err(|e| e.to_string())?;
        let request = Request::new(user, action, resource_uid, context, None).map_err(|e| e.to_string())?;
        let response = self.authorizer.is_authorized(&request, &self.set, &entities);
        Ok(Decision {
            allowed: response.decision() == cedar_policy::Decision::Allow,
            policies: response.diagnostics().reason().map(|id| id.to_string()).collect(),
            errors: response.diagnostics().errors().map(|e| e.to_string()).collect(),
        })
    }
}
