//! The GitHub double's GraphQL front door: parses an operation and checks it
//! against GitHub's schema the way GitHub's server does, before anything is
//! executed. Only the part of the schema the double answers is described here
//! (from `@octokit/graphql-schema`, which publishes GitHub's schema): the
//! `enablePullRequestAutoMerge` mutation, its input object, and the payload
//! types a selection may walk. Errors use GitHub's wording and shape (HTTP
//! 200, an `errors` array, no `data` for validation failures).

use serde_json::{Map, Value, json};

/// A GraphQL type reference: `Name`, `Name!`, `[Name]`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRef {
    Named(String),
    NonNull(Box<TypeRef>),
    List(Box<TypeRef>),
}

impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named(n) => write!(f, "{n}"),
            Self::NonNull(t) => write!(f, "{t}!"),
            Self::List(t) => write!(f, "[{t}]"),
        }
    }
}

impl TypeRef {
    fn parse(text: &str) -> Self {
        match text.strip_suffix('!') {
            Some(inner) => Self::NonNull(Box::new(Self::parse(inner))),
            None => match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                Some(inner) => Self::List(Box::new(Self::parse(inner))),
                None => Self::Named(text.to_string()),
            },
        }
    }

    fn nullable(&self) -> &TypeRef {
        match self {
            Self::NonNull(inner) => inner,
            other => other,
        }
    }
}

/// An argument or input-object value as written in the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Variable(String),
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Enum(String),
    List(Vec<Literal>),
    Object(Vec<(String, Literal)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub arguments: Vec<(String, Literal)>,
    pub selections: Vec<Field>,
}

impl Field {
    fn response_key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// `query` or `mutation`.
    pub kind: String,
    pub name: Option<String>,
    pub variables: Vec<(String, TypeRef)>,
    pub selections: Vec<Field>,
}

// ------------------------------------------------------------------ schema

/// Fields of the output types a selection may reach: (field, type).
fn object_fields(type_name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match type_name {
        "Mutation" => &[(
            "enablePullRequestAutoMerge",
            "EnablePullRequestAutoMergePayload",
        )],
        "EnablePullRequestAutoMergePayload" => &[
            ("actor", "Actor"),
            ("clientMutationId", "String"),
            ("pullRequest", "PullRequest"),
        ],
        "PullRequest" => &[
            ("autoMergeRequest", "AutoMergeRequest"),
            ("baseRefName", "String!"),
            ("headRefName", "String!"),
            ("headRefOid", "GitObjectID!"),
            ("id", "ID!"),
            ("isDraft", "Boolean!"),
            ("merged", "Boolean!"),
            ("number", "Int!"),
            ("state", "PullRequestState!"),
            ("title", "String!"),
            ("url", "URI!"),
        ],
        "AutoMergeRequest" => &[
            ("authorEmail", "String"),
            ("commitBody", "String"),
            ("commitHeadline", "String"),
            ("enabledAt", "DateTime"),
            ("enabledBy", "Actor"),
            ("mergeMethod", "PullRequestMergeMethod!"),
            ("pullRequest", "PullRequest!"),
        ],
        "Actor" => &[
            ("avatarUrl", "URI!"),
            ("login", "String!"),
            ("resourcePath", "URI!"),
            ("url", "URI!"),
        ],
        _ => return None,
    })
}

/// Arguments of a field: (argument, type).
fn field_arguments(type_name: &str, field: &str) -> &'static [(&'static str, &'static str)] {
    match (type_name, field) {
        ("Mutation", "enablePullRequestAutoMerge") => {
            &[("input", "EnablePullRequestAutoMergeInput!")]
        }
        _ => &[],
    }
}

/// Fields of input objects: (field, type).
fn input_fields(type_name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match type_name {
        "EnablePullRequestAutoMergeInput" => &[
            ("authorEmail", "String"),
            ("clientMutationId", "String"),
            ("commitBody", "String"),
            ("commitHeadline", "String"),
            ("expectedHeadOid", "GitObjectID"),
            ("mergeMethod", "PullRequestMergeMethod"),
            ("pullRequestId", "ID!"),
        ],
        _ => return None,
    })
}

fn enum_values(type_name: &str) -> Option<&'static [&'static str]> {
    Some(match type_name {
        "PullRequestMergeMethod" => &["MERGE", "SQUASH", "REBASE"],
        "PullRequestState" => &["OPEN", "CLOSED", "MERGED"],
        _ => return None,
    })
}

fn is_scalar(type_name: &str) -> bool {
    matches!(
        type_name,
        "String" | "ID" | "Int" | "Float" | "Boolean" | "GitObjectID" | "DateTime" | "URI"
    ) || enum_values(type_name).is_some()
}

fn named(type_text: &str) -> String {
    type_text
        .trim_end_matches('!')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('!')
        .to_string()
}

// ------------------------------------------------------------------ parsing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Punct(char),
    Name(String),
    Str(String),
    Int(i64),
    Float(f64),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            // Commas are insignificant in GraphQL, like white space.
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' | '}' | '(' | ')' | ':' | '$' | '!' | '[' | ']' | '=' | '@' => {
                out.push(Token::Punct(c));
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("Parse error on unterminated string".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let escaped = chars.get(i + 1).copied().unwrap_or('\\');
                            s.push(match escaped {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                            i += 2;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || ".eE+-".contains(chars[i])) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(match text.parse::<i64>() {
                    Ok(n) => Token::Int(n),
                    Err(_) => Token::Float(
                        text.parse()
                            .map_err(|_| format!("Parse error on \"{text}\" (number)"))?,
                    ),
                });
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Token::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("Parse error on \"{other}\"")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, String> {
        let t = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("Parse error on end of document")?;
        self.at += 1;
        Ok(t)
    }

    fn punct(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Token::Punct(p) if p == c => Ok(()),
            other => Err(format!("Parse error on {other:?}, expected \"{c}\"")),
        }
    }

    fn at_punct(&self, c: char) -> bool {
        self.peek() == Some(&Token::Punct(c))
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Name(n) => Ok(n),
            other => Err(format!("Parse error on {other:?}, expected a name")),
        }
    }

    fn operation(&mut self) -> Result<Operation, String> {
        let (kind, name, variables) = if self.at_punct('{') {
            ("query".to_string(), None, Vec::new())
        } else {
            let kind = self.name()?;
            if kind != "query" && kind != "mutation" && kind != "subscription" {
                return Err(format!("Parse error on \"{kind}\" (IDENTIFIER)"));
            }
            let name = match self.peek() {
                Some(Token::Name(_)) => Some(self.name()?),
                _ => None,
            };
            let mut variables = Vec::new();
            if self.at_punct('(') {
                self.punct('(')?;
                while !self.at_punct(')') {
                    self.punct('$')?;
                    let var = self.name()?;
                    self.punct(':')?;
                    let ty = self.type_ref()?;
                    if self.at_punct('=') {
                        self.punct('=')?;
                        self.literal()?;
                    }
                    variables.push((var, ty));
                }
                self.punct(')')?;
            }
            (kind, name, variables)
        };
        let selections = self.selection_set()?;
        if self.peek().is_some() {
            return Err("the double answers documents with one operation".into());
        }
        Ok(Operation {
            kind,
            name,
            variables,
            selections,
        })
    }

    fn type_ref(&mut self) -> Result<TypeRef, String> {
        let inner = if self.at_punct('[') {
            self.punct('[')?;
            let t = self.type_ref()?;
            self.punct(']')?;
            TypeRef::List(Box::new(t))
        } else {
            TypeRef::Named(self.name()?)
        };
        if self.at_punct('!') {
            self.punct('!')?;
            return Ok(TypeRef::NonNull(Box::new(inner)));
        }
        Ok(inner)
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, String> {
        self.punct('{')?;
        let mut fields = Vec::new();
        while !self.at_punct('}') {
            let first = self.name()?;
            let (alias, name) = if self.at_punct(':') {
                self.punct(':')?;
                (Some(first), self.name()?)
            } else {
                (None, first)
            };
            let mut arguments = Vec::new();
            if self.at_punct('(') {
                self.punct('(')?;
                while !self.at_punct(')') {
                    let arg = self.name()?;
                    self.punct(':')?;
                    arguments.push((arg, self.literal()?));
                }
                self.punct(')')?;
            }
            let selections = if self.at_punct('{') {
                self.selection_set()?
            } else {
                Vec::new()
            };
            fields.push(Field {
                alias,
                name,
                arguments,
                selections,
            });
        }
        self.punct('}')?;
        if fields.is_empty() {
            return Err("Parse error on \"}\" (RCURLY): a selection set is empty".into());
        }
        Ok(fields)
    }

    fn literal(&mut self) -> Result<Literal, String> {
        Ok(match self.next()? {
            Token::Punct('$') => Literal::Variable(self.name()?),
            Token::Str(s) => Literal::String(s),
            Token::Int(n) => Literal::Int(n),
            Token::Float(n) => Literal::Float(n),
            Token::Name(n) => match n.as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                _ => Literal::Enum(n),
            },
            Token::Punct('[') => {
                let mut items = Vec::new();
                while !self.at_punct(']') {
                    items.push(self.literal()?);
                }
                self.punct(']')?;
                Literal::List(items)
            }
            Token::Punct('{') => {
                let mut fields = Vec::new();
                while !self.at_punct('}') {
                    let key = self.name()?;
                    self.punct(':')?;
                    fields.push((key, self.literal()?));
                }
                self.punct('}')?;
                Literal::Object(fields)
            }
            other => return Err(format!("Parse error on {other:?}")),
        })
    }
}

pub fn parse(query: &str) -> Result<Operation, String> {
    Parser {
        tokens: tokenize(query)?,
        at: 0,
    }
    .operation()
}

// ------------------------------------------------------------------ validation

/// A top-level mutation field, checked, with its `input` resolved to JSON.
#[derive(Debug, Clone)]
pub struct Call {
    pub field: Field,
    pub input: Map<String, Value>,
}

/// GitHub's GraphQL error answer.
pub fn errors(messages: &[String]) -> Value {
    json!({
        "errors": messages.iter().map(|m| json!({ "message": m, "locations": [{ "line": 1, "column": 1 }] })).collect::<Vec<_>>()
    })
}

struct Checker<'a> {
    op_label: String,
    declared: &'a [(String, TypeRef)],
    variables: &'a Map<String, Value>,
    used: Vec<String>,
    problems: Vec<String>,
}

impl Checker<'_> {
    /// Checks `value` against `expected` and resolves it to JSON.
    fn value(&mut self, value: &Literal, expected: &TypeRef, position: &str) -> Value {
        if let Literal::Variable(var) = value {
            self.used.push(var.clone());
            let Some((_, declared)) = self.declared.iter().find(|(n, _)| n == var) else {
                self.problems.push(format!(
                    "Variable ${var} is used by {} but not declared",
                    self.op_label
                ));
                return Value::Null;
            };
            let declared_named = named(&declared.to_string());
            let expected_named = named(&expected.to_string());
            if declared_named != expected_named {
                self.problems.push(format!(
                    "Type mismatch on variable ${var} and argument {position} ({declared} / {expected})"
                ));
            } else if matches!(expected, TypeRef::NonNull(_))
                && !matches!(declared, TypeRef::NonNull(_))
            {
                self.problems.push(format!(
                    "Nullability mismatch on variable ${var} and argument {position} ({declared} / {expected})"
                ));
            }
            return self.variables.get(var).cloned().unwrap_or(Value::Null);
        }
        let type_name = named(&expected.to_string());
        let bad = |this: &mut Self| {
            this.problems.push(format!(
                "Argument '{position}' has an invalid value ({}). Expected type '{expected}'.",
                literal_text(value)
            ));
            Value::Null
        };
        match value {
            Literal::Null if matches!(expected, TypeRef::NonNull(_)) => bad(self),
            Literal::Null => Value::Null,
            Literal::Object(fields) => match input_fields(&type_name) {
                Some(known) => {
                    let mut out = Map::new();
                    for (key, v) in fields {
                        match known.iter().find(|(k, _)| k == key) {
                            Some((_, ty)) => {
                                let resolved = self.value(v, &TypeRef::parse(ty), key);
                                out.insert(key.clone(), resolved);
                            }
                            None => self.problems.push(format!(
                                "InputObject '{type_name}' doesn't accept argument '{key}'"
                            )),
                        }
                    }
                    for (key, ty) in known {
                        if ty.ends_with('!') && !fields.iter().any(|(k, _)| k == key) {
                            self.problems.push(format!(
                                "Argument '{key}' on InputObject '{type_name}' is required. Expected type {ty}"
                            ));
                        }
                    }
                    Value::Object(out)
                }
                None => bad(self),
            },
            Literal::Enum(e) => match enum_values(&type_name) {
                Some(values) if values.contains(&e.as_str()) => Value::from(e.clone()),
                _ => bad(self),
            },
            Literal::String(s)
                if matches!(
                    type_name.as_str(),
                    "String" | "ID" | "GitObjectID" | "DateTime" | "URI"
                ) =>
            {
                Value::from(s.clone())
            }
            Literal::Int(n) if matches!(type_name.as_str(), "Int" | "Float" | "ID") => {
                Value::from(*n)
            }
            Literal::Bool(b) if type_name == "Boolean" => Value::from(*b),
            _ => bad(self),
        }
    }

    /// A variable's JSON value must fit its declared type.
    fn variable_value(&mut self, name: &str, ty: &TypeRef) {
        let value = self.variables.get(name).unwrap_or(&Value::Null);
        let fits = match (ty, value) {
            (TypeRef::NonNull(_), Value::Null) => false,
            (_, Value::Null) => true,
            (t, v) => {
                let type_name = named(&t.nullable().to_string());
                match enum_values(&type_name) {
                    Some(values) => v.as_str().is_some_and(|s| values.contains(&s)),
                    None => match type_name.as_str() {
                        "ID" => v.is_string() || v.is_i64(),
                        "GitObjectID" => v.as_str().is_some_and(|s| {
                            !s.is_empty()
                                && s.len() <= 40
                                && s.bytes().all(|b| b.is_ascii_hexdigit())
                        }),
                        "String" | "DateTime" | "URI" => v.is_string(),
                        "Int" => v.is_i64(),
                        "Boolean" => v.is_boolean(),
                        other => input_fields(other).is_some() && v.is_object(),
                    },
                }
            }
        };
        if !fits {
            self.problems.push(format!(
                "Variable ${name} of type {ty} was provided invalid value"
            ));
        }
    }

    fn selections(&mut self, fields: &[Field], type_name: &str) {
        let Some(known) = object_fields(type_name) else {
            return;
        };
        for field in fields {
            let Some((_, ty)) = known.iter().find(|(k, _)| *k == field.name) else {
                self.problems.push(format!(
                    "Field '{}' doesn't exist on type '{type_name}'",
                    field.name
                ));
                continue;
            };
            let field_type = named(ty);
            let args = field_arguments(type_name, &field.name);
            for (arg, value) in &field.arguments {
                match args.iter().find(|(a, _)| a == arg) {
                    Some((_, arg_ty)) => {
                        self.value(value, &TypeRef::parse(arg_ty), arg);
                    }
                    None => self.problems.push(format!(
                        "Field '{}' doesn't accept argument '{arg}'",
                        field.name
                    )),
                }
            }
            let missing: Vec<&str> = args
                .iter()
                .filter(|(a, t)| t.ends_with('!') && !field.arguments.iter().any(|(n, _)| n == a))
                .map(|(a, _)| *a)
                .collect();
            if !missing.is_empty() {
                self.problems.push(format!(
                    "Field '{}' is missing required arguments: {}",
                    field.name,
                    missing.join(", ")
                ));
            }
            if is_scalar(&field_type) {
                if !field.selections.is_empty() {
                    self.problems.push(format!(
                        "Selections can't be made on scalars (field '{}' returns {field_type} but has selections [{}])",
                        field.name,
                        field.selections.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            } else if field.selections.is_empty() {
                self.problems.push(format!(
                    "Field '{}' of type '{field_type}' must have a selection of subfields. Did you mean '{} {{ ... }}'?",
                    field.name, field.name
                ));
            } else {
                self.selections(&field.selections, &field_type);
            }
        }
    }
}

fn literal_text(value: &Literal) -> String {
    match value {
        Literal::Variable(v) => format!("${v}"),
        Literal::String(s) => format!("{s:?}"),
        Literal::Int(n) => n.to_string(),
        Literal::Float(n) => n.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => "null".into(),
        Literal::Enum(e) => e.clone(),
        Literal::List(_) => "[...]".into(),
        Literal::Object(_) => "{...}".into(),
    }
}

/// Parses and validates `query` with `variables` as GitHub would; on success
/// the mutation calls with their inputs resolved.
pub fn validate(query: &str, variables: &Value) -> Result<Vec<Call>, Vec<String>> {
    let op = parse(query).map_err(|e| vec![e])?;
    let empty = Map::new();
    let variables = variables.as_object().unwrap_or(&empty);
    let root = match op.kind.as_str() {
        "mutation" => "Mutation",
        "query" => "Query",
        _ => "Subscription",
    };
    let op_label = op
        .name
        .clone()
        .unwrap_or_else(|| format!("anonymous {}", op.kind));
    let mut checker = Checker {
        op_label: op_label.clone(),
        declared: &op.variables,
        variables,
        used: Vec::new(),
        problems: Vec::new(),
    };
    if root != "Mutation" {
        // The double serves no queries; name the field as GitHub would.
        for field in &op.selections {
            if field.name == "enablePullRequestAutoMerge" {
                checker.problems.push(format!(
                    "Field '{}' doesn't exist on type '{root}'",
                    field.name
                ));
            } else {
                checker.problems.push(format!(
                    "the double answers only the enablePullRequestAutoMerge mutation, not {} {}",
                    op.kind, field.name
                ));
            }
        }
        return Err(checker.problems);
    }
    checker.selections(&op.selections, "Mutation");
    let mut calls = Vec::new();
    for field in &op.selections {
        if object_fields("Mutation")
            .unwrap_or(&[])
            .iter()
            .all(|(k, _)| *k != field.name)
        {
            continue;
        }
        let input = field
            .arguments
            .iter()
            .find(|(a, _)| a == "input")
            .map(|(_, v)| {
                checker.value(
                    v,
                    &TypeRef::parse("EnablePullRequestAutoMergeInput!"),
                    "input",
                )
            })
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        calls.push(Call {
            field: field.clone(),
            input,
        });
    }
    for (name, ty) in &op.variables {
        if !checker.used.contains(name) {
            checker.problems.push(format!(
                "Variable ${name} is declared by {op_label} but not used"
            ));
        }
        checker.variable_value(name, ty);
    }
    checker.problems.dedup();
    if checker.problems.is_empty() {
        Ok(calls)
    } else {
        Err(checker.problems)
    }
}

/// `value` cut down to what `selections` ask for, under their aliases.
pub fn project(value: &Value, selections: &[Field]) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| project(v, selections)).collect()),
        Value::Object(map) if !selections.is_empty() => {
            let mut out = Map::new();
            for field in selections {
                let v = map.get(&field.name).cloned().unwrap_or(Value::Null);
                out.insert(
                    field.response_key().to_string(),
                    project(&v, &field.selections),
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}
