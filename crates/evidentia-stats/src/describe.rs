//! What the web form of an analysis asks for, how a form or query string becomes an
//! [`Analysis`], and the flags that give it on the command line — all read from the clap
//! description of [`Analysis`] (the `cli` feature), so that nothing here names an analysis or
//! one of its parameters. A field's label is its help text; how it is asked for follows from its
//! value name (`COLUMN`, `COLUMNS`), its possible values (a choice) or neither (text).

use std::sync::OnceLock;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, FromArgMatches, Subcommand};
use serde_json::Value;

use crate::analysis::Analysis;

/// How a form asks for a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One column of the dataset, required.
    Column,
    /// One column of the dataset, or none.
    OptionalColumn,
    /// Several columns of the dataset.
    Columns,
    /// One of a fixed list of values.
    Choice,
    /// Free text (a value, a number).
    Text,
}

/// One parameter of an analysis's form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The form field's name: the flag without `--`, `_` for `-` (`test_cutoff`).
    pub name: String,
    pub label: String,
    pub input: Input,
    /// The values of a [`Input::Choice`].
    pub choices: Vec<String>,
    /// The value taken when none is given.
    pub default: Option<String>,
}

/// One analysis's form: its name (`evidentia stats <name>`), what it does, its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub name: String,
    pub about: String,
    pub fields: Vec<Field>,
}

/// A parameter that does not give an analysis: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ParamError {
    pub field: String,
    pub message: String,
}

fn command() -> Command {
    Analysis::augment_subcommands(Command::new("stats").no_binary_name(true))
}

/// Every analysis's form, in the order of [`Analysis`].
pub fn forms() -> &'static [Form] {
    static FORMS: OnceLock<Vec<Form>> = OnceLock::new();
    FORMS.get_or_init(|| command().get_subcommands().map(form_of).collect())
}

/// The form of the analysis called `name`.
pub fn form(name: &str) -> Option<&'static Form> {
    forms().iter().find(|f| f.name == name)
}

fn form_of(cmd: &Command) -> Form {
    let fields = cmd
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| {
            let value_name = a.get_value_names().and_then(|v| v.first()).map(|v| v.as_str()).unwrap_or("");
            let choices: Vec<String> = a.get_possible_values().iter().map(|p| p.get_name().to_string()).collect();
            let input = match value_name {
                _ if !choices.is_empty() => Input::Choice,
                "COLUMNS" => Input::Columns,
                "COLUMN" if a.is_required_set() => Input::Column,
                "COLUMN" => Input::OptionalColumn,
                _ => Input::Text,
            };
            Field {
                name: a.get_id().as_str().to_string(),
                label: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                input,
                choices,
                default: a.get_default_values().first().map(|d| d.to_string_lossy().into_owned()),
            }
        })
        .collect();
    Form { name: cmd.get_name().to_string(), about: cmd.get_about().map(|h| h.to_string()).unwrap_or_default(), fields }
}

impl Analysis {
    /// The analysis called `name` with these parameters (form field names); blank values are
    /// none, parameters the analysis does not take are ignored. A missing or malformed parameter
    /// is named.
    pub fn from_params(name: &str, params: &[(String, String)]) -> Result<Analysis, ParamError> {
        let form = form(name)
            .ok_or_else(|| ParamError { field: "analysis".into(), message: format!("'{name}' is not an analysis") })?;
        let mut argv = vec![name.to_string()];
        for f in &form.fields {
            for (_, v) in params.iter().filter(|(k, v)| *k == f.name && !v.trim().is_empty()) {
                // `--flag=value`, so that a value starting with '-' is not taken for a flag.
                argv.push(format!("--{}={}", f.name.replace('_', "-"), v.trim()));
            }
        }
        let matches = command().try_get_matches_from(argv).map_err(param_error)?;
        Analysis::from_arg_matches(&matches).map_err(param_error)
    }

    /// The flags that give this analysis on the command line (after `--input FILE`), in the
    /// order of its form, as `[flag, value, flag, value, …]`; values equal to the default, and
    /// empty lists, are left out.
    pub fn cli_args(&self) -> Vec<String> {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut args = Vec::new();
        for f in form(self.name()).map(|f| f.fields.as_slice()).unwrap_or_default() {
            let text = match value.get(&f.name) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                // As Rust prints an f64 (`1`, not `1.0`), which is what the flag parses back.
                Some(Value::Number(n)) => n.as_f64().map(|x| x.to_string()).unwrap_or_else(|| n.to_string()),
                Some(Value::Array(items)) if items.is_empty() => continue,
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                Some(other) => other.to_string(),
            };
            if f.default.as_deref() != Some(text.as_str()) {
                args.push(format!("--{}", f.name.replace('_', "-")));
                args.push(text);
            }
        }
        args
    }
}

/// A clap error as the parameter it is about and a message a person can act on.
fn param_error(e: clap::Error) -> ParamError {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let field = arg.trim_start_matches("--").split([' ', '=']).next().unwrap_or("").replace('-', "_");
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let message = match e.kind() {
        ErrorKind::MissingRequiredArgument if arg.contains("COLUMNS") => "choose one or more columns".to_string(),
        ErrorKind::MissingRequiredArgument if arg.contains("COLUMN") => "choose a column".to_string(),
        ErrorKind::MissingRequiredArgument => "required".to_string(),
        ErrorKind::InvalidValue => match e.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => format!("'{value}': one of {}", valid.join(", ")),
            _ => format!("'{value}' is not allowed here"),
        },
        ErrorKind::ValueValidation => match std::error::Error::source(&e) {
            Some(s) if s.is::<std::num::ParseFloatError>() => format!("'{value}' is not a number"),
            Some(s) => s.to_string(),
            None => format!("'{value}' is not allowed here"),
        },
        kind => kind.to_string(),
    };
    ParamError { field, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreement::Weights;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_analysis_has_a_form_with_labels() {
        let names: Vec<&str> = forms().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        assert!(names.contains(&"roc-compare") && names.contains(&"paired-agreement"));
        for f in forms() {
            assert!(!f.about.is_empty(), "{}", f.name);
            assert!(f.fields.iter().all(|x| !x.label.is_empty()), "{f:?}");
        }
        let kappa = form("kappa").unwrap();
        let inputs: Vec<(&str, Input)> = kappa.fields.iter().map(|f| (f.name.as_str(), f.input)).collect();
        assert_eq!(
            inputs,
            [("a", Input::Column), ("b", Input::Column), ("weights", Input::Choice), ("categories", Input::Text)]
        );
        assert_eq!(kappa.fields[2].choices, ["none", "linear", "quadratic"]);
        let survival = form("survival").unwrap();
        assert_eq!(survival.fields[2].input, Input::OptionalColumn);
        assert_eq!(survival.fields[3].input, Input::Text);
        assert_eq!(form("fleiss").unwrap().fields[0].input, Input::Columns);
    }

    #[test]
    fn parameters_give_the_analysis_and_its_flags_give_them_back() {
        let a = Analysis::from_params(
            "diagnostic",
            &params(&[
                ("test", "ai"),
                ("reference", "ref"),
                ("positive", "-1"),
                ("test_cutoff", "0.5"),
                ("a", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(
            a,
            Analysis::Diagnostic {
                test: "ai".into(),
                reference: "ref".into(),
                positive: Some("-1".into()),
                test_cutoff: Some(0.5),
                reference_cutoff: None
            }
        );
        assert_eq!(a.cli_args(), ["--test", "ai", "--reference", "ref", "--positive", "-1", "--test-cutoff", "0.5"]);
        let k = Analysis::from_params("kappa", &params(&[("a", "x"), ("b", "y"), ("weights", "none")])).unwrap();
        assert_eq!(k, Analysis::Kappa { a: "x".into(), b: "y".into(), weights: Weights::None, categories: vec![] });
        assert_eq!(k.cli_args(), ["--a", "x", "--b", "y"], "the default weights are left out");
        let t = Analysis::from_params("table1", &params(&[("group", "site"), ("categorical", "sex, stage")])).unwrap();
        assert_eq!(t.cli_args(), ["--group", "site", "--categorical", "sex,stage"]);
        let c =
            Analysis::from_params("diagnostic", &params(&[("test", "a"), ("reference", "b"), ("test_cutoff", "2")]));
        assert_eq!(c.unwrap().cli_args()[5], "2", "an integral cut-off prints as the flag reads it");
        for f in forms() {
            // Every analysis's flags, parsed back, give the same analysis.
            let given: Vec<(String, String)> = f
                .fields
                .iter()
                .map(|x| (x.name.clone(), if x.input == Input::Choice { x.choices[1].clone() } else { "7".into() }))
                .collect();
            let a = Analysis::from_params(&f.name, &given).unwrap();
            assert_eq!(a.name(), f.name, "the subcommand and the analysis's name agree");
            assert_eq!(serde_json::to_value(&a).unwrap()["analysis"], f.name.as_str(), "and the stored record's");
            let back: Vec<(String, String)> = a
                .cli_args()
                .chunks(2)
                .map(|kv| (kv[0].trim_start_matches("--").replace('-', "_"), kv[1].clone()))
                .collect();
            assert_eq!(Analysis::from_params(&f.name, &back).unwrap(), a, "{}", f.name);
        }
    }

    #[test]
    fn a_bad_parameter_is_named() {
        let e = Analysis::from_params("kappa", &params(&[("a", "x")])).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("b", "choose a column"));
        let e = Analysis::from_params("kappa", &params(&[("a", "x"), ("b", "y"), ("weights", "cubic")])).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("weights", "'cubic': one of none, linear, quadratic"));
        let e = Analysis::from_params("roc-compare", &params(&[("score_b", "s"), ("reference", "r")])).unwrap_err();
        assert_eq!(e.field, "score_a");
        let e =
            Analysis::from_params("diagnostic", &params(&[("test", "a"), ("reference", "b"), ("test_cutoff", "high")]))
                .unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("test_cutoff", "'high' is not a number"));
        let e = Analysis::from_params("fleiss", &[]).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("raters", "choose one or more columns"));
        let e = Analysis::from_params("bogus", &[]).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("analysis", "'bogus' is not an analysis"));
    }
}
