//! Raw bytes into the chunked decoder: data or a ProtoError, never a panic, never more
//! consumed than given, and the same decoded bytes for any split of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waitress_http::decode::ChunkedDecoder;
use waitress_http::Limits;

fn run(pieces: &[&[u8]]) -> (Vec<u8>, Option<waitress_http::ProtoError>, bool) {
    let mut dec = ChunkedDecoder::new(&Limits::default());
    let mut out = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            match dec.decode(input) {
                Err(err) => return (out, Some(err), false),
                Ok(step) => {
                    assert!(step.consumed <= input.len());
                    out.extend_from_slice(step.data);
                    input = &input[step.consumed..];
                    if step.done {
                        return (out, None, true);
                    }
                    if step.consumed == 0 && step.data.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    (out, None, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let at = usize::from(split) % (body.len() + 1);
    let whole = run(&[body]);
    let (a, b) = body.split_at(at);
    let halves = run(&[a, b]);
    assert_eq!(whole, halves);
});
