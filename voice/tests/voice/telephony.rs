//! The telephony wire layer (`kraliki_voice::telephony`): media-stream messages, the reorder
//! buffer, TwiML, the REST clients against the fake APIs, webhook mapping, the fake media
//! clients, and the Twilio / Telnyx SDKs as oracles.

mod fakes;
mod media;
mod oracle;
mod reorder;
mod rest;
mod twiml;
mod webhooks;

use std::time::Duration;

/// Generous: local sockets, but CI machines are slow.
const WAIT: Duration = Duration::from_secs(10);

/// `len` bytes of a μ-law test pattern (a ramp, so order and loss show).
fn ulaw_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
