//! A byte stream through `Conn`, split where the first bytes say, with a response injected
//! whenever the machine pauses: events or a ProtoError, never a panic or unbounded growth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waitress_http::conn::{Conn, Event};
use waitress_http::Limits;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut conn = Conn::new(Limits::default());
    let mut out = Vec::new();
    for piece in stream.chunks(step) {
        conn.receive_data(piece);
        loop {
            match conn.next_event() {
                Err(err) => {
                    conn.send_error(&mut out, err, Some("waitress"), b"Thu, 01 Jan 1970 00:00:00 GMT");
                    return;
                }
                Ok(Event::Paused) => {
                    let _ = conn.start_response(&mut out, "200 OK", &[("Content-Length", "2")], Some("waitress"), b"Thu, 01 Jan 1970 00:00:00 GMT", false);
                    conn.send_data(&mut out, b"ok");
                    if !conn.end_response(&mut out).keep_alive {
                        return;
                    }
                }
                Ok(Event::NeedData) | Ok(Event::ConnectionClosed) => break,
                Ok(_) => {}
            }
        }
        assert!(conn.buffered() <= stream.len());
    }
});
