//! Reading a multipart upload into memory with a size limit: the file (never written to disk)
//! and the form's other fields.

use std::collections::HashMap;

use actix_multipart::Multipart;
use futures_util::StreamExt;

use crate::error::Error;

pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub fields: HashMap<String, String>,
}

impl Upload {
    pub fn field(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_default()
    }
}

/// Reads every part; a file over `limit` bytes is refused before the rest is read.
pub async fn read(mut payload: Multipart, limit: usize) -> Result<Upload, Error> {
    let mut up = Upload { file_name: String::new(), bytes: Vec::new(), fields: HashMap::new() };
    while let Some(part) = payload.next().await {
        let mut part = part.map_err(|e| Error::invalid("file", format!("the upload could not be read: {e}")))?;
        let name = part.content_disposition().and_then(|d| d.get_name()).unwrap_or_default().to_string();
        let file_name = part.content_disposition().and_then(|d| d.get_filename()).map(str::to_string);
        let mut buf = Vec::new();
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| Error::invalid("file", format!("the upload could not be read: {e}")))?;
            if buf.len() + chunk.len() > limit {
                return Err(Error::invalid(
                    "file",
                    format!("the file is over the upload limit of {} MB", limit / (1024 * 1024)),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        if let Some(f) = file_name {
            up.file_name = f;
            up.bytes = buf;
        } else if buf.len() <= 64 * 1024 {
            up.fields.insert(name, String::from_utf8_lossy(&buf).to_string());
        }
    }
    if up.file_name.is_empty() && up.bytes.is_empty() {
        return Err(Error::invalid("file", "choose a file to upload"));
    }
    Ok(up)
}
