//! Telephony audio: G.711 μ-law ⇄ PCM16 and streaming integer-ratio resampling
//! (8 kHz ⇄ 16 kHz / 24 kHz for Gemini Live), plus PCM16 little-endian byte packing.
//!
//! μ-law uses the `audio-codec-algorithms` crate, whose tables come from the ITU-T G.191
//! reference tools. Its decoding matches every vector in `PROTOCOLS.md` and its encoding matches
//! every non-negative vector and all non-negative inputs of the bias-0x84 (`g711.c`) encoder
//! described there. For negative inputs G.191 encodes `!(x >> 2)` (one's complement) instead of
//! `|x|`, so it can land one step away (−100 → 0x73 rather than 0x72; both decode 4 away from
//! −100). `PROTOCOLS.md` allows that, so we use the reference crate rather than our own codec.
//!
//! Resampling is our own small polyphase FIR, see [`Resampler`].

use std::f64::consts::PI;

/// Sample rate of telephony μ-law (Twilio and Telnyx media streams).
pub const TELEPHONY_HZ: u32 = 8_000;
/// Sample rate Gemini Live expects for input audio.
pub const GEMINI_INPUT_HZ: u32 = 16_000;
/// Sample rate of Gemini Live output audio.
pub const GEMINI_OUTPUT_HZ: u32 = 24_000;
/// Duration of one media-stream frame.
pub const FRAME_MS: u32 = 20;
/// μ-law bytes (= samples) in one 20 ms telephony frame.
pub const ULAW_FRAME_BYTES: usize = frame_samples(TELEPHONY_HZ);

/// Samples of mono audio in one 20 ms frame at `rate_hz` (160 at 8 kHz, 320 at 16 kHz, 480 at 24 kHz).
pub const fn frame_samples(rate_hz: u32) -> usize {
    (rate_hz / 1000 * FRAME_MS) as usize
}

// ---------------------------------------------------------------------------------------------
// G.711 μ-law
// ---------------------------------------------------------------------------------------------

/// Decodes one μ-law byte.
#[inline]
pub fn decode_ulaw_sample(byte: u8) -> i16 {
    audio_codec_algorithms::decode_ulaw(byte)
}

/// Encodes one PCM16 sample as μ-law.
#[inline]
pub fn encode_ulaw_sample(sample: i16) -> u8 {
    audio_codec_algorithms::encode_ulaw(sample)
}

/// Decodes μ-law bytes to PCM16.
pub fn decode_ulaw(ulaw: &[u8]) -> Vec<i16> {
    let mut pcm = Vec::with_capacity(ulaw.len());
    decode_ulaw_into(ulaw, &mut pcm);
    pcm
}

/// Encodes PCM16 samples as μ-law.
pub fn encode_ulaw(pcm: &[i16]) -> Vec<u8> {
    let mut ulaw = Vec::with_capacity(pcm.len());
    encode_ulaw_into(pcm, &mut ulaw);
    ulaw
}

/// Appends the decoded samples to `out`, so a caller can reuse one buffer per call leg.
pub fn decode_ulaw_into(ulaw: &[u8], out: &mut Vec<i16>) {
    out.extend(ulaw.iter().map(|&b| decode_ulaw_sample(b)));
}

/// Appends the encoded bytes to `out`, so a caller can reuse one buffer per call leg.
pub fn encode_ulaw_into(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| encode_ulaw_sample(s)));
}

/// Decodes into an equally long slice, for fixed frame buffers.
///
/// # Panics
/// If the slices differ in length.
pub fn decode_ulaw_to_slice(ulaw: &[u8], out: &mut [i16]) {
    assert_eq!(ulaw.len(), out.len(), "μ-law input and PCM output lengths differ");
    for (o, &b) in out.iter_mut().zip(ulaw) {
        *o = decode_ulaw_sample(b);
    }
}

/// Encodes into an equally long slice, for fixed frame buffers.
///
/// # Panics
/// If the slices differ in length.
pub fn encode_ulaw_to_slice(pcm: &[i16], out: &mut [u8]) {
    assert_eq!(pcm.len(), out.len(), "PCM input and μ-law output lengths differ");
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = encode_ulaw_sample(s);
    }
}

// ---------------------------------------------------------------------------------------------
// PCM16 little-endian bytes (Gemini's `audio/pcm;rate=…` payloads)
// ---------------------------------------------------------------------------------------------

/// Appends the samples as signed 16-bit little-endian bytes.
pub fn pcm16_to_le_bytes(pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len() * 2);
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Appends the samples read from signed 16-bit little-endian bytes.
///
/// Returns `false`, after appending every whole sample, if a trailing odd byte was ignored,
/// so the caller can log a malformed payload without losing the rest.
pub fn pcm16_from_le_bytes(bytes: &[u8], out: &mut Vec<i16>) -> bool {
    let chunks = bytes.chunks_exact(2);
    let whole = chunks.remainder().is_empty();
    out.extend(chunks.map(|c| i16::from_le_bytes([c[0], c[1]])));
    whole
}

// ---------------------------------------------------------------------------------------------
// Resampling
// ---------------------------------------------------------------------------------------------

/// FIR taps per polyphase branch, i.e. the filter's span in low-rate samples (6 ms at 8 kHz).
pub const TAPS_PER_PHASE: usize = 48;
/// Cutoff (−6 dB point) as a fraction of the low rate: 3.7 kHz at 8 kHz.
const CUTOFF_OF_LOW_RATE: f64 = 0.4625;
/// Kaiser window β: ≈ 60 dB design stopband, well below μ-law's own ≈ 38 dB SNR.
const KAISER_BETA: f64 = 5.65;

/// A resampling ratio [`Resampler::new`] cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot resample {from_hz} Hz to {to_hz} Hz: the ratio must be an integer from 2 to 6 either way")]
pub struct UnsupportedRatio {
    pub from_hz: u32,
    pub to_hz: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// Streaming resampler for integer ratios (8 kHz ⇄ 16 kHz and 8 kHz ⇄ 24 kHz in practice).
///
/// One windowed-sinc low-pass, designed at the high rate: `TAPS_PER_PHASE × ratio − 1` taps
/// (95 for 3:1, 63 for 2:1, odd so the delay is a whole high-rate sample), Kaiser window
/// β = 5.65, cutoff (−6 dB) 0.4625 × the low rate. For 8 kHz that is 3.7 kHz: the telephone
/// band passes flat (−0.02 dB at 3.4 kHz) and what lies above the low rate's 4 kHz Nyquist
/// frequency, which would image up or alias down, is cut by ≥ 50 dB (≥ 65 dB from 4.2 kHz).
/// The tests check these figures. Upsampling runs it as `ratio` polyphase branches of [`TAPS_PER_PHASE`] taps (no
/// multiplications by stuffed zeros); downsampling evaluates it only at kept outputs.
///
/// Delay: `TAPS_PER_PHASE × ratio / 2 − 1` high-rate samples (3 ms minus one sample).
/// The filter history persists across [`process`](Self::process) calls, so feeding 20 ms
/// frames gives exactly the same samples as feeding the whole stream at once: no clicks at
/// frame boundaries. Call [`reset`](Self::reset) when the stream restarts (e.g. after a
/// barge-in `clear`) so old audio does not bleed into new.
#[derive(Debug, Clone)]
pub struct Resampler {
    direction: Direction,
    ratio: usize,
    /// Up: `ratio` branches of `TAPS_PER_PHASE` taps; down: the whole filter. Stored
    /// time-reversed so each output is a plain dot product with the input window.
    coeffs: Vec<f32>,
    /// Filter history (the last `window − 1` inputs) followed by the input being processed.
    buf: Vec<f32>,
    /// Downsampling only: end (exclusive) in `buf` of the next output's input window.
    next_end: usize,
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz`; one must be 2–6 times the other.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, UnsupportedRatio> {
        let err = UnsupportedRatio { from_hz, to_hz };
        let (direction, ratio) = match (from_hz, to_hz) {
            (0, _) | (_, 0) => return Err(err),
            (f, t) if t > f && t % f == 0 => (Direction::Up, t / f),
            (f, t) if f > t && f % t == 0 => (Direction::Down, f / t),
            _ => return Err(err),
        };
        if !(2..=6).contains(&ratio) {
            return Err(err);
        }
        let ratio = ratio as usize;
        let proto = lowpass(ratio);
        let (coeffs, window) = match direction {
            Direction::Up => {
                // Zero-stuffing divides the level by `ratio`; the filter gain restores it.
                // Tap `k·ratio + p` belongs to branch `p`; the padded last tap is zero.
                let gain = ratio as f64;
                let mut coeffs = Vec::with_capacity(TAPS_PER_PHASE * ratio);
                for p in 0..ratio {
                    coeffs.extend((0..TAPS_PER_PHASE).rev().map(|k| {
                        let tap = proto.get(k * ratio + p).copied().unwrap_or(0.0);
                        (tap * gain) as f32
                    }));
                }
                (coeffs, TAPS_PER_PHASE)
            }
            Direction::Down => (proto.iter().rev().map(|&t| t as f32).collect(), proto.len()),
        };
        let mut buf = Vec::with_capacity(window - 1 + frame_samples(from_hz) * 4);
        buf.resize(window - 1, 0.0);
        Ok(Self { direction, ratio, coeffs, buf, next_end: window })
    }

    /// Input sample rate divided by output sample rate, or its inverse, whichever is whole.
    pub fn ratio(&self) -> usize {
        self.ratio
    }

    /// Whether this resampler raises the sample rate.
    pub fn is_upsampler(&self) -> bool {
        self.direction == Direction::Up
    }

    /// Filter delay in output samples (fractional when downsampling).
    pub fn delay(&self) -> f64 {
        let high_rate_delay = (TAPS_PER_PHASE * self.ratio / 2 - 1) as f64;
        match self.direction {
            Direction::Up => high_rate_delay,
            Direction::Down => high_rate_delay / self.ratio as f64,
        }
    }

    fn window(&self) -> usize {
        match self.direction {
            Direction::Up => TAPS_PER_PHASE,
            Direction::Down => self.coeffs.len(),
        }
    }

    /// Resamples `input` and appends the result to `out`.
    ///
    /// Upsampling appends exactly `input.len() × ratio` samples. Downsampling appends one
    /// sample per `ratio` inputs, carrying the remainder to the next call (a 20 ms frame
    /// always divides evenly).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let window = self.window();
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        match self.direction {
            Direction::Up => {
                out.reserve(input.len() * self.ratio);
                for end in window..=self.buf.len() {
                    let x = &self.buf[end - window..end];
                    out.extend(self.coeffs.chunks_exact(TAPS_PER_PHASE).map(|branch| to_i16(dot(branch, x))));
                }
            }
            Direction::Down => {
                out.reserve(input.len() / self.ratio + 1);
                let mut end = self.next_end;
                while end <= self.buf.len() {
                    out.push(to_i16(dot(&self.coeffs, &self.buf[end - window..end])));
                    end += self.ratio;
                }
                self.next_end = end - input.len();
            }
        }
        // Keep only the history the next call needs; the allocation is reused.
        self.buf.drain(..self.buf.len() - (window - 1));
    }

    /// Pushes out the audio still inside the filter by feeding silence until the last input
    /// has left it (≈ 6 ms), then resets. Use at the end of an utterance so its end is not cut.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let pending = self.window() - 1;
        let zeros = match self.direction {
            Direction::Up => pending,
            Direction::Down => pending.div_ceil(self.ratio) * self.ratio,
        };
        self.process(&vec![0; zeros], out);
        self.reset();
    }

    /// Forgets the filter history, as if newly created.
    pub fn reset(&mut self) {
        let window = self.window();
        self.buf.clear();
        self.buf.resize(window - 1, 0.0);
        self.next_end = window;
    }
}

/// Kaiser-windowed sinc low-pass at the high rate, unit DC gain, `TAPS_PER_PHASE × ratio − 1` taps.
fn lowpass(ratio: usize) -> Vec<f64> {
    let len = TAPS_PER_PHASE * ratio - 1;
    let center = (len - 1) as f64 / 2.0;
    let fc = CUTOFF_OF_LOW_RATE / ratio as f64; // cycles per high-rate sample
    let i0_beta = bessel_i0(KAISER_BETA);
    let mut taps: Vec<f64> = (0..len)
        .map(|n| {
            let t = n as f64 - center;
            let sinc = if t == 0.0 { 2.0 * fc } else { (2.0 * PI * fc * t).sin() / (PI * t) };
            let r = t / center;
            sinc * bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.iter_mut().for_each(|t| *t /= sum);
    taps
}

/// Modified Bessel function of the first kind, order 0, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-16 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums: a single running sum is a chain the compiler may not reorder,
    // eight of them vectorize (the resampler was the media benchmark's hottest function).
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline]
fn to_i16(x: f32) -> i16 {
    // Float-to-int `as` saturates; rounding avoids a bias towards zero.
    x.round() as i16
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_every_protocol_vector_exactly() {
        let vectors: [(u8, i16); 8] = [
            (0xFF, 0),
            (0x7F, 0),
            (0xFE, 8),
            (0x7E, -8),
            (0x80, 32124),
            (0x00, -32124),
            (0xEA, 212),
            (0xD5, 716),
        ];
        for (byte, pcm) in vectors {
            assert_eq!(decode_ulaw_sample(byte), pcm, "decode {byte:#04x}");
        }
        let (bytes, pcm): (Vec<u8>, Vec<i16>) = vectors.into_iter().unzip();
        assert_eq!(decode_ulaw(&bytes), pcm);
    }

    #[test]
    fn encodes_every_non_negative_protocol_vector_exactly() {
        let vectors: [(i16, u8); 6] =
            [(0, 0xFF), (8, 0xFE), (100, 0xF2), (1000, 0xCE), (4096, 0xAF), (32767, 0x80)];
        for (pcm, byte) in vectors {
            assert_eq!(encode_ulaw_sample(pcm), byte, "encode {pcm}");
        }
        let (pcm, bytes): (Vec<i16>, Vec<u8>) = vectors.into_iter().unzip();
        assert_eq!(encode_ulaw(&pcm), bytes);
    }

    #[test]
    fn negative_protocol_vectors_are_exact_or_one_step_away() {
        // G.191 rounds some negative inputs to the neighbouring code (see the module docs).
        for (pcm, byte) in [(-100i16, 0x72u8), (-1000, 0x4E), (-32768, 0x00)] {
            let got = encode_ulaw_sample(pcm);
            assert!(got.abs_diff(byte) <= 1, "encode {pcm}: {got:#04x} vs {byte:#04x}");
        }
        assert_eq!(encode_ulaw_sample(-1000), 0x4E);
        assert_eq!(encode_ulaw_sample(-32768), 0x00);
    }

    /// The bias-0x84 encoder from PROTOCOLS.md, written out to check the crate against it.
    fn reference_encode(x: i16) -> u8 {
        let sign: u8 = if x < 0 { 0x80 } else { 0 };
        let m = (i32::from(x).unsigned_abs().min(32635) + 0x84) as u16;
        let exp = (15 - m.leading_zeros() as u16) - 7;
        let mant = (m >> (exp + 3)) & 0xF;
        !(sign | (exp << 4) as u8 | mant as u8)
    }

    #[test]
    fn encoding_matches_the_protocol_encoder_for_all_non_negative_inputs() {
        for x in 0..=i16::MAX {
            assert_eq!(encode_ulaw_sample(x), reference_encode(x), "x = {x}");
        }
        // ...and differs by at most one step for negative ones.
        for x in i16::MIN..0 {
            assert!(encode_ulaw_sample(x).abs_diff(reference_encode(x)) <= 1, "x = {x}");
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_quantization_step_for_all_i16() {
        // μ-law steps double per segment; half a step is at most (|x| + 0x84) / 32.
        for x in i16::MIN..=i16::MAX {
            let y = decode_ulaw_sample(encode_ulaw_sample(x));
            let err = (i32::from(x) - i32::from(y)).abs();
            let bound = (i32::from(x).abs() + 0x84) / 32;
            assert!(err <= bound, "x = {x}, decoded {y}, error {err} > {bound}");
        }
    }

    #[test]
    fn every_byte_survives_decode_then_encode() {
        // 0x7F (−0) re-encodes as 0xFF (+0): both are silence.
        for b in 0..=u8::MAX {
            let back = encode_ulaw_sample(decode_ulaw_sample(b));
            assert!(back == b || (b == 0x7F && back == 0xFF), "{b:#04x} → {back:#04x}");
        }
    }

    #[test]
    fn slice_and_extend_variants_agree() {
        let bytes: Vec<u8> = (0..=u8::MAX).collect();
        let mut pcm = vec![0i16; bytes.len()];
        decode_ulaw_to_slice(&bytes, &mut pcm);
        assert_eq!(pcm, decode_ulaw(&bytes));
        let mut extended = vec![7i16];
        decode_ulaw_into(&bytes, &mut extended);
        assert_eq!(extended[0], 7);
        assert_eq!(extended[1..], pcm[..]);

        let mut back = vec![0u8; pcm.len()];
        encode_ulaw_to_slice(&pcm, &mut back);
        assert_eq!(back, encode_ulaw(&pcm));
        let mut appended = Vec::new();
        encode_ulaw_into(&pcm, &mut appended);
        assert_eq!(appended, back);
    }

    #[test]
    fn pcm16_le_bytes_round_trip() {
        let pcm = [0i16, 1, -1, 256, i16::MIN, i16::MAX];
        let mut bytes = Vec::new();
        pcm16_to_le_bytes(&pcm, &mut bytes);
        assert_eq!(&bytes[..6], &[0, 0, 1, 0, 0xFF, 0xFF]);
        let mut back = Vec::new();
        assert!(pcm16_from_le_bytes(&bytes, &mut back));
        assert_eq!(back, pcm);
        bytes.push(9);
        back.clear();
        assert!(!pcm16_from_le_bytes(&bytes, &mut back), "odd trailing byte is reported");
        assert_eq!(back, pcm);
    }

    #[test]
    fn frame_sizes() {
        assert_eq!(ULAW_FRAME_BYTES, 160);
        assert_eq!(frame_samples(GEMINI_INPUT_HZ), 320);
        assert_eq!(frame_samples(GEMINI_OUTPUT_HZ), 480);

        let ulaw = vec![0xFFu8; ULAW_FRAME_BYTES];
        let pcm8 = decode_ulaw(&ulaw);
        assert_eq!(pcm8.len(), 160);
        for (hz, want) in [(GEMINI_INPUT_HZ, 320), (GEMINI_OUTPUT_HZ, 480)] {
            let mut up = Resampler::new(TELEPHONY_HZ, hz).unwrap();
            let mut down = Resampler::new(hz, TELEPHONY_HZ).unwrap();
            for _ in 0..3 {
                let mut high = Vec::new();
                up.process(&pcm8, &mut high);
                assert_eq!(high.len(), want);
                let mut low = Vec::new();
                down.process(&high, &mut low);
                assert_eq!(low.len(), 160);
                assert_eq!(encode_ulaw(&low).len(), ULAW_FRAME_BYTES);
            }
        }
    }

    #[test]
    fn rejects_unsupported_ratios() {
        for (from, to) in
            [(8_000, 8_000), (8_000, 12_000), (16_000, 24_000), (8_000, 64_000), (0, 8_000), (8_000, 0)]
        {
            assert_eq!(Resampler::new(from, to).unwrap_err(), UnsupportedRatio { from_hz: from, to_hz: to });
        }
        let r = Resampler::new(48_000, 8_000).unwrap();
        assert!(!r.is_upsampler());
        assert_eq!(r.ratio(), 6);
    }

    fn sine(freq: f64, rate: u32, amplitude: f64, secs: f64) -> Vec<i16> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()).round() as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    fn zero_crossings(x: &[i16]) -> usize {
        x.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    }

    fn resample_whole(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        r.process(input, &mut out);
        out
    }

    const PAIRS: [(u32, u32); 4] = [
        (TELEPHONY_HZ, GEMINI_INPUT_HZ),
        (TELEPHONY_HZ, GEMINI_OUTPUT_HZ),
        (GEMINI_INPUT_HZ, TELEPHONY_HZ),
        (GEMINI_OUTPUT_HZ, TELEPHONY_HZ),
    ];

    #[test]
    fn a_1khz_sine_keeps_its_frequency_amplitude_and_phase() {
        let amplitude = 10_000.0;
        for (from, to) in PAIRS {
            let out = resample_whole(from, to, &sine(1000.0, from, amplitude, 1.0));
            assert_eq!(out.len(), to as usize);
            // Skip the filter's start-up (its delay, then some) before measuring.
            let settled = &out[(to / 100) as usize..];
            let secs = settled.len() as f64 / f64::from(to);

            let level = rms(settled) / (amplitude / 2f64.sqrt());
            assert!((level - 1.0).abs() < 0.005, "{from}→{to}: RMS ratio {level}");
            let crossings = zero_crossings(settled) as f64;
            assert!((crossings - 2000.0 * secs).abs() <= 2.0, "{from}→{to}: {crossings} zero crossings");

            // Sample by sample against the ideal sine delayed by the documented filter delay:
            // any imaging, aliasing or phase error would show here.
            let r = Resampler::new(from, to).unwrap();
            let skip = (to / 100) as usize;
            let worst = out[skip..]
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    let t = ((i + skip) as f64 - r.delay()) / f64::from(to);
                    (f64::from(y) - amplitude * (2.0 * PI * 1000.0 * t).sin()).abs()
                })
                .fold(0.0, f64::max);
            assert!(worst < amplitude * 0.002, "{from}→{to}: worst error {worst}");
        }
    }

    #[test]
    fn passband_is_flat_across_the_telephone_band() {
        let amplitude = 10_000.0;
        for (from, to) in PAIRS {
            for freq in [300.0, 2000.0, 3400.0] {
                let out = resample_whole(from, to, &sine(freq, from, amplitude, 0.5));
                let gain_db = 20.0 * (rms(&out[(to / 100) as usize..]) / (amplitude / 2f64.sqrt())).log10();
                assert!(gain_db.abs() < 0.05, "{from}→{to} at {freq} Hz: {gain_db:.3} dB");
            }
        }
    }

    #[test]
    fn downsampling_rejects_content_above_4khz() {
        let amplitude = 20_000.0;
        for from in [GEMINI_INPUT_HZ, GEMINI_OUTPUT_HZ] {
            for (freq, max_db) in [(4_000.0, -50.0), (4_200.0, -65.0), (4_500.0, -65.0), (7_000.0, -65.0)] {
                let out = resample_whole(from, TELEPHONY_HZ, &sine(freq, from, amplitude, 0.5));
                let db = 20.0 * (rms(&out[80..]) / (amplitude / 2f64.sqrt())).log10();
                assert!(db < max_db, "{from} Hz, {freq} Hz tone leaks at {db:.1} dB");
            }
        }
    }

    #[test]
    fn upsampled_impulse_response_is_symmetric_about_the_documented_delay() {
        for to in [GEMINI_INPUT_HZ, GEMINI_OUTPUT_HZ] {
            let mut r = Resampler::new(TELEPHONY_HZ, to).unwrap();
            let mut out = Vec::new();
            r.process(&[10_000], &mut out);
            r.flush(&mut out);
            let delay = r.delay() as usize;
            assert_eq!(r.delay(), delay as f64);
            let peak = out.iter().enumerate().max_by_key(|(_, &s)| s).map(|(i, _)| i).unwrap();
            assert_eq!(peak, delay);
            // Linear phase: every frequency is delayed alike.
            for k in 1..=delay {
                assert_eq!(out[delay - k], out[delay + k], "{to}: ±{k}");
            }
        }
    }

    #[test]
    fn flush_emits_the_delayed_tail_and_resets() {
        for (from, to) in PAIRS {
            let input = sine(1000.0, from, 8_000.0, 0.02);
            let mut r = Resampler::new(from, to).unwrap();
            let mut first = Vec::new();
            r.process(&input, &mut first);
            let before = first.len();
            r.flush(&mut first);
            // The tail is what trailing silence would have pushed out, and nothing is left after it.
            let mut padded = input.clone();
            padded.resize(input.len() + 400, 0);
            let padded = resample_whole(from, to, &padded);
            assert!(first.len() > before);
            assert_eq!(first[..], padded[..first.len()], "{from}→{to}");
            assert!(padded[first.len()..].iter().all(|&s| s == 0), "{from}→{to}");
            // ...and a flushed resampler behaves like a new one.
            let mut second = Vec::new();
            r.process(&input, &mut second);
            assert_eq!(second, resample_whole(from, to, &input));
        }
    }

    #[test]
    fn streaming_in_20ms_frames_equals_the_whole_buffer() {
        for (from, to) in PAIRS {
            let input = sine(1000.0, from, 12_000.0, 0.5);
            let whole = resample_whole(from, to, &input);
            let mut r = Resampler::new(from, to).unwrap();
            let mut framed = Vec::new();
            for frame in input.chunks(frame_samples(from)) {
                r.process(frame, &mut framed);
            }
            assert_eq!(framed, whole, "{from}→{to}");
        }
    }

    #[test]
    fn full_scale_input_saturates_instead_of_wrapping() {
        assert_eq!(to_i16(40_000.0), i16::MAX);
        assert_eq!(to_i16(-40_000.0), i16::MIN);
        assert_eq!(to_i16(2.5), 3);
        assert_eq!(to_i16(-2.5), -3);
        // A full-scale square wave overshoots (Gibbs); the peaks clip at the rails.
        let square: Vec<i16> =
            (0..800).map(|i| if (i / 20) % 2 == 0 { i16::MAX } else { i16::MIN }).collect();
        for (from, to) in PAIRS {
            let out = resample_whole(from, to, &square);
            assert!(out.contains(&i16::MAX) && out.contains(&i16::MIN), "{from}→{to}");
        }
    }

    proptest! {
        #[test]
        fn streaming_in_any_chunks_equals_the_whole_buffer(
            pair in 0..PAIRS.len(),
            input in proptest::collection::vec(any::<i16>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let (from, to) = PAIRS[pair];
            let whole = resample_whole(from, to, &input);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut r = Resampler::new(from, to).unwrap();
            let mut streamed = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                r.process(&input[start..cut], &mut streamed);
                start = cut;
            }
            prop_assert_eq!(streamed, whole);
        }
    }
}
