//! Regions drawn on a slide and their GeoJSON form, as QuPath (0.2 to 0.5) writes and reads it:
//! the region model (geometry in level-0 pixels, class, object type) and [`geojson`], a streaming
//! import with limits and an export. No database, no web: the application stores regions as
//! JSON with reads and serves these files.

pub mod geojson;

use serde::{Deserialize, Serialize};

/// A position in level-0 pixels: origin top-left, x right, y down; fractions allowed.
pub type Position = [f64; 2];

/// One region drawn on a slide (by a pathologist or imported from QuPath).
///
/// Stored as JSON in the database, thousands per read, so the serde form is compact: absent
/// `id`, `class` and `name` are left out, `object_type` is left out for annotations (the
/// default), and the geometry is tagged by its GeoJSON type name. A detected lymphocyte:
/// `{"class":{"name":"Lymphocyte","color":[255,0,0]},"object_type":"detection","geometry":{"Point":[812.5,1040.0]}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// QuPath's object UUID, kept so a region exported and re-imported stays the same object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<RegionClass>,
    #[serde(default, skip_serializing_if = "ObjectType::is_annotation")]
    pub object_type: ObjectType,
    pub geometry: Geometry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A region's class, as QuPath names and colours it ("Tumor", "Stroma", "Lymphocyte", ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionClass {
    pub name: String,
    pub color: [u8; 3],
}

/// QuPath's distinction: annotations are drawn by people, detections (cells, tiles) by algorithms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    #[default]
    Annotation,
    Detection,
}

impl ObjectType {
    fn is_annotation(&self) -> bool {
        *self == ObjectType::Annotation
    }
}

/// Region shapes, as in GeoJSON. Polygons hold the exterior ring first, then holes; every ring
/// is closed (first position repeated last) and has at least 4 positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Geometry {
    Point(Position),
    MultiPoint(Vec<Position>),
    LineString(Vec<Position>),
    Polygon(Vec<Vec<Position>>),
    MultiPolygon(Vec<Vec<Vec<Position>>>),
}

impl Geometry {
    /// Positions in the geometry; a closed ring counts its repeated first position twice.
    pub fn vertex_count(&self) -> usize {
        self.runs().map(<[Position]>::len).sum()
    }

    /// `[min_x, min_y, max_x, max_y]`, or `None` when there is no position at all.
    pub fn bounds(&self) -> Option<[f64; 4]> {
        let mut positions = self.runs().flatten();
        let first = positions.next()?;
        let start = [first[0], first[1], first[0], first[1]];
        Some(positions.fold(start, |[x0, y0, x1, y1], p| [x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1])]))
    }

    /// The GeoJSON type name: "Point", "MultiPoint", "LineString", "Polygon" or "MultiPolygon".
    pub fn kind(&self) -> &'static str {
        match self {
            Geometry::Point(_) => "Point",
            Geometry::MultiPoint(_) => "MultiPoint",
            Geometry::LineString(_) => "LineString",
            Geometry::Polygon(_) => "Polygon",
            Geometry::MultiPolygon(_) => "MultiPolygon",
        }
    }

    /// The positions as contiguous runs (a point, a point list, a line, or one polygon ring each),
    /// so that bounds, counts and the importer's slide check need no per-variant code.
    pub fn runs(&self) -> Box<dyn Iterator<Item = &[Position]> + '_> {
        match self {
            Geometry::Point(p) => Box::new(std::iter::once(std::slice::from_ref(p))),
            Geometry::MultiPoint(ps) | Geometry::LineString(ps) => Box::new(std::iter::once(ps.as_slice())),
            Geometry::Polygon(rings) => Box::new(rings.iter().map(Vec::as_slice)),
            Geometry::MultiPolygon(polygons) => Box::new(polygons.iter().flatten().map(Vec::as_slice)),
        }
    }
}

/// A rectangle drawn in the viewer is a closed 5-vertex polygon (clockwise on screen from the
/// top-left corner), which is also how QuPath exports its rectangle ROIs.
pub fn rectangle(x: f64, y: f64, w: f64, h: f64) -> Geometry {
    Geometry::Polygon(vec![vec![[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangle_is_a_closed_five_vertex_polygon() {
        let r = rectangle(10.0, 20.0, 30.0, 40.0);
        assert_eq!(r.kind(), "Polygon");
        assert_eq!(r.vertex_count(), 5);
        assert_eq!(r.bounds(), Some([10.0, 20.0, 40.0, 60.0]));
        let Geometry::Polygon(rings) = &r else { panic!("not a polygon") };
        assert_eq!(rings[0].first(), rings[0].last());
    }

    #[test]
    fn counts_and_bounds_cover_every_variant() {
        assert_eq!(Geometry::Point([3.0, 4.0]).bounds(), Some([3.0, 4.0, 3.0, 4.0]));
        assert_eq!(Geometry::MultiPoint(vec![]).bounds(), None);
        assert_eq!(Geometry::MultiPoint(vec![]).vertex_count(), 0);
        let line = Geometry::LineString(vec![[5.0, 1.0], [2.0, 9.0]]);
        assert_eq!((line.vertex_count(), line.bounds()), (2, Some([2.0, 1.0, 5.0, 9.0])));
        let Geometry::Polygon(a) = rectangle(0.0, 0.0, 1.0, 1.0) else { panic!() };
        let Geometry::Polygon(b) = rectangle(5.0, 5.0, 2.0, 3.0) else { panic!() };
        let multi = Geometry::MultiPolygon(vec![a, b]);
        assert_eq!(
            (multi.kind(), multi.vertex_count(), multi.bounds()),
            ("MultiPolygon", 10, Some([0.0, 0.0, 7.0, 8.0]))
        );
    }

    #[test]
    fn stored_form_is_compact_and_round_trips() {
        let point = Region {
            id: None,
            class: Some(RegionClass { name: "Lymphocyte".into(), color: [255, 0, 0] }),
            object_type: ObjectType::Detection,
            geometry: Geometry::Point([812.5, 1040.0]),
            name: None,
        };
        let json = serde_json::to_string(&point).unwrap();
        assert_eq!(
            json,
            r#"{"class":{"name":"Lymphocyte","color":[255,0,0]},"object_type":"detection","geometry":{"Point":[812.5,1040.0]}}"#
        );
        assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), point);

        let bare = Region {
            id: Some("3f2a".into()),
            class: None,
            object_type: ObjectType::Annotation,
            geometry: rectangle(0.0, 0.0, 2.0, 2.0),
            name: Some("ROI".into()),
        };
        let json = serde_json::to_string(&bare).unwrap();
        assert!(!json.contains("object_type") && !json.contains("class"), "{json}");
        assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), bare);
    }
}
