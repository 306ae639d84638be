//! Annotations: the annotation schema, reading campaigns, reads (slide-level values and
//! regions), adjudication, exports. The region model and its GeoJSON form are the
//! `evidentia-regions` crate, re-exported here.

pub mod adjudication;
pub mod campaigns;
pub mod export;
pub mod order;
pub mod reads;
pub mod schema;

pub use evidentia_regions::{geojson, rectangle, Geometry, ObjectType, Position, Region, RegionClass};
