//! Typed access to one tenant's documents (`ConfigStore` docs), for the
//! admin service and the gateway's escalation engine alike.

use crate::error::{ApiError, ErrorKind};
use crate::model::Doc;
use crate::seams::ConfigStore;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How often `update` re-reads before giving up on a contended document.
const UPDATE_ATTEMPTS: usize = 64;

pub struct Repo<'a> {
    pub store: &'a dyn ConfigStore,
    pub tenant: &'a str,
}

fn corrupt(kind: &str, id: &str, e: serde_json::Error) -> ApiError {
    ApiError::new(ErrorKind::Internal, "internal", format!("{kind}/{id}: {e}"))
}

impl<'a> Repo<'a> {
    pub fn new(store: &'a dyn ConfigStore, tenant: &'a str) -> Self {
        Self { store, tenant }
    }

    pub async fn get<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>, ApiError> {
        match self.store.doc(self.tenant, kind, id).await? {
            Some(d) => serde_json::from_value(d.body).map(Some).map_err(|e| corrupt(kind, id, e)),
            None => Ok(None),
        }
    }

    /// The document, or 404 naming `what`.
    pub async fn need<T: DeserializeOwned>(&self, kind: &str, id: &str, what: &str) -> Result<T, ApiError> {
        self.get(kind, id).await?.ok_or_else(|| ApiError::not_found(what, "id"))
    }

    pub async fn list<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>, ApiError> {
        self.store.docs(self.tenant, kind).await?.into_iter().map(|d| serde_json::from_value(d.body).map_err(|e| corrupt(kind, &d.id, e))).collect()
    }

    /// One page of a kind (filtered, sorted, windowed by the store) and how
    /// many match in all.
    pub async fn page<T: DeserializeOwned>(&self, kind: &str, query: &crate::doc_query::DocQuery) -> Result<(Vec<T>, u64), ApiError> {
        let page = self.store.docs_page(self.tenant, kind, query).await?;
        let items = page.docs.into_iter().map(|d| serde_json::from_value(d.body).map_err(|e| corrupt(kind, &d.id, e))).collect::<Result<_, _>>()?;
        Ok((items, page.total))
    }

    fn doc<T: Serialize>(&self, kind: &str, id: &str, body: &T) -> Result<Doc, ApiError> {
        let body = serde_json::to_value(body).map_err(|e| corrupt(kind, id, e))?;
        Ok(Doc { tenant: self.tenant.into(), kind: kind.into(), id: id.into(), body, updated_at: crate::now_ms() })
    }

    pub async fn put<T: Serialize>(&self, kind: &str, id: &str, body: &T) -> Result<(), ApiError> {
        Ok(self.store.put_doc(&self.doc(kind, id, body)?).await?)
    }

    /// Insert unless the id exists; false when it does.
    pub async fn create<T: Serialize>(&self, kind: &str, id: &str, body: &T) -> Result<bool, ApiError> {
        Ok(self.store.create_doc(&self.doc(kind, id, body)?).await?)
    }

    /// Read, change and write back a document without losing a concurrent
    /// writer's change: the write is a compare-and-set on `updated_at`, and
    /// `change` runs again on a fresh read when another writer got there
    /// first (an error from it stops and writes nothing). None when there is
    /// no such document.
    pub async fn update<T: Serialize + DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
        mut change: impl FnMut(&mut T) -> Result<(), ApiError>,
    ) -> Result<Option<T>, ApiError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(cur) = self.store.doc(self.tenant, kind, id).await? else {
                return Ok(None);
            };
            let mut body: T = serde_json::from_value(cur.body).map_err(|e| corrupt(kind, id, e))?;
            change(&mut body)?;
            let mut next = self.doc(kind, id, &body)?;
            next.updated_at = next.updated_at.max(cur.updated_at + 1);
            if self.store.replace_doc(&next, cur.updated_at).await? {
                return Ok(Some(body));
            }
        }
        Err(ApiError::new(ErrorKind::Unavailable, "contended", format!("{kind}/{id} is being changed by others; try again")))
    }

    pub async fn delete(&self, kind: &str, id: &str) -> Result<bool, ApiError> {
        Ok(self.store.delete_doc(self.tenant, kind, id).await?)
    }

    /// The next free human number with this prefix ("P000001"), claimed once
    /// even when several admins create at the same moment.
    pub async fn next_number(&self, prefix: &str) -> Result<String, ApiError> {
        let kind = format!("number.{prefix}");
        let mut n = self.store.docs(self.tenant, &kind).await?.len() + 1;
        loop {
            let number = format!("{prefix}{n:06}");
            if self.create(&kind, &number, &serde_json::json!({})).await? {
                return Ok(number);
            }
            n += 1;
        }
    }
}

/// A fresh document id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
