"""waitress-rs: the waitress WSGI server on a Rust core."""
