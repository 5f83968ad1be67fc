//! `[storage]` → [`Storage`]: the asset folder (default) or an S3-compatible bucket.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::Raw;
use crate::storage::s3::{Credentials, S3Settings};

/// Default chunk-cache budget of the bucket backend (sample data kept in memory).
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;
/// Default chunk size: the unit of sample-data GETs.
pub const DEFAULT_CHUNK_BYTES: u64 = 256 << 10;
/// Default deadline of one storage read.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

/// Where asset files come from.
#[derive(Debug, Clone)]
pub enum Storage {
    /// The asset folder (`Config::assets_dir`).
    Folder,
    /// A bucket.
    S3(S3Settings),
}

/// Validates the backend fields of `[storage]`; credentials come from `access_key_id` +
/// `secret_access_key`, or else from the standard `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
/// (and `AWS_SESSION_TOKEN`) environment variables.
pub(super) fn build(raw: &Raw, env: &dyn Fn(&str) -> Option<String>, errors: &mut Vec<String>) -> Storage {
    let st = &raw.storage;
    match st.backend.as_deref().unwrap_or("folder") {
        "folder" => {
            for (field, set) in [
                ("bucket", st.bucket.is_some()),
                ("prefix", st.prefix.is_some()),
                ("endpoint", st.endpoint.is_some()),
                ("region", st.region.is_some()),
                ("access_key_id", st.access_key_id.is_some()),
                ("secret_access_key", st.secret_access_key.is_some()),
                ("cache_bytes", st.cache_bytes.is_some()),
                ("chunk_bytes", st.chunk_bytes.is_some()),
                ("timeout_ms", st.timeout_ms.is_some()),
            ] {
                if set {
                    errors.push(format!(
                        "storage.{field}: belongs to backend = \"s3\" (the backend is the asset folder)"
                    ));
                }
            }
            Storage::Folder
        }
        "s3" => s3(raw, env, errors).map_or(Storage::Folder, Storage::S3),
        other => {
            errors.push(format!("storage.backend: '{other}' is not \"folder\" or \"s3\""));
            Storage::Folder
        }
    }
}

fn s3(raw: &Raw, env: &dyn Fn(&str) -> Option<String>, errors: &mut Vec<String>) -> Option<S3Settings> {
    let st = &raw.storage;
    let before = errors.len();
    if st.dir.is_some() {
        errors.push("storage.dir: belongs to the folder backend, not \"s3\"".to_owned());
    }
    let bucket = st.bucket.clone().unwrap_or_default();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        errors.push(format!("storage.bucket: '{bucket}' is not an S3 bucket name (3-63 of a-z 0-9 . -)"));
    }
    let mut prefix = st.prefix.clone().unwrap_or_default().trim_start_matches('/').to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    if prefix.split('/').any(|p| p == ".." || p == ".") {
        errors.push(format!("storage.prefix: '{prefix}' has a '.' or '..' part"));
    }
    if let Some(ep) = &st.endpoint {
        let ok = (ep.starts_with("http://") || ep.starts_with("https://")) && !ep.contains('?') && !ep.contains('@');
        if !ok {
            errors.push("storage.endpoint: must be an http:// or https:// URL without credentials or query".to_owned());
        }
    }
    let region = st.region.clone().or_else(|| env("AWS_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
    let credentials = match (&st.access_key_id, &st.secret_access_key) {
        (Some(id), Some(secret)) => Some(Credentials { key_id: id.clone(), secret: secret.clone(), token: None }),
        (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(Credentials { key_id: id, secret, token: env("AWS_SESSION_TOKEN") }),
            _ => None,
        },
        _ => {
            errors.push("storage: access_key_id and secret_access_key go together (values not shown)".to_owned());
            None
        }
    };
    let cache_bytes = st.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES);
    if cache_bytes > 1 << 40 {
        errors.push(format!("storage.cache_bytes: {cache_bytes} is above 1 TiB"));
    }
    let chunk_bytes = st.chunk_bytes.unwrap_or(DEFAULT_CHUNK_BYTES);
    if !(4096..=64 << 20).contains(&chunk_bytes) {
        errors.push(format!("storage.chunk_bytes: {chunk_bytes} is outside 4096..=67108864"));
    }
    let timeout_ms = st.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(50..=60_000).contains(&timeout_ms) {
        errors.push(format!("storage.timeout_ms: {timeout_ms} is outside 50..=60000"));
    }
    (errors.len() == before).then(|| S3Settings {
        bucket,
        prefix,
        endpoint: st.endpoint.clone(),
        region,
        credentials,
        cache_bytes,
        chunk_bytes,
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// The folder of the folder backend.
pub(super) fn folder(raw: &Raw, overridden: Option<PathBuf>) -> PathBuf {
    overridden.or(raw.storage.dir.clone()).unwrap_or_else(|| PathBuf::from("assets"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> (Storage, Vec<String>) {
        let raw: Raw = toml::from_str(text).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |var: &str| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone());
        let mut errors = Vec::new();
        (build(&raw, &lookup, &mut errors), errors)
    }

    #[test]
    fn the_folder_stays_the_default() {
        let (s, e) = parse("[storage]\ndir = \"media\"\n", &[]);
        assert!(matches!(s, Storage::Folder) && e.is_empty(), "{e:?}");
        let (_, e) = parse("[storage]\nbucket = \"media\"\n", &[]);
        assert!(e.iter().any(|e| e.starts_with("storage.bucket: belongs to backend")), "{e:?}");
    }

    #[test]
    fn s3_settings_and_credentials_from_the_environment() {
        let text =
            "[storage]\nbackend = \"s3\"\nbucket = \"media\"\nprefix = \"vod\"\nendpoint = \"http://127.0.0.1:9000\"\n";
        let (s, e) = parse(text, &[("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")]);
        let Storage::S3(s) = s else { panic!("{e:?}") };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str(), s.region.as_str()), ("media", "vod/", "us-east-1"));
        assert_eq!(s.credentials.as_ref().map(|c| c.key_id.as_str()), Some("id"));
        assert_eq!((s.cache_bytes, s.chunk_bytes), (DEFAULT_CACHE_BYTES, DEFAULT_CHUNK_BYTES));
        assert!(!format!("{s:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn s3_errors_are_all_reported_without_the_secret() {
        let text = "[storage]\nbackend = \"s3\"\nbucket = \"No_Such\"\nendpoint = \"ftp://x\"\n\
                    secret_access_key = \"s3cr3t-value\"\nchunk_bytes = 10\ntimeout_ms = 0\n";
        let raw: Raw = toml::from_str(text).unwrap();
        assert!(!format!("{raw:?}").contains("s3cr3t-value"));
        let (_, e) = parse(text, &[]);
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e.iter().all(|e| !e.contains("s3cr3t-value")), "{e:?}");
        let (_, e) = parse("[storage]\nbackend = \"nfs\"\n", &[]);
        assert!(e.iter().any(|e| e.contains("'nfs'")), "{e:?}");
    }
}
