//! A TEXT column that holds JSON of a known shape: `Json<T>` reads it as `T` (a stored value
//! that does not parse as `T` is an error when the row is read, never a default) and writes `T`
//! as JSON.

use std::fmt::Debug;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;

use super::MultiBackend;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Default, FromSqlRow, AsExpression)]
#[diesel(sql_type = Text)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: DeserializeOwned + Debug, DB> FromSql<Text, DB> for Json<T>
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(value: <DB as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, DB>>::from_sql(value)?;
        serde_json::from_str(&text)
            .map(Json)
            .map_err(|e| format!("the database holds JSON that is not a {}: {e}", std::any::type_name::<T>()).into())
    }
}

// Writing needs the JSON text, which the value does not hold: each engine takes it its own way
// (SQLite an owned string, PostgreSQL the bytes), and the connection enum hands the value to
// the engine in use.

impl<T: Serialize + Debug> ToSql<Text, Sqlite> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl<T: Serialize + Debug> ToSql<Text, Pg> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        serde_json::to_writer(out, &self.0)?;
        Ok(IsNull::No)
    }
}

impl<T: Serialize + Debug + Send + Sync + 'static> ToSql<Text, MultiBackend> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Text, self));
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use super::Json;
    use crate::db::Conn;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        v: Json<Vec<i32>>,
    }

    #[test]
    fn json_of_the_wrong_shape_is_an_error_never_a_default() {
        let mut conn = Conn::establish(":memory:").unwrap();
        let ok: Row = diesel::sql_query("SELECT '[1,2]' AS v").get_result(&mut conn).unwrap();
        assert_eq!(ok.v.0, vec![1, 2]);
        let err = diesel::sql_query("SELECT '{\"a\":1}' AS v").get_result::<Row>(&mut conn).err().unwrap();
        assert!(err.to_string().contains("not a alloc::vec::Vec<i32>"), "{err}");
    }
}
