//! The vendored definitions load whole: every construct understood, every name they refer to
//! defined, and the operations the migration needs present with their headers.

use super::*;
use crate::xml::TYPES;

/// The operations mailshift's EWS client uses (issue 14).
const MIGRATION_OPERATIONS: [&str; 9] = [
    "GetFolder",
    "FindFolder",
    "SyncFolderItems",
    "GetItem",
    "CreateItem",
    "UpdateItem",
    "DeleteItem",
    "GetInboxRules",
    "UpdateInboxRules",
];

#[test]
fn every_construct_of_the_vendored_files_is_understood() {
    let schema = Schema::load().expect("the vendored files load");
    assert_eq!(schema.unsupported, Vec::<String>::new());
}

#[test]
fn the_migration_s_operations_are_in_the_wsdl_with_their_headers() {
    let schema = published();
    let names: Vec<&str> = schema
        .operations
        .values()
        .map(|o| o.name.as_str())
        .collect();
    for op in MIGRATION_OPERATIONS.iter().chain(&["ResolveNames"]) {
        assert!(
            names.contains(op),
            "{op} missing from services.wsdl's operations"
        );
    }
    let create = &schema.operations[&Name::new(MESSAGES, "CreateItem")];
    assert_eq!(create.name, "CreateItem");
    assert!(
        create
            .headers
            .contains(&Name::new(TYPES, "RequestServerVersion")),
        "{:?}",
        create.headers
    );
    assert!(
        create
            .headers
            .contains(&Name::new(TYPES, "ExchangeImpersonation")),
        "{:?}",
        create.headers
    );
    assert_eq!(create.response, Name::new(MESSAGES, "CreateItemResponse"));
    assert_eq!(
        create.response_headers,
        vec![Name::new(TYPES, "ServerVersionInfo")]
    );
}

/// Every type, element, group and attribute group the files name is defined in them (or
/// is a built-in XSD type), so the checker never meets a name it cannot follow.
#[test]
fn every_name_the_files_refer_to_is_defined() {
    let schema = published();
    let mut undefined = Vec::new();
    let ty_ok = |n: &Name| n.ns == XSD || schema.types.contains_key(n);
    fn walk(
        schema: &Schema,
        p: &Particle,
        undefined: &mut Vec<String>,
        ty_ok: &dyn Fn(&Name) -> bool,
    ) {
        match &p.term {
            Term::Element { name, ty } if !ty_ok(ty) => {
                undefined.push(format!("type {ty} of element {name}"))
            }
            Term::Element { .. } | Term::Any => {}
            Term::Ref(r) if !schema.elements.contains_key(r) => {
                undefined.push(format!("element {r}"))
            }
            Term::Ref(_) => {}
            Term::Group(g) if !schema.groups.contains_key(g) => {
                undefined.push(format!("group {g}"))
            }
            Term::Group(_) => {}
            Term::Sequence(ps) | Term::Choice(ps) | Term::All(ps) => {
                ps.iter().for_each(|q| walk(schema, q, undefined, ty_ok))
            }
        }
    }
    for (name, g) in &schema.elements {
        if !ty_ok(&g.ty) {
            undefined.push(format!("type {} of element {name}", g.ty));
        }
    }
    for head in schema.substitutes.keys() {
        if !schema.elements.contains_key(head) {
            undefined.push(format!("substitution group head {head}"));
        }
    }
    for p in schema.groups.values() {
        walk(schema, p, &mut undefined, &ty_ok);
    }
    for (name, t) in &schema.types {
        match t {
            Type::Complex(c) => {
                if let Some((base, _)) = &c.base
                    && !ty_ok(base)
                {
                    undefined.push(format!("base {base} of {name}"));
                }
                for a in &c.attrs {
                    if !ty_ok(&a.ty) {
                        undefined.push(format!("type {} of attribute {} of {name}", a.ty, a.name));
                    }
                }
                for g in &c.attr_groups {
                    if !schema.attr_groups.contains_key(g) {
                        undefined.push(format!("attribute group {g} of {name}"));
                    }
                }
                if let Some(p) = &c.particle {
                    walk(schema, p, &mut undefined, &ty_ok);
                }
            }
            Type::Simple(s) => {
                for n in s.base.iter().chain(&s.list_item) {
                    if !ty_ok(n) {
                        undefined.push(format!("{n} in {name}"));
                    }
                }
            }
        }
    }
    for op in schema.operations.values() {
        for el in std::iter::once(&op.body).chain(&op.headers) {
            if !schema.elements.contains_key(el) {
                undefined.push(format!("element {el} of operation {}", op.name));
            }
        }
    }
    undefined.sort();
    assert_eq!(undefined, Vec::<String>::new());
}
