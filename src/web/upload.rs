//! Reading a multipart upload into memory with a size limit: the file (never written to disk)
//! and the form's other fields.

use std::collections::HashMap;

use actix_multipart::Multipart;
use futures_util::StreamExt;

use crate::error::Error;

pub struct Upload {
    /// The last file of the form: its name, its form field and its bytes.
    pub file_name: String,
    pub file_field: String,
    pub bytes: Vec<u8>,
    /// The form's other files, by form field (a form with several file inputs).
    pub other_files: Vec<(String, Vec<u8>)>,
    pub fields: HashMap<String, String>,
}

impl Upload {
    pub fn field(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_default()
    }
    /// The file chosen in the form's file input `field`.
    pub fn file(&self, field: &str) -> Option<&[u8]> {
        if self.file_field == field && !self.bytes.is_empty() {
            return Some(&self.bytes);
        }
        self.other_files.iter().find(|(f, _)| f == field).map(|(_, b)| b.as_slice())
    }
}

/// Reads every part; a file over `limit` bytes is refused before the rest is read.
pub async fn read(mut payload: Multipart, limit: usize) -> Result<Upload, Error> {
    let mut up = Upload {
        file_name: String::new(),
        file_field: String::new(),
        bytes: Vec::new(),
        other_files: Vec::new(),
        fields: HashMap::new(),
    };
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
            if f.is_empty() && buf.is_empty() {
                // A file input left empty.
                continue;
            }
            if !up.bytes.is_empty() {
                up.other_files.push((std::mem::take(&mut up.file_field), std::mem::take(&mut up.bytes)));
            }
            up.file_name = f;
            up.file_field = name;
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

const WRITE_BLOCK: usize = 1 << 20;

/// A file of a multipart upload streamed to disk under a numbered name (the sender's file
/// name may identify a patient, so it only lives in memory to match the manifest; slide uploads
/// are then laid out under names of ours by `slides::ingest::arrange_uploads`).
pub struct SavedFile {
    pub field: String,
    pub file_name: String,
    pub path: std::path::PathBuf,
    pub size: u64,
}

/// Streams every file part into `dir` (a [`crate::tmp::PrivateDir`]: owner-only, removed when
/// the request ends unless handed on), keeping the small text fields; stops with a clear error
/// once the files together pass `limit` bytes.
pub async fn save_to_dir(
    mut payload: Multipart,
    dir: &std::path::Path,
    limit: u64,
) -> Result<(HashMap<String, String>, Vec<SavedFile>), Error> {
    use std::io::Write;
    let io = |e: std::io::Error| Error::Internal(anyhow::anyhow!("saving the upload: {e}"));
    let (mut fields, mut files, mut total) = (HashMap::new(), Vec::new(), 0u64);
    while let Some(part) = payload.next().await {
        let mut part = part.map_err(|e| Error::invalid("files", format!("the upload could not be read: {e}")))?;
        let field = part.content_disposition().and_then(|d| d.get_name()).unwrap_or_default().to_string();
        let file_name = part.content_disposition().and_then(|d| d.get_filename()).map(str::to_string);
        match file_name {
            Some(name) if !name.is_empty() => {
                let path = dir.join(format!("{:04}.upload", files.len()));
                let mut out = crate::tmp::create_private_file(&path).map_err(io)?;
                let (mut size, mut buf) = (0u64, Vec::with_capacity(WRITE_BLOCK));
                loop {
                    let chunk = part.next().await;
                    if let Some(chunk) = &chunk {
                        let chunk = chunk
                            .as_ref()
                            .map_err(|e| Error::invalid("files", format!("the upload could not be read: {e}")))?;
                        size += chunk.len() as u64;
                        total += chunk.len() as u64;
                        if total > limit {
                            return Err(Error::invalid(
                                "files",
                                format!("the upload is over the limit of {} MB", limit / (1024 * 1024)),
                            ));
                        }
                        buf.extend_from_slice(chunk);
                    }
                    // Slides are large: the disk writes go to the blocking pool, a block at a time,
                    // so the async workers keep serving other requests.
                    if buf.len() >= WRITE_BLOCK || (chunk.is_none() && !buf.is_empty()) {
                        let block = std::mem::replace(&mut buf, Vec::with_capacity(WRITE_BLOCK));
                        out = actix_web::web::block(move || out.write_all(&block).map(|()| out))
                            .await
                            .map_err(|e| Error::Internal(anyhow::anyhow!("saving the upload: {e}")))?
                            .map_err(io)?;
                    }
                    if chunk.is_none() {
                        break;
                    }
                }
                files.push(SavedFile { field, file_name: name, path, size });
            }
            Some(_) => while part.next().await.is_some() {},
            None => {
                if fields.len() >= 32 {
                    return Err(Error::invalid("files", "the form has too many fields"));
                }
                let mut buf = Vec::new();
                while let Some(chunk) = part.next().await {
                    let chunk =
                        chunk.map_err(|e| Error::invalid("files", format!("the upload could not be read: {e}")))?;
                    if buf.len() + chunk.len() > 64 * 1024 {
                        return Err(Error::invalid(&field, "this form field is too long"));
                    }
                    buf.extend_from_slice(&chunk);
                }
                fields.insert(field, String::from_utf8_lossy(&buf).to_string());
            }
        }
    }
    Ok((fields, files))
}
