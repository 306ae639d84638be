//! GeoJSON import and export of regions, compatible with QuPath (0.2 to 0.5).
//! Parsing streams through serde_json with counting visitors, so a file over the vertex or
//! feature limit is refused as soon as it crosses it, without first being built in memory.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Write};

use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Geometry, ObjectType, Position, Region, RegionClass};

/// What an import accepts. Coordinates must lie in `[0, width] × [0, height]` (level-0 pixels).
#[derive(Debug, Clone)]
pub struct Limits {
    pub width: f64,
    pub height: f64,
    pub max_vertices: usize,
    pub max_features: usize,
    pub max_bytes: usize,
}

impl Limits {
    /// The default limits for a slide of this level-0 size: 2,000,000 vertices, 1,000,000
    /// features, 512 MB.
    pub fn for_slide(width: f64, height: f64) -> Self {
        Limits { width, height, max_vertices: 2_000_000, max_features: 1_000_000, max_bytes: 512 << 20 }
    }
}

/// Why a file was refused. Features are numbered from 1 in file order.
#[derive(Debug, thiserror::Error)]
pub enum GeoJsonError {
    #[error("the file is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not GeoJSON: {0}")]
    NotGeoJson(String),
    #[error("the file holds more than {limit} vertices (the limit)")]
    TooManyVertices { limit: usize },
    #[error("the file holds more than {limit} features (the limit)")]
    TooManyFeatures { limit: usize },
    #[error("feature {index}{}: {problem}", id_note(.id))]
    Feature { index: usize, id: Option<String>, problem: String },
}

fn id_note(id: &Option<String>) -> String {
    match id {
        // A UUID is 36 characters; anything much longer is cut so the message stays readable.
        Some(id) if id.chars().count() > 40 => format!(" (id {}…)", id.chars().take(40).collect::<String>()),
        Some(id) => format!(" (id {id})"),
        None => String::new(),
    }
}

const SUPPORTED: [&str; 5] = ["Point", "MultiPoint", "LineString", "Polygon", "MultiPolygon"];

/// QuPath leaves a class without a colour only in hand-written files; they get a neutral grey.
const DEFAULT_COLOR: [u8; 3] = [128, 128, 128];

/// Reads a FeatureCollection, a bare array of Features or a single Feature. All or nothing: the
/// first problem stops the import and nothing partial is returned.
///
/// Rings that are not closed are closed (QuPath always closes them, other tools may not); a ring
/// must then have at least 4 positions. A third (z) number in a position is dropped. Properties
/// other than `objectType`, `classification` and `name` (`isLocked`, `measurements`, ...) are
/// skipped. QuPath 0.2 files (`colorRGB`, the object's Java class name in `id`) are understood.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Vec<Region>, GeoJsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(GeoJsonError::TooLarge { size: bytes.len(), limit: limits.max_bytes });
    }
    let ctx = Ctx {
        limits,
        vertices: Cell::new(0),
        features: Cell::new(0),
        feature: Cell::new(0),
        feature_id: RefCell::new(None),
        error: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let regions = de.deserialize_any(TopVisitor(&ctx)).and_then(|regions| de.end().map(|()| regions));
    regions.map_err(|e| ctx.explain(e, bytes))
}

/// State shared by the visitors of one parse.
struct Ctx<'l> {
    limits: &'l Limits,
    vertices: Cell<usize>,
    features: Cell<usize>,
    /// The feature being read (from 1), or 0 outside any feature.
    feature: Cell<usize>,
    feature_id: RefCell<Option<String>>,
    /// Our own error, when we stopped the parse; serde's error then only carries it out.
    error: RefCell<Option<GeoJsonError>>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&self, error: GeoJsonError) -> E {
        *self.error.borrow_mut() = Some(error);
        E::custom("stopped")
    }

    fn error_here(&self, problem: String) -> GeoJsonError {
        match self.feature.get() {
            0 => GeoJsonError::NotGeoJson(problem),
            index => GeoJsonError::Feature { index, id: self.feature_id.borrow().clone(), problem },
        }
    }

    fn fail_here<E: de::Error>(&self, problem: impl Into<String>) -> E {
        self.fail(self.error_here(problem.into()))
    }

    fn count_vertex<E: de::Error>(&self) -> Result<(), E> {
        let n = self.vertices.get() + 1;
        if n > self.limits.max_vertices {
            return Err(self.fail(GeoJsonError::TooManyVertices { limit: self.limits.max_vertices }));
        }
        self.vertices.set(n);
        Ok(())
    }

    fn start_feature<E: de::Error>(&self) -> Result<(), E> {
        let n = self.features.get() + 1;
        if n > self.limits.max_features {
            return Err(self.fail(GeoJsonError::TooManyFeatures { limit: self.limits.max_features }));
        }
        self.features.set(n);
        self.feature.set(n);
        *self.feature_id.borrow_mut() = None;
        Ok(())
    }

    fn end_feature(&self) {
        self.feature.set(0);
        *self.feature_id.borrow_mut() = None;
    }

    /// Turns the error that ended the parse into ours, naming the feature it happened in.
    fn explain(&self, e: serde_json::Error, bytes: &[u8]) -> GeoJsonError {
        if let Some(ours) = self.error.borrow_mut().take() {
            return ours;
        }
        if e.is_syntax() || e.is_eof() {
            let text = format!("{e}{}", non_json_number_hint(&e, bytes));
            match self.feature.get() {
                0 => GeoJsonError::NotJson(text),
                _ => self.error_here(format!("not JSON: {text}")),
            }
        } else {
            self.error_here(e.to_string())
        }
    }
}

/// Python's json module and some JavaScript tools write NaN and Infinity, which JSON does not
/// have; serde_json only says "expected value", so point at the likely cause.
fn non_json_number_hint(e: &serde_json::Error, bytes: &[u8]) -> &'static str {
    let Some(line) = bytes.split(|&b| b == b'\n').nth(e.line().saturating_sub(1)) else { return "" };
    let around = &line[e.column().saturating_sub(12).min(line.len())..(e.column() + 12).min(line.len())];
    let found = |word: &[u8]| around.windows(word.len()).any(|w| w == word);
    if found(b"NaN") || found(b"Infinity") {
        " (NaN and Infinity are not JSON numbers)"
    } else {
        ""
    }
}

/// Object keys we act on; every other key is skipped without allocating.
enum Key {
    Type,
    Id,
    Geometry,
    Properties,
    Features,
    Coordinates,
    ObjectType,
    Classification,
    Name,
    Names,
    Color,
    ColorRgb,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "type" => Key::Type,
                    "id" => Key::Id,
                    "geometry" => Key::Geometry,
                    "properties" => Key::Properties,
                    "features" => Key::Features,
                    "coordinates" => Key::Coordinates,
                    "objectType" => Key::ObjectType,
                    "classification" => Key::Classification,
                    "name" => Key::Name,
                    "names" => Key::Names,
                    "color" => Key::Color,
                    "colorRGB" => Key::ColorRgb,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// The members of a Feature (or of the top-level object, which may be a FeatureCollection).
#[derive(Default)]
struct Parts {
    kind: Option<String>,
    id: Option<String>,
    geometry: Option<RawGeometry>,
    properties: Props,
    features: Option<Vec<Region>>,
}

#[derive(Default)]
struct Props {
    object_type: Option<ObjectType>,
    class: Option<RegionClass>,
    name: Option<String>,
}

struct RawGeometry {
    kind: Option<String>,
    coordinates: Option<Coords>,
}

/// Coordinates as read, before the geometry type (which may come after them) gives them a shape.
enum Coords {
    Empty,
    Position(Position),
    Positions(Vec<Position>),
    Lists(Vec<Coords>),
}

struct TopVisitor<'c, 'l>(&'c Ctx<'l>);

impl<'de> Visitor<'de> for TopVisitor<'_, '_> {
    type Value = Vec<Region>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a FeatureCollection, a Feature or an array of Features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<Region>, A::Error> {
        FeaturesVisitor(self.0).visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<Region>, A::Error> {
        let ctx = self.0;
        let parts = read_object(map, ctx, true)?;
        match (parts.kind.as_deref(), parts.features.is_some()) {
            (Some("FeatureCollection") | None, true) => Ok(parts.features.unwrap_or_default()),
            (Some("FeatureCollection"), false) => Err(ctx.fail_here("a FeatureCollection needs a \"features\" array")),
            (Some("Feature"), _) | (None, false) => {
                ctx.feature.set(1);
                let region = build_region(parts, ctx).map_err(|e| ctx.fail(e))?;
                ctx.end_feature();
                Ok(vec![region])
            }
            (Some(other), _) => Err(ctx.fail_here(format!(
                "type \"{other}\" at the top level; expected a FeatureCollection, a Feature or an array of Features"
            ))),
        }
    }
}

struct FeaturesVisitor<'c, 'l>(&'c Ctx<'l>);

impl<'de> Visitor<'de> for FeaturesVisitor<'_, '_> {
    type Value = Vec<Region>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of Features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Region>, A::Error> {
        let mut regions = Vec::new();
        while let Some(region) = seq.next_element_seed(FeatureSeed(self.0))? {
            regions.push(region);
        }
        Ok(regions)
    }
}

impl<'de> DeserializeSeed<'de> for FeaturesVisitor<'_, '_> {
    type Value = Vec<Region>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Region>, D::Error> {
        d.deserialize_seq(self)
    }
}

struct FeatureSeed<'c, 'l>(&'c Ctx<'l>);

impl<'de> DeserializeSeed<'de> for FeatureSeed<'_, '_> {
    type Value = Region;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Region, D::Error> {
        // Counted before reading, so that even a malformed feature is named by its number.
        self.0.start_feature()?;
        let ctx = self.0;
        let region = d.deserialize_map(self)?;
        ctx.end_feature();
        Ok(region)
    }
}

impl<'de> Visitor<'de> for FeatureSeed<'_, '_> {
    type Value = Region;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Feature object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Region, A::Error> {
        let ctx = self.0;
        let parts = read_object(map, ctx, false)?;
        if let Some(kind) = parts.kind.as_deref().filter(|&k| k != "Feature") {
            return Err(ctx.fail_here(format!("type is \"{kind}\"; expected \"Feature\"")));
        }
        build_region(parts, ctx).map_err(|e| ctx.fail(e))
    }
}

/// Reads a Feature's members; at the top level also `features`, and the first feature member
/// seen makes the top-level object feature 1 (a single exported Feature).
fn read_object<'de, A: MapAccess<'de>>(mut map: A, ctx: &Ctx, top: bool) -> Result<Parts, A::Error> {
    let mut parts = Parts::default();
    while let Some(key) = map.next_key::<Key>()? {
        // Errors in these name feature 1 (not counted yet: the object may still turn out to be a
        // FeatureCollection with foreign members).
        if top && matches!(key, Key::Id | Key::Geometry | Key::Properties) && ctx.feature.get() == 0 {
            ctx.feature.set(1);
        }
        match key {
            Key::Type => parts.kind = Some(map.next_value()?),
            Key::Id => {
                let id = match map.next_value::<Value>()? {
                    Value::String(s) => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Null => None,
                    _ => return Err(ctx.fail_here("id must be a string or a number")),
                };
                ctx.feature_id.replace(id.clone());
                parts.id = id;
            }
            Key::Geometry => parts.geometry = map.next_value_seed(GeometrySeed(ctx))?,
            Key::Properties => parts.properties = map.next_value_seed(PropsSeed(ctx))?,
            Key::Features if top => {
                ctx.end_feature();
                parts.features = Some(map.next_value_seed(FeaturesVisitor(ctx))?);
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(parts)
}

struct GeometrySeed<'c, 'l>(&'c Ctx<'l>);

impl<'de> DeserializeSeed<'de> for GeometrySeed<'_, '_> {
    type Value = Option<RawGeometry>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<RawGeometry>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for GeometrySeed<'_, '_> {
    type Value = Option<RawGeometry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a geometry object")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.0;
        let mut raw = RawGeometry { kind: None, coordinates: None };
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => {
                    let kind: String = map.next_value()?;
                    // Refused at once: an unsupported type's coordinates may not even have our shapes.
                    if !SUPPORTED.contains(&kind.as_str()) {
                        return Err(ctx.fail_here(unsupported(&kind)));
                    }
                    raw.kind = Some(kind);
                }
                Key::Coordinates => raw.coordinates = Some(map.next_value_seed(CoordsSeed { ctx, depth: 1 })?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(raw))
    }
}

fn unsupported(kind: &str) -> String {
    format!("geometry type \"{kind}\" is not supported ({})", SUPPORTED.join(", "))
}

/// Reads one coordinates array at `depth` (the `coordinates` member itself is depth 1; a
/// MultiPolygon's positions are depth 4, the deepest any supported type goes).
#[derive(Clone, Copy)]
struct CoordsSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    depth: usize,
}

/// An element of a coordinates array: a number (of a position) or a nested array.
enum Elem {
    Num(f64),
    Coords(Coords),
}

impl<'de> DeserializeSeed<'de> for CoordsSeed<'_, '_> {
    type Value = Coords;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Coords, D::Error> {
        match d.deserialize_any(ElemVisitor(self))? {
            Elem::Coords(coords) => Ok(coords),
            Elem::Num(_) => Err(self.ctx.fail_here("coordinates must be an array")),
        }
    }
}

#[derive(Clone, Copy)]
struct ElemSeed<'c, 'l>(CoordsSeed<'c, 'l>);

impl<'de> DeserializeSeed<'de> for ElemSeed<'_, '_> {
    type Value = Elem;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Elem, D::Error> {
        d.deserialize_any(ElemVisitor(self.0))
    }
}

struct ElemVisitor<'c, 'l>(CoordsSeed<'c, 'l>);

impl ElemVisitor<'_, '_> {
    fn not_a_number<E: de::Error>(&self, found: &str) -> E {
        self.0.ctx.fail_here(format!("coordinates must be numbers; found {found}"))
    }
}

impl<'de> Visitor<'de> for ElemVisitor<'_, '_> {
    type Value = Elem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an array of coordinates")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Elem, E> {
        if v.is_finite() {
            Ok(Elem::Num(v))
        } else {
            Err(self.0.ctx.fail_here("coordinates must be finite numbers"))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Elem, E> {
        Ok(Elem::Num(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Elem, E> {
        Ok(Elem::Num(v as f64))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Elem, E> {
        Err(self.not_a_number("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Elem, E> {
        Err(self.not_a_number("true/false"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Elem, E> {
        Err(self.not_a_number("null"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Elem, A::Error> {
        Err(self.not_a_number("an object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elem, A::Error> {
        let CoordsSeed { ctx, depth } = self.0;
        if depth > 4 {
            return Err(ctx.fail_here("coordinates nest deeper than any supported geometry (MultiPolygon: 4 levels)"));
        }
        let child = ElemSeed(CoordsSeed { ctx, depth: depth + 1 });
        let mixed = || ctx.fail_here("coordinates mix numbers, positions and arrays of positions at one level");
        let coords = match seq.next_element_seed(child)? {
            None => Coords::Empty,
            Some(Elem::Num(x)) => {
                let y = match seq.next_element_seed(child)? {
                    Some(Elem::Num(y)) => y,
                    _ => return Err(ctx.fail_here("a position needs two numbers [x, y]")),
                };
                match seq.next_element_seed(child)? {
                    None => {}
                    Some(Elem::Num(_)) if seq.next_element::<IgnoredAny>()?.is_none() => {}
                    _ => return Err(ctx.fail_here("a position has two or three numbers [x, y] or [x, y, z]")),
                }
                ctx.count_vertex()?;
                Coords::Position([x, y])
            }
            Some(Elem::Coords(Coords::Position(first))) => {
                let mut positions = vec![first];
                while let Some(elem) = seq.next_element_seed(child)? {
                    match elem {
                        Elem::Coords(Coords::Position(p)) => positions.push(p),
                        _ => return Err(mixed()),
                    }
                }
                Coords::Positions(positions)
            }
            Some(Elem::Coords(first)) => {
                let mut lists = vec![first];
                while let Some(elem) = seq.next_element_seed(child)? {
                    match elem {
                        Elem::Coords(Coords::Position(_)) | Elem::Num(_) => return Err(mixed()),
                        Elem::Coords(list) => lists.push(list),
                    }
                }
                Coords::Lists(lists)
            }
        };
        Ok(Elem::Coords(coords))
    }
}

struct PropsSeed<'c, 'l>(&'c Ctx<'l>);

impl<'de> DeserializeSeed<'de> for PropsSeed<'_, '_> {
    type Value = Props;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Props, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for PropsSeed<'_, '_> {
    type Value = Props;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a properties object")
    }

    fn visit_none<E: de::Error>(self) -> Result<Props, E> {
        Ok(Props::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Props, E> {
        Ok(Props::default())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Props, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Props, A::Error> {
        let ctx = self.0;
        let mut props = Props::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::ObjectType => {
                    let kind: String = map.next_value()?;
                    props.object_type = Some(match kind.as_str() {
                        "annotation" => ObjectType::Annotation,
                        // QuPath's cells and tiles are detections too.
                        "detection" | "cell" | "tile" => ObjectType::Detection,
                        _ => {
                            return Err(ctx.fail_here(format!(
                                "objectType \"{kind}\" is not supported (annotation, detection, cell, tile)"
                            )))
                        }
                    });
                }
                // Small values: read whole and checked, for messages that say what is wrong.
                Key::Classification => props.class = classification(map.next_value()?).map_err(|p| ctx.fail_here(p))?,
                Key::Name => props.name = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(props)
    }
}

/// `{"name": "Tumor", "color": [r, g, b]}`; QuPath 0.2 wrote `"colorRGB": <packed ARGB int>`,
/// and QuPath 0.4+ adds `"names": [...]` for derived classes ("Tumor: Positive").
fn classification(value: Value) -> Result<Option<RegionClass>, String> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err("classification must be an object {\"name\", \"color\"}".into()),
    };
    let name = match (map.get("name"), map.get("names")) {
        (Some(Value::String(name)), _) => name.clone(),
        (None | Some(Value::Null), Some(Value::Array(names)))
            if names.iter().all(Value::is_string) && !names.is_empty() =>
        {
            names.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(": ")
        }
        _ => return Err("classification.name must be a string".into()),
    };
    let color = match (map.get("color"), map.get("colorRGB")) {
        (Some(color), _) => {
            let channels: Option<Vec<u8>> = color
                .as_array()
                .filter(|c| c.len() == 3)
                .and_then(|c| c.iter().map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok())).collect());
            match channels.as_deref() {
                Some(&[r, g, b]) => [r, g, b],
                _ => return Err("classification.color must be three numbers 0–255".into()),
            }
        }
        (None, Some(packed)) => match packed.as_i64() {
            // Java's packed ARGB, signed: the low 24 bits are the colour.
            Some(argb) => [(argb >> 16) as u8, (argb >> 8) as u8, argb as u8],
            None => return Err("classification.colorRGB must be an integer".into()),
        },
        (None, None) => DEFAULT_COLOR,
    };
    Ok(Some(RegionClass { name, color }))
}

/// Shapes the feature's raw coordinates into a checked region.
fn build_region(parts: Parts, ctx: &Ctx) -> Result<Region, GeoJsonError> {
    let Some(raw) = parts.geometry else { return Err(ctx.error_here("geometry is missing or null".into())) };
    let geometry = to_geometry(raw).and_then(|g| inside_slide(&g, ctx.limits).map(|()| g));
    let geometry = geometry.map_err(|problem| ctx.error_here(problem))?;
    // QuPath 0.2 put the object's Java class where the id belongs, and wrote no objectType.
    let (id, legacy_type) = match parts.id.as_deref() {
        Some("PathAnnotationObject") => (None, Some(ObjectType::Annotation)),
        Some("PathDetectionObject" | "PathCellObject" | "PathTileObject") => (None, Some(ObjectType::Detection)),
        _ => (parts.id, None),
    };
    let Props { object_type, class, name } = parts.properties;
    Ok(Region { id, class, object_type: object_type.or(legacy_type).unwrap_or_default(), geometry, name })
}

fn to_geometry(raw: RawGeometry) -> Result<Geometry, String> {
    let Some(kind) = raw.kind else { return Err("geometry has no type".into()) };
    let Some(coords) = raw.coordinates else { return Err(format!("{kind} geometry has no coordinates")) };
    if matches!(coords, Coords::Empty) {
        return Err(format!("{kind} geometry is empty"));
    }
    let shape = |expected: &str| format!("{kind} coordinates must be {expected}");
    match (kind.as_str(), coords) {
        ("Point", Coords::Position(p)) => Ok(Geometry::Point(p)),
        ("Point", _) => Err(shape("one position [x, y]")),
        ("MultiPoint", Coords::Positions(ps)) => Ok(Geometry::MultiPoint(ps)),
        ("LineString", Coords::Positions(ps)) if ps.len() >= 2 => Ok(Geometry::LineString(ps)),
        ("LineString", Coords::Positions(_)) => Err("a LineString needs at least 2 positions".into()),
        ("MultiPoint" | "LineString", _) => Err(shape("an array of positions [x, y]")),
        ("Polygon", Coords::Lists(rings)) => polygon(rings, None).map(Geometry::Polygon),
        ("Polygon", _) => Err(shape("an array of rings, each an array of positions [x, y]")),
        ("MultiPolygon", Coords::Lists(polygons)) => {
            let polygons = polygons.into_iter().enumerate().map(|(i, polygon)| match polygon {
                Coords::Lists(rings) => self::polygon(rings, Some(i + 1)),
                Coords::Empty => Err(format!("polygon {} is empty", i + 1)),
                _ => Err(shape("an array of polygons, each an array of rings")),
            });
            polygons.collect::<Result<_, _>>().map(Geometry::MultiPolygon)
        }
        ("MultiPolygon", _) => Err(shape("an array of polygons, each an array of rings")),
        (other, _) => Err(unsupported(other)),
    }
}

/// Closes open rings and checks each has at least 4 positions; rings are numbered from 1
/// (the exterior), within polygon `which` of a MultiPolygon.
fn polygon(rings: Vec<Coords>, which: Option<usize>) -> Result<Vec<Vec<Position>>, String> {
    let ring_name = |r: usize| match which {
        Some(p) => format!("polygon {p} ring {r}"),
        None => format!("polygon ring {r}"),
    };
    let mut out = Vec::with_capacity(rings.len());
    for (i, ring) in rings.into_iter().enumerate() {
        let mut positions = match ring {
            Coords::Positions(ps) => ps,
            Coords::Empty => Vec::new(),
            _ => return Err(format!("{} must be an array of positions [x, y]", ring_name(i + 1))),
        };
        let given = positions.len();
        if let (Some(&first), Some(last)) = (positions.first(), positions.last()) {
            if first != *last {
                positions.push(first);
            }
        }
        if positions.len() < 4 {
            return Err(format!(
                "{} has {given} positions; a ring needs at least 4 with the first repeated last",
                ring_name(i + 1)
            ));
        }
        out.push(positions);
    }
    Ok(out)
}

/// Checks regions that arrive already structured (the workbench's drafts) against the same rules
/// as a file: the limits, non-empty shapes, closed rings of at least 4 positions, every position
/// finite and on the slide. Regions are numbered from 1 as features are.
pub fn check(regions: &[Region], limits: &Limits) -> Result<(), GeoJsonError> {
    if regions.len() > limits.max_features {
        return Err(GeoJsonError::TooManyFeatures { limit: limits.max_features });
    }
    if regions.iter().map(|r| r.geometry.vertex_count()).sum::<usize>() > limits.max_vertices {
        return Err(GeoJsonError::TooManyVertices { limit: limits.max_vertices });
    }
    for (i, region) in regions.iter().enumerate() {
        let g = &region.geometry;
        let problem = match g {
            Geometry::LineString(ps) if ps.len() < 2 => Some("a LineString needs at least 2 positions".to_string()),
            Geometry::MultiPoint(ps) if ps.is_empty() => Some("MultiPoint geometry is empty".into()),
            Geometry::Polygon(_) | Geometry::MultiPolygon(_) if g.vertex_count() == 0 => {
                Some(format!("{} geometry is empty", g.kind()))
            }
            Geometry::Polygon(_) | Geometry::MultiPolygon(_) => {
                g.runs().position(|ring| ring.len() < 4 || ring.first() != ring.last()).map(|r| {
                    format!("ring {} must be closed (first position repeated last) with at least 4 positions", r + 1)
                })
            }
            _ => None,
        }
        .or_else(|| inside_slide(g, limits).err());
        if let Some(problem) = problem {
            return Err(GeoJsonError::Feature { index: i + 1, id: region.id.clone(), problem });
        }
    }
    Ok(())
}

fn inside_slide(geometry: &Geometry, limits: &Limits) -> Result<(), String> {
    let (w, h) = (limits.width, limits.height);
    match geometry.runs().flatten().find(|[x, y]| !(0.0..=w).contains(x) || !(0.0..=h).contains(y)) {
        Some([x, y]) => Err(format!("coordinate ({x:?}, {y:?}) lies outside the slide (0–{w} × 0–{h} px)")),
        None => Ok(()),
    }
}

/// One Feature as QuPath writes it, borrowing from the region.
#[derive(Serialize)]
struct FeatureOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    geometry: GeometryOut<'a>,
    properties: PropertiesOut<'a>,
}

#[derive(Serialize)]
struct GeometryOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    coordinates: CoordinatesOut<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CoordinatesOut<'a> {
    Point(&'a Position),
    Line(&'a [Position]),
    Polygon(&'a [Vec<Position>]),
    MultiPolygon(&'a [Vec<Vec<Position>>]),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PropertiesOut<'a> {
    object_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classification: Option<&'a RegionClass>,
}

impl<'a> From<&'a Region> for FeatureOut<'a> {
    fn from(region: &'a Region) -> Self {
        let coordinates = match &region.geometry {
            Geometry::Point(p) => CoordinatesOut::Point(p),
            Geometry::MultiPoint(ps) | Geometry::LineString(ps) => CoordinatesOut::Line(ps),
            Geometry::Polygon(rings) => CoordinatesOut::Polygon(rings),
            Geometry::MultiPolygon(polygons) => CoordinatesOut::MultiPolygon(polygons),
        };
        FeatureOut {
            kind: "Feature",
            id: region.id.as_deref(),
            geometry: GeometryOut { kind: region.geometry.kind(), coordinates },
            properties: PropertiesOut {
                object_type: match region.object_type {
                    ObjectType::Annotation => "annotation",
                    ObjectType::Detection => "detection",
                },
                name: region.name.as_deref(),
                classification: region.class.as_ref(),
            },
        }
    }
}

/// The regions as a FeatureCollection, as QuPath writes it (`properties.objectType`,
/// `classification {name, color}`, the feature `id` when known). For large sets use [`write`].
pub fn to_geojson(regions: &[Region]) -> Value {
    let features = regions
        .iter()
        // Cannot fail: these structs have only string keys; a non-finite number becomes null.
        .map(|region| serde_json::to_value(FeatureOut::from(region)).unwrap_or(Value::Null))
        .collect();
    serde_json::json!({ "type": "FeatureCollection", "features": Value::Array(features) })
}

/// Streams the same FeatureCollection as [`to_geojson`], one feature per line, without building
/// it in memory first. The output is buffered here; pass the file or socket as it is.
pub fn write(regions: &[Region], out: impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    out.write_all(br#"{"type":"FeatureCollection","features":["#)?;
    for (i, region) in regions.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut out, &FeatureOut::from(region))?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::rectangle;

    const SLIDE: (f64, f64) = (40000.0, 30000.0);

    fn limits() -> Limits {
        Limits::for_slide(SLIDE.0, SLIDE.1)
    }

    fn class(name: &str, color: [u8; 3]) -> Option<RegionClass> {
        Some(RegionClass { name: name.into(), color })
    }

    /// As QuPath 0.4 exports (pretty-printed), with a QuPath 0.2 feature and hand-edited ones mixed in.
    const QUPATH: &str = r#"{
  "type": "FeatureCollection",
  "features": [
    {
      "type": "Feature",
      "id": "3f2a9c1e-5b7d-4e0f-9a1b-2c3d4e5f6a7b",
      "geometry": { "type": "Point", "coordinates": [1200.5, 340.25] },
      "properties": {
        "objectType": "detection",
        "classification": { "name": "Lymphocyte", "color": [255, 0, 0] },
        "isLocked": false,
        "measurements": { "Nucleus: Area": 31.5 }
      }
    },
    {
      "type": "Feature",
      "geometry": { "type": "MultiPoint", "coordinates": [[10, 20], [30.5, 40.5, 0]] },
      "properties": { "objectType": "cell", "classification": { "name": "Lymphocyte", "color": [255, 0, 0] } }
    },
    {
      "type": "Feature",
      "id": "9d8c7b6a-0000-4000-8000-000000000001",
      "geometry": {
        "type": "Polygon",
        "coordinates": [
          [[100, 100], [900, 100], [900, 900], [100, 900], [100, 100]],
          [[400, 400], [500, 400], [500, 500], [400, 400]]
        ]
      },
      "properties": {
        "objectType": "annotation",
        "name": "Tumour bed",
        "classification": { "name": "Tumor", "color": [200, 0, 0] },
        "isLocked": true
      }
    },
    {
      "type": "Feature",
      "id": "PathAnnotationObject",
      "geometry": {
        "type": "MultiPolygon",
        "coordinates": [
          [[[0, 0], [10, 0], [10, 10], [0, 0]]],
          [[[20, 20], [30, 20], [30, 30], [20, 30]]]
        ]
      },
      "properties": { "classification": { "name": "Stroma", "colorRGB": -16744448 }, "isLocked": false, "measurements": [] }
    },
    {
      "type": "Feature",
      "id": "PathDetectionObject",
      "geometry": { "type": "Point", "coordinates": [5, 5] },
      "properties": { "classification": { "name": "Other", "colorRGB": 16776960 } }
    },
    {
      "type": "Feature",
      "id": "c0ffee00-1111-4222-8333-444455556666",
      "geometry": { "type": "Polygon", "coordinates": [[[100, 200], [400, 200], [400, 500], [100, 500], [100, 200]]] },
      "properties": { "objectType": "annotation", "classification": { "names": ["Tumor", "Positive"], "color": [1, 2, 3] } }
    },
    {
      "type": "Feature",
      "geometry": { "type": "LineString", "coordinates": [[0, 0], [40000, 30000]] },
      "properties": { "objectType": "annotation", "name": "Ruler" }
    },
    { "type": "Feature", "id": 17, "geometry": { "type": "Point", "coordinates": [1, 2] }, "properties": null }
  ]
}"#;

    fn expected() -> Vec<Region> {
        let region = |id: Option<&str>, class, object_type, geometry, name: Option<&str>| Region {
            id: id.map(Into::into),
            class,
            object_type,
            geometry,
            name: name.map(Into::into),
        };
        use Geometry::*;
        use ObjectType::*;
        vec![
            region(
                Some("3f2a9c1e-5b7d-4e0f-9a1b-2c3d4e5f6a7b"),
                class("Lymphocyte", [255, 0, 0]),
                Detection,
                Point([1200.5, 340.25]),
                None,
            ),
            region(
                None,
                class("Lymphocyte", [255, 0, 0]),
                Detection,
                MultiPoint(vec![[10.0, 20.0], [30.5, 40.5]]),
                None,
            ),
            region(
                Some("9d8c7b6a-0000-4000-8000-000000000001"),
                class("Tumor", [200, 0, 0]),
                Annotation,
                Polygon(vec![
                    vec![[100.0, 100.0], [900.0, 100.0], [900.0, 900.0], [100.0, 900.0], [100.0, 100.0]],
                    vec![[400.0, 400.0], [500.0, 400.0], [500.0, 500.0], [400.0, 400.0]],
                ]),
                Some("Tumour bed"),
            ),
            region(
                None,
                class("Stroma", [0, 128, 0]),
                Annotation,
                MultiPolygon(vec![
                    vec![vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 0.0]]],
                    // Left open in the file: closed on import.
                    vec![vec![[20.0, 20.0], [30.0, 20.0], [30.0, 30.0], [20.0, 30.0], [20.0, 20.0]]],
                ]),
                None,
            ),
            region(None, class("Other", [255, 255, 0]), Detection, Point([5.0, 5.0]), None),
            region(
                Some("c0ffee00-1111-4222-8333-444455556666"),
                class("Tumor: Positive", [1, 2, 3]),
                Annotation,
                rectangle(100.0, 200.0, 300.0, 300.0),
                None,
            ),
            region(None, None, Annotation, LineString(vec![[0.0, 0.0], [40000.0, 30000.0]]), Some("Ruler")),
            region(Some("17"), None, Annotation, Point([1.0, 2.0]), None),
        ]
    }

    #[test]
    fn qupath_feature_collection_parses_to_the_model() {
        let regions = parse(QUPATH.as_bytes(), &limits()).unwrap();
        assert_eq!(regions, expected());
    }

    #[test]
    fn round_trips_through_to_geojson_and_write() {
        let regions = parse(QUPATH.as_bytes(), &limits()).unwrap();

        let value = to_geojson(&regions);
        assert_eq!(value["type"], "FeatureCollection");
        assert_eq!(
            value["features"][0],
            serde_json::json!({
                "type": "Feature",
                "id": "3f2a9c1e-5b7d-4e0f-9a1b-2c3d4e5f6a7b",
                "geometry": { "type": "Point", "coordinates": [1200.5, 340.25] },
                "properties": { "objectType": "detection", "classification": { "name": "Lymphocyte", "color": [255, 0, 0] } }
            })
        );
        let bytes = serde_json::to_vec(&value).unwrap();
        assert_eq!(parse(&bytes, &limits()).unwrap(), regions);

        let mut written = Vec::new();
        write(&regions, &mut written).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&written).unwrap(), value, "write and to_geojson agree");
        assert_eq!(parse(&written, &limits()).unwrap(), regions);

        let mut empty = Vec::new();
        write(&[], &mut empty).unwrap();
        assert_eq!(parse(&empty, &limits()).unwrap(), vec![]);
    }

    #[test]
    fn accepts_a_bare_array_and_a_single_feature() {
        let value: Value = serde_json::from_str(QUPATH).unwrap();
        let array = serde_json::to_vec(&value["features"]).unwrap();
        assert_eq!(parse(&array, &limits()).unwrap(), expected());

        let single = serde_json::to_vec(&value["features"][2]).unwrap();
        assert_eq!(parse(&single, &limits()).unwrap(), vec![expected().swap_remove(2)]);
    }

    /// The message of the refusal of a one-feature collection with these members.
    fn refusal(feature: &str) -> String {
        refusal_of(&format!(r#"{{"type": "FeatureCollection", "features": [{feature}]}}"#))
    }

    fn refusal_of(json: &str) -> String {
        match parse(json.as_bytes(), &limits()) {
            Ok(regions) => panic!("accepted {json}: {regions:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn point(coordinates: &str) -> String {
        format!(r#"{{"type": "Feature", "geometry": {{"type": "Point", "coordinates": {coordinates}}}}}"#)
    }

    fn geometry(kind: &str, coordinates: &str) -> String {
        format!(r#"{{"type": "Feature", "geometry": {{"type": "{kind}", "coordinates": {coordinates}}}}}"#)
    }

    #[test]
    fn refusals_name_the_feature_and_the_problem() {
        let good = point("[1, 2]");
        let circle = r#"{"type": "Feature", "id": "3f2a9c1e-5b7d-4e0f-9a1b-2c3d4e5f6a7b",
            "geometry": {"type": "Circle", "coordinates": [1, 2], "radius": 5}}"#;
        assert_eq!(
            refusal(&format!("{good}, {circle}")),
            "feature 2 (id 3f2a9c1e-5b7d-4e0f-9a1b-2c3d4e5f6a7b): geometry type \"Circle\" is not supported \
             (Point, MultiPoint, LineString, Polygon, MultiPolygon)"
        );
        assert_eq!(
            refusal(&format!("{good}, {good}, {good}, {}", point("[52311.5, 10.0]"))),
            "feature 4: coordinate (52311.5, 10.0) lies outside the slide (0–40000 × 0–30000 px)"
        );
        assert_eq!(
            refusal(&point("[-0.5, 10]")),
            "feature 1: coordinate (-0.5, 10.0) lies outside the slide (0–40000 × 0–30000 px)"
        );
        assert_eq!(
            refusal(&geometry("Polygon", "[[[0,0],[9,0],[9,9],[0,0]], [[1,1],[2,2],[1,1]]]")),
            "feature 1: polygon ring 2 has 3 positions; a ring needs at least 4 with the first repeated last"
        );
        assert_eq!(
            refusal(&geometry("Polygon", "[[[0,0],[9,9]]]")),
            "feature 1: polygon ring 1 has 2 positions; a ring needs at least 4 with the first repeated last"
        );
        assert_eq!(
            refusal(&geometry("MultiPolygon", "[[[[0,0],[9,0],[9,9]]], [[[0,0],[9,0],[0,0]]]]")),
            "feature 1: polygon 2 ring 1 has 3 positions; a ring needs at least 4 with the first repeated last"
        );
        assert_eq!(refusal_of("hello"), "not JSON: expected value at line 1 column 1");
        assert_eq!(refusal_of(""), "not JSON: EOF while parsing a value at line 1 column 0");
        assert_eq!(
            refusal_of(r#"{"type": "FeatureCollection", "features": []} x"#),
            "not JSON: trailing characters at line 1 column 47"
        );
        for color in [r#"[255, 0]"#, r#"[256, 0, 0]"#, r#"[1.5, 0, 0]"#, r#""red""#, r#"[-1, 0, 0]"#] {
            let feature = format!(
                r#"{{"type": "Feature", "geometry": {{"type": "Point", "coordinates": [1, 2]}},
                "properties": {{"classification": {{"name": "Tumor", "color": {color}}}}}}}"#
            );
            assert_eq!(
                refusal(&format!("{good}, {good}, {feature}")),
                "feature 3: classification.color must be three numbers 0–255",
                "{color}"
            );
        }
        assert_eq!(
            refusal(&point("[NaN, 2]")),
            "feature 1: not JSON: expected value at line 1 column 110 (NaN and Infinity are not JSON numbers)"
        );
        assert!(refusal(&point("[1, Infinity]")).ends_with("(NaN and Infinity are not JSON numbers)"));
        assert!(refusal(&point("[-Infinity, 1]")).ends_with("(NaN and Infinity are not JSON numbers)"));
        assert!(refusal(&point("[1e999, 1]")).starts_with("feature 1: not JSON: number out of range"));
        assert_eq!(refusal(&point(r#"["12", 2]"#)), "feature 1: coordinates must be numbers; found a string");
        assert_eq!(refusal(&point("[1, null]")), "feature 1: coordinates must be numbers; found null");
        assert_eq!(refusal(&point("[1]")), "feature 1: a position needs two numbers [x, y]");
        assert_eq!(
            refusal(&point("[1, 2, 3, 4]")),
            "feature 1: a position has two or three numbers [x, y] or [x, y, z]"
        );
        assert_eq!(refusal(&point("5")), "feature 1: coordinates must be an array");
        assert_eq!(refusal(&point("[]")), "feature 1: Point geometry is empty");
        assert_eq!(refusal(&geometry("Polygon", "[]")), "feature 1: Polygon geometry is empty");
        assert_eq!(refusal(&geometry("MultiPoint", "[]")), "feature 1: MultiPoint geometry is empty");
        assert_eq!(refusal(&geometry("MultiPolygon", "[[]]")), "feature 1: polygon 1 is empty");
        assert_eq!(refusal(&geometry("LineString", "[[1, 1]]")), "feature 1: a LineString needs at least 2 positions");
        assert_eq!(refusal(&geometry("Point", "[[1, 1]]")), "feature 1: Point coordinates must be one position [x, y]");
        assert_eq!(
            refusal(&geometry("Polygon", "[[1, 1], [2, 2]]")),
            "feature 1: Polygon coordinates must be an array of rings, each an array of positions [x, y]"
        );
        assert_eq!(
            refusal(&geometry("MultiPoint", "[[1, 1], [[2, 2]]]")),
            "feature 1: coordinates mix numbers, positions and arrays of positions at one level"
        );
        assert_eq!(
            refusal(&geometry("MultiPolygon", "[[[[[1, 1]]]]]")),
            "feature 1: coordinates nest deeper than any supported geometry (MultiPolygon: 4 levels)"
        );
        assert_eq!(refusal(r#"{"type": "Feature", "geometry": null}"#), "feature 1: geometry is missing or null");
        assert_eq!(
            refusal(r#"{"type": "Feature", "id": "a", "properties": {}}"#),
            "feature 1 (id a): geometry is missing or null"
        );
        assert_eq!(
            refusal(r#"{"type": "Fetaure", "geometry": null}"#),
            "feature 1: type is \"Fetaure\"; expected \"Feature\""
        );
        assert_eq!(refusal(r#"{"geometry": {"coordinates": [1, 2]}}"#), "feature 1: geometry has no type");
        assert!(refusal(r#"{"geometry": "Point"}"#)
            .starts_with("feature 1: invalid type: string \"Point\", expected a geometry object at line 1"));
        assert!(refusal(r#"[1, 2]"#).starts_with("feature 1: invalid type: sequence, expected a Feature object"));
        assert_eq!(
            refusal(&format!(
                r#"{good}, {{"type": "Feature", "geometry": {{"type": "Point", "coordinates": [1, 2]}}, "properties": {{"objectType": "tma_core"}}}}"#
            )),
            "feature 2: objectType \"tma_core\" is not supported (annotation, detection, cell, tile)"
        );
        assert_eq!(
            refusal(
                r#"{"geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {"classification": {"color": [1, 2, 3]}}}"#
            ),
            "feature 1: classification.name must be a string"
        );
        let long_id = "x".repeat(100);
        assert!(refusal(&format!(r#"{{"id": "{long_id}", "geometry": null}}"#))
            .starts_with(&format!("feature 1 (id {}…): ", "x".repeat(40))));

        assert_eq!(
            refusal_of(r#"{"type": "Topology", "objects": {}}"#),
            "not GeoJSON: type \"Topology\" at the top level; expected a FeatureCollection, a Feature or an array of Features"
        );
        assert_eq!(
            refusal_of(r#"{"type": "FeatureCollection"}"#),
            "not GeoJSON: a FeatureCollection needs a \"features\" array"
        );
        assert!(refusal_of("42").starts_with("not GeoJSON: invalid type: integer `42`, expected a FeatureCollection"));
        assert!(refusal_of(r#"{"features": 3}"#)
            .starts_with("not GeoJSON: invalid type: integer `3`, expected an array of Features"));
    }

    #[test]
    fn deep_nesting_neither_overflows_the_stack_nor_passes_where_it_matters() {
        let (open, close) = ("[".repeat(100_000), "]".repeat(100_000));
        // Skipped members are skipped iteratively by serde_json: harmless however deep.
        let skipped =
            format!(r#"{{"geometry": {{"type": "Point", "coordinates": [1, 2]}}, "isLocked": {open}{close}}}"#);
        assert_eq!(parse(skipped.as_bytes(), &limits()).unwrap().len(), 1);
        // Members read whole hit serde_json's recursion limit (128).
        let class = format!(
            r#"{{"geometry": {{"type": "Point", "coordinates": [1, 2]}}, "properties": {{"classification": {open}{close}}}}}"#
        );
        assert!(
            refusal(&class).starts_with("feature 1: not JSON: recursion limit exceeded at line 1"),
            "{}",
            refusal(&class)
        );
        // Coordinates stop at the depth of a MultiPolygon.
        assert_eq!(
            refusal(&point(&format!("{open}1{close}"))),
            "feature 1: coordinates nest deeper than any supported geometry (MultiPolygon: 4 levels)"
        );
    }

    #[test]
    fn byte_and_feature_limits() {
        let small = Limits { max_bytes: 10, ..limits() };
        assert_eq!(
            parse(QUPATH.as_bytes(), &small).unwrap_err().to_string(),
            format!("the file is {} bytes, more than the limit of 10", QUPATH.len())
        );
        let few = Limits { max_features: 7, ..limits() };
        assert_eq!(
            parse(QUPATH.as_bytes(), &few).unwrap_err().to_string(),
            "the file holds more than 7 features (the limit)"
        );
        let few = Limits { max_vertices: 28, ..limits() };
        assert_eq!(
            parse(QUPATH.as_bytes(), &few).unwrap_err().to_string(),
            "the file holds more than 28 vertices (the limit)"
        );
        assert_eq!(
            parse(QUPATH.as_bytes(), &Limits { max_features: 8, max_vertices: 29, ..limits() }).unwrap(),
            expected()
        );
    }

    /// 10,000,000 points as 1,000 MultiPoint detections of 10,000 points (as many Point features
    /// would trip the feature limit first): refused at the 2,000,001st vertex.
    #[test]
    fn ten_million_points_are_refused_at_the_vertex_limit() {
        let points = b"[1.5,2.5],".repeat(10_000);
        let feature = [
            &br#"{"type":"Feature","geometry":{"type":"MultiPoint","coordinates":["#[..],
            &points[..points.len() - 1],
            b"]}},",
        ]
        .concat();
        let mut file = br#"{"type":"FeatureCollection","features":["#.to_vec();
        file.extend(feature.repeat(1_000));
        file.pop();
        file.extend(b"]}");
        let started = Instant::now();
        let err = parse(&file, &limits()).unwrap_err();
        assert_eq!(err.to_string(), "the file holds more than 2000000 vertices (the limit)");
        println!("{} MB refused in {:?}", file.len() >> 20, started.elapsed());
    }
}
