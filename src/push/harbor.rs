//! Harbor keeps repositories in projects that must exist before a push. A
//! push into a missing project is refused with an unhelpful 401 or 403 by
//! some Harbor versions; when a push is denied, ask Harbor's API whether
//! the project exists, to say "create the project" rather than "denied".

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Error;
use crate::remote::client::Client;
use crate::remote::error::missing_project;
use crate::remote::error::RemoteError;

/// Answers per project, asked once per run.
#[derive(Default)]
pub struct Projects {
    missing: Mutex<HashMap<String, Option<String>>>,
}

impl Projects {
    /// Turns a denial into "project missing" when Harbor says the project
    /// does not exist; any other error is returned as it is.
    pub fn explain(&self, client: &Client, e: Error) -> Error {
        let Error::Remote(RemoteError::Denied {
            project: Some(project),
            host,
            ..
        }) = e.root()
        else {
            return e;
        };
        let known = self
            .missing
            .lock()
            .expect("not poisoned")
            .get(project)
            .cloned();
        let message = match known {
            Some(m) => m,
            None => {
                let m = ask(client, project);
                self.missing
                    .lock()
                    .expect("not poisoned")
                    .insert(project.clone(), m.clone());
                m
            }
        };
        match message {
            Some(message) => {
                let missing = Error::Remote(RemoteError::ProjectMissing {
                    host: host.clone(),
                    project: project.clone(),
                    message,
                });
                match e.image() {
                    Some(i) => missing.in_image(i),
                    None => missing,
                }
            }
            None => e,
        }
    }
}

/// Harbor's `GET /api/v2.0/projects/<name>` answers 404 with `project <name>
/// not found` for a missing project. Anything else (a plain registry's 404
/// page, 200, 401) says nothing.
fn ask(client: &Client, project: &str) -> Option<String> {
    let r = client
        .get_with_basic(
            &format!("/api/v2.0/projects/{project}"),
            &[
                ("x-is-resource-name", "true"),
                ("accept", "application/json"),
            ],
        )
        .ok()?;
    if r.status != 404 {
        return None;
    }
    let message = r.message();
    (missing_project(&message).as_deref() == Some(project)).then_some(message)
}
