//! STUN, TURN and channel messages from clients and peers, in any order, into the relay's core.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    classroom_signaling::turn::exercise(data);
});
