//! The connection the HTTP side (FHIR API, consult view) and the view's feed read through: one
//! client shared by every request, made again when PostgreSQL ended it (a restart, a failover, an
//! upgrade). One reconnection at a time, at most one a second: while PostgreSQL is away, requests
//! fail at once (503) instead of piling up connection attempts.

use crate::at_most::AtMostEvery;
use std::sync::{Arc, RwLock};
use tokio_postgres::Client;

pub struct Reads {
    url: String,
    client: RwLock<Arc<Client>>,
    /// Held while reconnecting.
    redial: tokio::sync::Mutex<AtMostEvery>,
}

impl Reads {
    pub fn new(url: &str, client: Client) -> Self {
        Reads {
            url: url.to_string(),
            client: RwLock::new(Arc::new(client)),
            redial: tokio::sync::Mutex::new(crate::db::redial()),
        }
    }

    fn current(&self) -> Arc<Client> {
        self.client.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The client: the current one while it is open; else a new one, when PostgreSQL answers
    /// (otherwise the closed one, whose queries fail at once).
    pub async fn get(&self) -> Arc<Client> {
        let current = self.current();
        if !current.is_closed() {
            return current;
        }
        // Someone else is reconnecting: no waiting behind them.
        let Ok(mut redial) = self.redial.try_lock() else { return current };
        let current = self.current();
        if !current.is_closed() || !redial.due(std::time::Instant::now()) {
            return current;
        }
        match crate::db::reconnect(&self.url).await {
            Ok(client) => {
                tracing::info!("PostgreSQL connection for reads made again");
                let client = Arc::new(client);
                *self.client.write().unwrap_or_else(|p| p.into_inner()) = client.clone();
                client
            }
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL connection for reads not made again");
                current
            }
        }
    }
}
