//! Raw bytes into the head parser: a head or a ProtoError, never a panic, and never a
//! head longer than its input. Fed whole, then one byte at a time: same verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waitress_http::request::HeadParser;
use waitress_http::Limits;

fuzz_target!(|data: &[u8]| {
    let mut whole = HeadParser::new(Limits::default());
    let verdict = whole.parse(data);
    if let Ok(Some(head)) = &verdict {
        assert!(head.head_len() <= data.len());
    }
    let mut bytewise = HeadParser::new(Limits::default());
    let mut last = Ok(None);
    for end in 1..=data.len() {
        last = bytewise.parse(&data[..end]);
        if !matches!(last, Ok(None)) {
            break;
        }
    }
    if let (Ok(Some(a)), Ok(Some(b))) = (&verdict, &last) {
        assert_eq!(a.head_len(), b.head_len());
    }
    assert_eq!(verdict.is_err(), last.is_err());
});
