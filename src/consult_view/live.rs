//! The live side of the consult view: the items stored now, handed to every open page whose scope
//! (a consult, or a gateway) holds them, as server-sent events. A page that fell behind, or a feed
//! that may have missed items, tells the page to load its history again.

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Items a slow page may fall behind by before it is told to reload.
const BACKLOG: usize = 4096;

/// What a page shows: one consult, or one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Consult(String),
    Gateway { site: String, gw: String },
}

impl Scope {
    pub fn holds(&self, site: &str, gw: &str, consult: Option<&str>) -> bool {
        match self {
            Scope::Consult(c) => consult == Some(c.as_str()),
            Scope::Gateway { site: s, gw: g } => s == site && g == gw,
        }
    }
}

/// A page's scope as its requests say it: `consult=ID`, or `site=S&gw=G`.
#[derive(Debug, serde::Deserialize)]
pub struct ScopeQuery {
    consult: Option<String>,
    site: Option<String>,
    gw: Option<String>,
}

impl ScopeQuery {
    pub fn scope(self) -> Option<Scope> {
        match (self.consult, self.site, self.gw) {
            (Some(c), None, None) => Some(Scope::Consult(c)),
            (None, Some(site), Some(gw)) => Some(Scope::Gateway { site, gw }),
            _ => None,
        }
    }
}

/// One item for the pages: where it is from, and its JSON.
#[derive(Debug)]
pub struct Live {
    pub site: String,
    pub gw: String,
    pub consult: Option<String>,
    pub json: String,
}

#[derive(Debug, Clone)]
pub enum FeedEvent {
    Item(Arc<Live>),
    /// Items may have been missed: pages load their history again.
    Reset,
}

/// The items of the moment, and which scopes open pages watch.
pub struct LiveFeed {
    tx: broadcast::Sender<FeedEvent>,
    watching: Mutex<HashMap<Scope, usize>>,
    /// True once the service stops: every page's stream ends (a server's graceful shutdown
    /// waits for its responses, and a page's stream would otherwise never end).
    closed: tokio::sync::watch::Sender<bool>,
}

/// Keeps a scope watched while a page's stream is open.
pub struct Watching {
    feed: Arc<LiveFeed>,
    scope: Scope,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut w = self.feed.watching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = w.get_mut(&self.scope) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.scope);
            }
        }
    }
}

impl LiveFeed {
    pub fn new() -> Arc<LiveFeed> {
        Arc::new(LiveFeed {
            tx: broadcast::channel(BACKLOG).0,
            watching: Mutex::default(),
            closed: tokio::sync::watch::channel(false).0,
        })
    }

    /// Ends every page's stream, and any opened later at once (the service is stopping).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    pub fn send(&self, e: FeedEvent) {
        let _ = self.tx.send(e);
    }

    /// The scopes open pages watch now.
    pub fn watched(&self) -> Vec<Scope> {
        self.watching.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// The live stream of a page showing `scope`, of the items `allowed` lets its viewer see.
    pub fn stream(self: &Arc<Self>, scope: Scope, allowed: impl Fn(&Live) -> bool + Send + Sync + 'static) -> Response {
        *self.watching.lock().unwrap_or_else(|p| p.into_inner()).entry(scope.clone()).or_default() += 1;
        let watching = Watching { feed: self.clone(), scope };
        let rx = self.tx.subscribe();
        let closed = self.closed.subscribe();
        let stream =
            futures::stream::unfold((rx, watching, allowed, closed), |(mut rx, w, allowed, mut closed)| async move {
                loop {
                    let received = tokio::select! {
                        _ = closed.wait_for(|c| *c) => return None,
                        r = rx.recv() => r,
                    };
                    let event = match received {
                        Ok(FeedEvent::Item(item)) => {
                            if !w.scope.holds(&item.site, &item.gw, item.consult.as_deref()) || !allowed(&item) {
                                continue;
                            }
                            Event::default().event("item").data(item.json.as_str())
                        }
                        Ok(FeedEvent::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            Event::default().event("reload").data("{}")
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    return Some((Ok::<_, std::convert::Infallible>(event), (rx, w, allowed, closed)));
                }
            });
        Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_holds_its_consult_or_its_gateway() {
        let c = Scope::Consult("C1".into());
        assert!(c.holds("s", "g", Some("C1")) && !c.holds("s", "g", Some("C2")) && !c.holds("s", "g", None));
        let g = Scope::Gateway { site: "s".into(), gw: "g".into() };
        assert!(g.holds("s", "g", None) && g.holds("s", "g", Some("C1")) && !g.holds("s", "h", None));
    }

    #[tokio::test]
    async fn a_scope_is_watched_while_a_page_is_open() {
        let feed = LiveFeed::new();
        let page = feed.stream(Scope::Consult("C1".into()), |_| true);
        assert_eq!(feed.watched(), vec![Scope::Consult("C1".into())]);
        drop(page);
        assert!(feed.watched().is_empty());
    }

    #[tokio::test]
    async fn closing_the_feed_ends_every_pages_stream() {
        let feed = LiveFeed::new();
        let page = feed.stream(Scope::Consult("C1".into()), |_| true);
        let body = tokio::spawn(axum::body::to_bytes(page.into_body(), usize::MAX));
        feed.close();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), body).await;
        assert!(matches!(ended, Ok(Ok(Ok(_)))), "{ended:?}");
        // A page opened after the close gets a stream that ends at once.
        let late = feed.stream(Scope::Consult("C1".into()), |_| true);
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            axum::body::to_bytes(late.into_body(), usize::MAX),
        )
        .await;
        assert!(matches!(ended, Ok(Ok(_))), "{ended:?}");
    }
}
