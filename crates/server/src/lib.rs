//! waitress-server: the tokio driver of waitress-rs (being written; see issue 3).
