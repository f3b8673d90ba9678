pub fn routes() -> axum::Router<crate::http::AppState> {
    axum::Router::new()
}
