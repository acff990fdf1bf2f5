//! Listing a Harbor's repositories where it refuses `_catalog` (to every
//! account but its admins), through its own API, as the seeds'
//! Harbor-to-Harbor migration walks it: `GET /api/v2.0/projects` (paged),
//! then `GET /api/v2.0/projects/<p>/repositories` (paged) for each project.

use crate::error::Result;
use crate::remote::client::Client;
use crate::remote::error::RemoteError;

/// Entries per page of Harbor's API (at most 100 there).
fn page_size() -> usize {
    crate::remote::api::page_size().min(100)
}

/// Every page of a Harbor API listing: the `name` of each entry; `None`
/// if the first page is not a Harbor answer.
fn names(client: &Client, path: &str) -> Result<Option<Vec<String>>> {
    let size = page_size();
    let mut out = Vec::new();
    for page in 1..100_000 {
        let url = format!("{path}?page={page}&page_size={size}");
        let r = client.retrying(|| {
            let r = client.get_with_basic(&url, &[("accept", "application/json")])?;
            match r.status {
                s if s >= 500 || s == 429 => {
                    Err(RemoteError::status("GET", &client.url(&url), &r).into_error())
                }
                _ => Ok(r),
            }
        })?;
        if r.status != 200 {
            if page == 1 {
                return Ok(None);
            }
            return Err(RemoteError::status("GET", &client.url(&url), &r).into_error());
        }
        let Ok(serde_json::Value::Array(entries)) = serde_json::from_slice(&r.body) else {
            if page == 1 {
                return Ok(None);
            }
            return Err(RemoteError::Protocol {
                url: client.url(&url),
                message: "Harbor's API answered something that is not a list".into(),
            }
            .into_error());
        };
        let n = entries.len();
        out.extend(
            entries
                .iter()
                .filter_map(|e| e.get("name").and_then(|v| v.as_str()).map(str::to_string)),
        );
        if n < size {
            break;
        }
    }
    Ok(Some(out))
}

/// The repositories of the project `namespace` starts with (of every
/// project when it is empty), or `None` when this is not a Harbor.
pub fn repositories(client: &Client, namespace: &str) -> Result<Option<Vec<String>>> {
    let projects = match namespace.split('/').next().filter(|p| !p.is_empty()) {
        Some(p) => vec![p.to_string()],
        None => match names(client, "/api/v2.0/projects")? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    let mut out = Vec::new();
    for p in projects {
        match names(client, &format!("/api/v2.0/projects/{p}/repositories"))? {
            Some(v) => out.extend(v),
            None if namespace.is_empty() => {}
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}
