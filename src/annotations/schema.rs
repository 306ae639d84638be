//! A study's annotation schema: the slide-level fields a reader fills in and the region classes
//! they draw with. Versioned: every change is a new version, audited, with a reason once reading
//! has started. Written and shown as a short text (one line per field or class) so a manager can
//! edit it in a textarea and every problem can name its line.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::annotations::reads::ReadStatus;
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::{annotation_schemas, campaigns, reads};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FieldKind {
    /// One of the listed choices, in the listed (ordinal) order.
    Categorical {
        choices: Vec<String>,
    },
    Numeric {
        min: f64,
        max: f64,
        unit: String,
    },
    YesNo,
    Comment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Machine name: `a-z 0-9 _`, starting with a letter (CSV column, API key).
    pub name: String,
    /// What readers see (`til_density (TIL density)` in the text form); empty: the name, spaced.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    pub required: bool,
}

/// How a class is drawn: points (cells), areas (polygons, rectangles), or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassShape {
    Point,
    Area,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassDef {
    pub name: String,
    pub color: [u8; 3],
    pub shape: ClassShape,
}

impl ClassDef {
    pub fn hex(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.color[0], self.color[1], self.color[2])
    }
    pub fn shape_label(&self) -> &'static str {
        match self.shape {
            ClassShape::Point => "point",
            ClassShape::Area => "area",
            ClassShape::Any => "any",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub fields: Vec<FieldDef>,
    pub classes: Vec<ClassDef>,
}

/// The text a new study starts from: the tumour-immune phenotype read (docs/models.md).
pub const DEFAULT_TEXT: &str = "\
# fields: name (Label) | categorical | choice, choice, … | required
#         name (Label) | numeric | min-max unit | required
#         name (Label) | yesno | required        name (Label) | comment
phenotype (Tumour-immune phenotype) | categorical | inflamed, excluded, desert | required
til_density (TIL density) | numeric | 0-5000 /mm² | required
tumour_present (Tumour present) | yesno | required
comment (Comment) | comment
# classes: Name | #rrggbb | point, area or any
Tumor | #c83232 | area
Stroma | #2ca02c | area
Lymphocyte | #1f77b4 | point
";

impl Definition {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Parses the schema text. Lines with 2 parts after a colour are classes (`Name | #rrggbb |
    /// shape`), other lines fields; `#` starts a comment line. Every problem names its line.
    pub fn parse_text(text: &str) -> Result<Definition> {
        let mut def = Definition::default();
        let mut errors = FieldErrors::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("line {}", i + 1);
            let parts: Vec<&str> = line.split('|').map(str::trim).collect();
            let parsed = if parts.get(1).is_some_and(|p| p.starts_with('#')) {
                parse_class(&parts).map(|c| def.classes.push(c))
            } else {
                parse_field(&parts).map(|f| def.fields.push(f))
            };
            if let Err(m) = parsed {
                errors.add(&at, m);
            }
        }
        errors.into_result()?;
        def.check()?;
        Ok(def)
    }

    /// Names unique, at least one field, classes at most 9 (hot-keys 1–9).
    fn check(&self) -> Result<()> {
        let mut errors = FieldErrors::default();
        if self.fields.is_empty() {
            errors.add("schema", "define at least one slide-level field");
        }
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                errors.add("schema", format!("field {} is defined twice", f.name));
            }
        }
        for (i, c) in self.classes.iter().enumerate() {
            if self.classes[..i].iter().any(|d| d.name.eq_ignore_ascii_case(&c.name)) {
                errors.add("schema", format!("class {} is defined twice", c.name));
            }
        }
        if self.classes.len() > 9 {
            errors.add("schema", "at most 9 region classes (they get the hot-keys 1–9)");
        }
        errors.into_result()
    }

    /// Checks regions against the schema's classes: a point class only as points, an area class
    /// only as polygons (classes the schema does not know, e.g. from QuPath, pass), and names,
    /// ids and classes of sane length. The message names the region (numbered from 1).
    pub fn check_regions(&self, regions: &[super::Region]) -> std::result::Result<(), String> {
        for (i, r) in regions.iter().enumerate() {
            let long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.chars().count() > 200);
            if long(&r.id) || long(&r.name) || r.class.as_ref().is_some_and(|c| c.name.chars().count() > 200) {
                return Err(format!("region {}: an id, name or class longer than 200 characters", i + 1));
            }
            let Some(class) = r.class.as_ref().and_then(|c| self.classes.iter().find(|d| d.name == c.name)) else {
                continue;
            };
            let kind = r.geometry.kind();
            let fits = match class.shape {
                ClassShape::Point => matches!(kind, "Point" | "MultiPoint"),
                ClassShape::Area => matches!(kind, "Polygon" | "MultiPolygon"),
                ClassShape::Any => true,
            };
            if !fits {
                return Err(format!(
                    "region {}: class {} is drawn as {}s, not as a {kind}",
                    i + 1,
                    class.name,
                    class.shape_label()
                ));
            }
        }
        Ok(())
    }

    /// The text form (what the editor shows), parseable by [`Definition::parse_text`].
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.fields {
            let req = if f.required { " | required" } else { "" };
            let name = if f.label.is_empty() { f.name.clone() } else { format!("{} ({})", f.name, f.label) };
            let f = FieldDef { name, ..f.clone() };
            let line = match &f.kind {
                FieldKind::Categorical { choices } => format!("{} | categorical | {}{req}", f.name, choices.join(", ")),
                FieldKind::Numeric { min, max, unit } => {
                    format!(
                        "{} | numeric | {min}-{max}{}{req}",
                        f.name,
                        if unit.is_empty() { "".into() } else { format!(" {unit}") }
                    )
                }
                FieldKind::YesNo => format!("{} | yesno{req}", f.name),
                FieldKind::Comment => format!("{} | comment{req}", f.name),
            };
            out.push_str(&line);
            out.push('\n');
        }
        for c in &self.classes {
            out.push_str(&format!("{} | {} | {}\n", c.name, c.hex(), c.shape_label()));
        }
        out
    }

    /// Checks a read's values: known fields only, each valid for its kind; with `complete`,
    /// every required field present. Values are kept as the strings the form sent, normalised
    /// (numbers as written, yes/no as `yes`/`no`). Problems name the field.
    pub fn validate(&self, values: &Map<String, Value>, complete: bool) -> Result<Map<String, Value>> {
        let mut errors = FieldErrors::default();
        let mut out = Map::new();
        for (k, v) in values {
            if self.field(k).is_none() {
                errors.add(k, "is not a field of the annotation schema");
            } else if !matches!(v, Value::String(_) | Value::Null) {
                errors.add(k, "must be text");
            }
        }
        for f in &self.fields {
            let raw = values.get(&f.name).and_then(Value::as_str).map(str::trim).unwrap_or("");
            if raw.is_empty() {
                if complete && f.required {
                    errors.add(&f.name, "is required");
                }
                continue;
            }
            match f.normalise(raw) {
                Ok(v) => {
                    out.insert(f.name.clone(), Value::String(v));
                }
                Err(m) => errors.add(&f.name, m),
            }
        }
        errors.into_result()?;
        Ok(out)
    }
}

impl FieldDef {
    /// What a person reads: the label, else the name with spaces ("tumour present").
    pub fn display_label(&self) -> String {
        if self.label.is_empty() {
            crate::text::label_of(&self.name)
        } else {
            self.label.clone()
        }
    }
    fn normalise(&self, raw: &str) -> std::result::Result<String, String> {
        match &self.kind {
            FieldKind::Categorical { choices } => choices
                .iter()
                .find(|c| c.as_str() == raw)
                .cloned()
                .ok_or_else(|| format!("{raw:?} is not one of {}", choices.join(", "))),
            FieldKind::Numeric { min, max, unit } => {
                let x: f64 = raw.parse().map_err(|_| format!("{raw:?} is not a number"))?;
                if !x.is_finite() || x < *min || x > *max {
                    return Err(format!("{raw} is outside {min}–{max} {unit}"));
                }
                // One spelling per number (`1e3`, `+1000` and `1000.0` are all `1000`).
                Ok(format!("{x}"))
            }
            FieldKind::YesNo => match raw.to_ascii_lowercase().as_str() {
                "yes" | "y" | "1" | "true" => Ok("yes".into()),
                "no" | "n" | "0" | "false" => Ok("no".into()),
                _ => Err(format!("{raw:?} is not yes or no")),
            },
            FieldKind::Comment => {
                if raw.chars().count() > 4000 {
                    Err("is longer than 4,000 characters".into())
                } else {
                    Ok(raw.to_string())
                }
            }
        }
    }

    /// Categories a field's values fall in, in the schema's order (for confusion matrices);
    /// `None` for numeric and comment fields.
    pub fn categories(&self) -> Option<Vec<String>> {
        match &self.kind {
            FieldKind::Categorical { choices } => Some(choices.clone()),
            FieldKind::YesNo => Some(vec!["no".into(), "yes".into()]),
            _ => None,
        }
    }
    pub fn kind_label(&self) -> String {
        match &self.kind {
            FieldKind::Categorical { choices } => format!("one of {}", choices.join(" | ")),
            FieldKind::Numeric { min, max, unit } => format!("number {min}–{max} {unit}"),
            FieldKind::YesNo => "yes / no".into(),
            FieldKind::Comment => "free text".into(),
        }
    }
    pub fn choices(&self) -> Vec<String> {
        self.categories().unwrap_or_default()
    }
    pub fn is_numeric(&self) -> bool {
        matches!(self.kind, FieldKind::Numeric { .. })
    }
    pub fn is_comment(&self) -> bool {
        matches!(self.kind, FieldKind::Comment)
    }
    pub fn unit(&self) -> &str {
        match &self.kind {
            FieldKind::Numeric { unit, .. } => unit,
            _ => "",
        }
    }
    pub fn range(&self) -> (f64, f64) {
        match &self.kind {
            FieldKind::Numeric { min, max, .. } => (*min, *max),
            _ => (0.0, 0.0),
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 40
}

fn parse_field(parts: &[&str]) -> std::result::Result<FieldDef, String> {
    // `name (Label shown to readers)` or just `name`.
    let (name, label) = match parts[0].split_once('(') {
        Some((n, rest)) if rest.ends_with(')') => (n.trim(), rest[..rest.len() - 1].trim()),
        Some(_) => return Err(format!("{:?}: a label goes in parentheses after the name: `name (Label)`", parts[0])),
        None => (parts[0], ""),
    };
    if label.chars().count() > 100 {
        return Err(format!("{name}: the label is longer than 100 characters"));
    }
    if !valid_name(name) {
        return Err(format!("field name {name:?} must be a-z, 0-9 or _, starting with a letter"));
    }
    let kind_word = parts.get(1).copied().unwrap_or("");
    let required = parts.last().is_some_and(|p| p.eq_ignore_ascii_case("required"));
    let extra_ok = |n: usize| parts.len() == n || (parts.len() == n + 1 && required);
    let kind = match kind_word.to_ascii_lowercase().as_str() {
        "categorical" => {
            let choices: Vec<String> = parts
                .get(2)
                .unwrap_or(&"")
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            if choices.len() < 2 {
                return Err(format!("{name}: a categorical field needs at least two choices, comma-separated"));
            }
            if !extra_ok(3) {
                return Err(format!("{name}: expected `{name} | categorical | a, b, c` and optionally `| required`"));
            }
            FieldKind::Categorical { choices }
        }
        "numeric" => {
            let spec = parts.get(2).copied().unwrap_or("");
            let (range, unit) = spec.split_once(' ').unwrap_or((spec, ""));
            let Some((min, max)) = parse_range(range) else {
                return Err(format!("{name}: a numeric field needs a range like `0-100 %`"));
            };
            if !extra_ok(3) {
                return Err(format!("{name}: expected `{name} | numeric | 0-100 unit` and optionally `| required`"));
            }
            FieldKind::Numeric { min, max, unit: unit.trim().to_string() }
        }
        "yesno" | "yes/no" => {
            if !extra_ok(2) {
                return Err(format!("{name}: expected `{name} | yesno` and optionally `| required`"));
            }
            FieldKind::YesNo
        }
        "comment" | "text" => {
            if !extra_ok(2) {
                return Err(format!("{name}: expected `{name} | comment` and optionally `| required`"));
            }
            FieldKind::Comment
        }
        other => return Err(format!("{name}: unknown field type {other:?} (categorical, numeric, yesno, comment)")),
    };
    Ok(FieldDef { name: name.to_string(), label: label.to_string(), kind, required })
}

/// `min-max` with finite numbers, min < max; negative bounds allowed (`-10-10`, `-5--1`).
fn parse_range(range: &str) -> Option<(f64, f64)> {
    let finite = |t: &str| t.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    range
        .char_indices()
        .filter(|&(i, c)| c == '-' && i > 0 && !range[..i].ends_with(['e', 'E', '-']))
        .find_map(|(i, _)| Some((finite(&range[..i])?, finite(&range[i + 1..])?)))
        .filter(|(a, b)| a < b)
}

fn parse_class(parts: &[&str]) -> std::result::Result<ClassDef, String> {
    let name = parts[0];
    if name.is_empty() || name.len() > 40 {
        return Err("a class needs a name of at most 40 characters".into());
    }
    let hex = parts[1].trim_start_matches('#');
    let color = (hex.len() == 6)
        .then(|| {
            let c = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
            Some([c(0)?, c(2)?, c(4)?])
        })
        .flatten()
        .ok_or_else(|| format!("{name}: colour {} is not #rrggbb", parts[1]))?;
    let shape = match parts.get(2).map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("point") | Some("points") => ClassShape::Point,
        Some("area") | Some("polygon") => ClassShape::Area,
        Some("any") | None => ClassShape::Any,
        Some(other) => return Err(format!("{name}: shape {other:?} is not point, area or any")),
    };
    if parts.len() > 3 {
        return Err(format!("{name}: expected `{name} | #rrggbb | point|area|any`"));
    }
    Ok(ClassDef { name: name.to_string(), color, shape })
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = annotation_schemas)]
pub struct SchemaVersion {
    pub id: i32,
    pub study_id: crate::studies::StudyId,
    pub version: i32,
    #[serde(skip)]
    pub definition: crate::db::Json<Definition>,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
}

impl SchemaVersion {
    pub fn definition(&self) -> Definition {
        self.definition.0.clone()
    }
}

/// The study's current schema, if it has one.
pub fn current(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Option<SchemaVersion>> {
    Ok(annotation_schemas::table
        .filter(annotation_schemas::study_id.eq(study_id))
        .order(annotation_schemas::version.desc())
        .select(SchemaVersion::as_select())
        .first(conn)
        .optional()?)
}

/// The current schema, or a clear error for pages that need one.
pub fn require_current(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<SchemaVersion> {
    current(conn, study_id)?.ok_or_else(|| Error::Conflict("the study has no annotation schema yet".into()))
}

pub fn versions(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<SchemaVersion>> {
    Ok(annotation_schemas::table
        .filter(annotation_schemas::study_id.eq(study_id))
        .order(annotation_schemas::version.desc())
        .select(SchemaVersion::as_select())
        .load(conn)?)
}

/// True once any reader has saved anything in any campaign of the study.
pub fn reading_started(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<bool> {
    let n: i64 = reads::table
        .inner_join(campaigns::table)
        .filter(campaigns::study_id.eq(study_id))
        .filter(reads::status.ne(ReadStatus::Assigned))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Saves a new schema version. After reading started a reason is required; fields that submitted
/// reads use cannot be removed (their values would silently lose their meaning).
pub fn save(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    def: &Definition,
    reason: &str,
) -> Result<SchemaVersion> {
    access.require(Permission::ManageCampaigns)?;
    def.check()?;
    let reason = reason.trim();
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let previous = current(conn, study.id)?;
        let old = previous.as_ref().map(SchemaVersion::definition);
        if old.as_ref() == Some(def) {
            return Err(Error::Conflict("the schema is unchanged".into()));
        }
        let started = reading_started(conn, study.id)?;
        if started && reason.is_empty() {
            return Err(Error::invalid("reason", "reading has started: say why the schema changes"));
        }
        let refused = values_refused_by(conn, study.id, def)?;
        if !refused.is_empty() {
            return Err(Error::invalid(
                "schema",
                format!(
                    "reads hold values this schema would refuse ({}): keep those fields, choices and ranges (make a field optional instead of removing it)",
                    refused.join("; ")
                ),
            ));
        }
        let version = previous.as_ref().map_or(1, |p| p.version + 1);
        let text = serde_json::to_string(def).map_err(|e| Error::Internal(e.into()))?;
        let saved: SchemaVersion =
            crate::db::on_engine!(&mut *conn, |c| diesel::insert_into(annotation_schemas::table)
                .values((
                    annotation_schemas::study_id.eq(study.id),
                    annotation_schemas::version.eq(version),
                    annotation_schemas::definition.eq(&text),
                    annotation_schemas::reason.eq((!reason.is_empty()).then_some(reason)),
                    annotation_schemas::created_by.eq(&actor.name),
                    annotation_schemas::created_at.eq(now()),
                ))
                .returning(SchemaVersion::as_returning())
                .get_result(c))?;
        let (before, after) = match &old {
            Some(o) => audit::diff(
                &serde_json::to_value(o).unwrap_or_default(),
                &serde_json::to_value(def).unwrap_or_default(),
            ),
            None => (Value::Null, serde_json::to_value(def).unwrap_or_default()),
        };
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Update, Entity::AnnotationSchema, format!("v{version}"))
                .before_opt((!before.is_null()).then_some(before))
                .after(json!({"version": version, "changes": after}))
                .because_opt((!reason.is_empty()).then_some(reason)),
        )?;
        Ok(saved)
    })
}

/// What the reads already saved in the study hold that `def` would refuse, by field with a
/// count (empty when every stored value still fits).
fn values_refused_by(conn: &mut Conn, study_id: crate::studies::StudyId, def: &Definition) -> Result<Vec<String>> {
    let stored: Vec<String> = reads::table
        .inner_join(campaigns::table)
        .filter(campaigns::study_id.eq(study_id))
        .filter(reads::status.ne(ReadStatus::Assigned))
        .select(reads::field_values)
        .load(conn)?;
    let mut refused: std::collections::BTreeMap<String, usize> = Default::default();
    for values in stored.iter().filter_map(|v| serde_json::from_str::<Map<String, Value>>(v).ok()) {
        if let Err(Error::Invalid(errors)) = def.validate(&values, false) {
            for e in errors.0 {
                *refused.entry(e.field).or_default() += 1;
            }
        }
    }
    Ok(refused.into_iter().map(|(f, n)| format!("{f}: {n} read{}", if n == 1 { "" } else { "s" })).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_parses_and_round_trips() {
        let def = Definition::parse_text(DEFAULT_TEXT).unwrap();
        assert_eq!(def.fields.len(), 4);
        assert_eq!(def.classes.len(), 3);
        assert_eq!(
            def.classes[2],
            ClassDef { name: "Lymphocyte".into(), color: [0x1f, 0x77, 0xb4], shape: ClassShape::Point }
        );
        assert_eq!(Definition::parse_text(&def.to_text()).unwrap(), def);
        assert_eq!(def.fields[1].display_label(), "TIL density");
        let bare = Definition::parse_text("tumour_present | yesno").unwrap();
        assert_eq!(bare.fields[0].display_label(), "Tumour present");
        assert!(Definition::parse_text("x (unclosed | yesno").unwrap_err().to_string().contains("parentheses"));
        let tps = Definition::parse_text("tps_category | categorical | <1%, 1-49%, >=50% | required").unwrap();
        assert_eq!(tps.fields[0].choices(), vec!["<1%", "1-49%", ">=50%"]);
    }

    #[test]
    fn problems_name_their_line() {
        let err = Definition::parse_text("ok | yesno\nBad Name | yesno\nx | numeric | 100-0\nC | #zzzzzz | point")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2") && msg.contains("line 3") && msg.contains("line 4"), "{msg}");
        assert!(Definition::parse_text("# nothing\n").unwrap_err().to_string().contains("at least one"));
        assert!(Definition::parse_text("a | yesno\na | comment").unwrap_err().to_string().contains("twice"));
        assert!(Definition::parse_text("x | numeric | 0-inf").is_err(), "bounds must be finite");
        assert_eq!(parse_range("-10-10"), Some((-10.0, 10.0)));
        assert_eq!(parse_range("-5--1"), Some((-5.0, -1.0)));
        assert_eq!(parse_range("1e-3-2e2"), Some((0.001, 200.0)));
        assert_eq!(parse_range("5-1"), None);
    }

    #[test]
    fn regions_follow_their_class_shape() {
        use crate::annotations::{rectangle, Geometry, ObjectType, Region, RegionClass};
        let def = Definition::parse_text(DEFAULT_TEXT).unwrap();
        let region = |class: &str, geometry: Geometry| Region {
            id: None,
            class: Some(RegionClass { name: class.into(), color: [0, 0, 0] }),
            object_type: ObjectType::Annotation,
            geometry,
            name: None,
        };
        let ok = [
            region("Lymphocyte", Geometry::Point([1.0, 2.0])),
            region("Tumor", rectangle(0.0, 0.0, 5.0, 5.0)),
            region("Necrosis", Geometry::Point([3.0, 3.0])),
        ];
        assert_eq!(def.check_regions(&ok), Ok(()), "unknown classes (from QuPath) pass");
        let bad = [region("Tumor", Geometry::Point([1.0, 1.0]))];
        assert_eq!(def.check_regions(&bad), Err("region 1: class Tumor is drawn as areas, not as a Point".into()));
        let long = [region(&"x".repeat(201), Geometry::Point([1.0, 1.0]))];
        assert!(def.check_regions(&long).unwrap_err().contains("longer than 200"));
    }

    #[test]
    fn values_are_validated_by_kind() {
        let def = Definition::parse_text(DEFAULT_TEXT).unwrap();
        let vals = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect::<Map<_, _>>()
        };
        let ok = def
            .validate(&vals(&[("phenotype", "inflamed"), ("til_density", "120.5"), ("tumour_present", "Y")]), true)
            .unwrap();
        assert_eq!(ok["tumour_present"], "yes");
        let n = def.validate(&vals(&[("til_density", "1e3")]), false).unwrap();
        assert_eq!(n["til_density"], "1000", "one spelling per number");
        let err = def
            .validate(
                &vals(&[("phenotype", "hot"), ("til_density", "9999"), ("tumour_present", "maybe"), ("x", "1")]),
                false,
            )
            .unwrap_err()
            .to_string();
        for needle in ["phenotype", "til_density: 9999 is outside", "tumour_present", "x: is not a field"] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
        // A draft may leave required fields empty; a submitted read may not.
        assert!(def.validate(&vals(&[("phenotype", "desert")]), false).is_ok());
        assert!(def
            .validate(&vals(&[("phenotype", "desert")]), true)
            .unwrap_err()
            .to_string()
            .contains("til_density: is required"));
    }
}
