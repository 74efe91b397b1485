//! The bounded reorder buffer and the Telnyx media reorderer.

use kraliki_voice::telephony::reorder::{ReorderBuffer, Reordered};
use kraliki_voice::telephony::telnyx_media::{MediaReorderer, OrderedMedia, TelnyxMedia};
use kraliki_voice::telephony::Track;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn items(out: &[Reordered<u64>]) -> Vec<u64> {
    out.iter()
        .filter_map(|r| match r {
            Reordered::Item { seq, item } => {
                assert_eq!(seq, item, "an item keeps its number");
                Some(*seq)
            }
            _ => None,
        })
        .collect()
}

fn push_all(buffer: &mut ReorderBuffer<u64>, seqs: &[u64]) -> Vec<Reordered<u64>> {
    seqs.iter().flat_map(|&s| buffer.push(s, s)).collect()
}

#[test]
fn in_order_items_pass_straight_through() {
    let mut buffer = ReorderBuffer::new(4);
    for seq in 10..20 {
        assert_eq!(buffer.push(seq, seq), vec![Reordered::Item { seq, item: seq }]);
        assert_eq!(buffer.pending(), 0);
    }
    assert_eq!(buffer.stats().emitted, 10);
    assert_eq!(buffer.stats().reordered, 0);
}

#[test]
fn shuffled_sequence_numbers_come_out_in_order_for_many_seeds() {
    for seed in 0..200 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut seqs: Vec<u64> = (1..=300).collect();
        // Displace each number by less than the window: shuffle within blocks of 5.
        for block in seqs.chunks_mut(5) {
            block.shuffle(&mut rng);
        }
        let mut buffer = ReorderBuffer::starting_at(1, 5);
        let mut out = push_all(&mut buffer, &seqs);
        out.extend(buffer.flush());
        assert_eq!(items(&out), (1..=300).collect::<Vec<_>>(), "seed {seed}");
        assert!(out.iter().all(|r| matches!(r, Reordered::Item { .. })), "seed {seed}: {out:?}");
        assert_eq!(buffer.pending(), 0);
    }
}

#[test]
fn a_lost_item_becomes_a_gap_once_the_window_has_passed_it() {
    let mut buffer = ReorderBuffer::starting_at(1, 3);
    assert_eq!(buffer.push(1, 1), vec![Reordered::Item { seq: 1, item: 1 }]);
    // 2 is missing: 3 and 4 are held...
    assert!(buffer.push(3, 3).is_empty());
    assert!(buffer.push(4, 4).is_empty());
    assert_eq!(buffer.pending(), 2);
    // ...until 5, three places past 2, arrives.
    assert_eq!(
        buffer.push(5, 5),
        vec![
            Reordered::Gap { first: 2, count: 1 },
            Reordered::Item { seq: 3, item: 3 },
            Reordered::Item { seq: 4, item: 4 },
            Reordered::Item { seq: 5, item: 5 },
        ]
    );
    // 2 turns up after all: too late.
    assert_eq!(buffer.push(2, 2), vec![Reordered::Late { seq: 2 }]);
    let stats = buffer.stats();
    assert_eq!((stats.gaps, stats.missing, stats.late, stats.emitted), (1, 1, 1, 4));
}

#[test]
fn a_jump_reports_the_whole_gap_at_once() {
    let mut buffer = ReorderBuffer::starting_at(1, 4);
    let out = push_all(&mut buffer, &[1, 2, 50]);
    assert_eq!(
        out,
        vec![
            Reordered::Item { seq: 1, item: 1 },
            Reordered::Item { seq: 2, item: 2 },
            Reordered::Gap { first: 3, count: 47 },
            Reordered::Item { seq: 50, item: 50 },
        ]
    );
    assert_eq!(buffer.next_expected(), Some(51));
}

#[test]
fn duplicates_and_replays_are_dropped() {
    let mut buffer = ReorderBuffer::starting_at(1, 4);
    assert!(buffer.push(3, 3).is_empty());
    assert_eq!(buffer.push(3, 33), vec![Reordered::Duplicate { seq: 3 }]);
    let out = push_all(&mut buffer, &[1, 2]);
    assert_eq!(items(&out), vec![1, 2, 3]);
    assert_eq!(buffer.push(1, 1), vec![Reordered::Late { seq: 1 }]);
    assert_eq!((buffer.stats().duplicates, buffer.stats().late), (1, 1));
}

#[test]
fn flush_hands_on_what_is_held_with_the_gaps_between() {
    let mut buffer = ReorderBuffer::starting_at(1, 10);
    assert!(push_all(&mut buffer, &[3, 6, 7]).is_empty());
    assert_eq!(
        buffer.flush(),
        vec![
            Reordered::Gap { first: 1, count: 2 },
            Reordered::Item { seq: 3, item: 3 },
            Reordered::Gap { first: 4, count: 2 },
            Reordered::Item { seq: 6, item: 6 },
            Reordered::Item { seq: 7, item: 7 },
        ]
    );
    assert!(buffer.flush().is_empty());
}

#[test]
fn a_buffer_without_a_start_begins_at_the_first_number_and_window_zero_never_waits() {
    let mut buffer = ReorderBuffer::new(0);
    assert_eq!(buffer.next_expected(), None);
    assert_eq!(items(&buffer.push(7, 7)), vec![7]);
    let out = buffer.push(9, 9);
    assert_eq!(out, vec![Reordered::Gap { first: 8, count: 1 }, Reordered::Item { seq: 9, item: 9 }]);
    assert_eq!(buffer.push(8, 8), vec![Reordered::Late { seq: 8 }]);
}

#[test]
fn numbers_at_the_top_of_the_range_do_not_overflow() {
    let mut buffer = ReorderBuffer::starting_at(u64::MAX - 2, 3);
    let out = push_all(&mut buffer, &[u64::MAX, u64::MAX - 2, u64::MAX - 1]);
    assert_eq!(items(&out), vec![u64::MAX - 2, u64::MAX - 1, u64::MAX]);
}

fn frame(track: Track, chunk: u64) -> TelnyxMedia {
    TelnyxMedia {
        sequence_number: chunk + 1,
        stream_id: "s".into(),
        track,
        chunk,
        timestamp_ms: (chunk - 1) * 20,
        payload: vec![chunk as u8; 160],
    }
}

#[test]
fn the_media_reorderer_orders_each_track_by_chunk() {
    let mut reorderer = MediaReorderer::new(4);
    let arrivals = [
        frame(Track::Inbound, 2),
        frame(Track::Outbound, 1),
        frame(Track::Inbound, 1),
        frame(Track::Outbound, 3),
        frame(Track::Inbound, 3),
        frame(Track::Outbound, 2),
    ];
    let out: Vec<OrderedMedia> = arrivals.into_iter().flat_map(|f| reorderer.push(f)).collect();
    let order: Vec<(Track, u64)> = out
        .iter()
        .map(|o| match o {
            OrderedMedia::Frame(f) => (f.track.clone(), f.chunk),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (Track::Outbound, 1),
            (Track::Inbound, 1),
            (Track::Inbound, 2),
            (Track::Inbound, 3),
            (Track::Outbound, 2),
            (Track::Outbound, 3),
        ]
    );
    assert_eq!(reorderer.stats(&Track::Inbound).unwrap().reordered, 1);
}

#[test]
fn the_media_reorderer_reports_gaps_and_late_frames() {
    let mut reorderer = MediaReorderer::new(2);
    let mut out = Vec::new();
    for chunk in [1, 3, 4, 2] {
        out.extend(reorderer.push(frame(Track::Inbound, chunk)));
    }
    out.extend(reorderer.flush());
    assert_eq!(
        out,
        vec![
            OrderedMedia::Frame(frame(Track::Inbound, 1)),
            OrderedMedia::Gap { track: Track::Inbound, first_chunk: 2, count: 1 },
            OrderedMedia::Frame(frame(Track::Inbound, 3)),
            OrderedMedia::Frame(frame(Track::Inbound, 4)),
            OrderedMedia::Dropped { track: Track::Inbound, chunk: 2, duplicate: false },
        ]
    );
}

proptest! {
    /// Whatever arrives, in whatever order: each number is handed on at most once, in
    /// increasing order, gaps and items cover every number exactly once up to the last, and
    /// the buffer never holds a full window.
    #[test]
    fn output_is_ordered_complete_and_bounded(
        seqs in proptest::collection::vec(1u64..60, 0..120),
        window in 1usize..8,
    ) {
        let mut buffer = ReorderBuffer::starting_at(1, window);
        let mut out = Vec::new();
        for &s in &seqs {
            out.extend(buffer.push(s, s));
            prop_assert!(buffer.pending() < window);
        }
        out.extend(buffer.flush());
        let mut covered = 1u64;
        for r in &out {
            match r {
                Reordered::Item { seq, .. } => { prop_assert_eq!(*seq, covered); covered += 1; }
                Reordered::Gap { first, count } => { prop_assert_eq!(*first, covered); prop_assert!(*count > 0); covered += count; }
                Reordered::Late { seq } | Reordered::Duplicate { seq } => prop_assert!(seqs.contains(seq)),
            }
        }
        let emitted = items(&out);
        let mut distinct: Vec<u64> = seqs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // Everything emitted was pushed; nothing pushed is lost without a trace.
        prop_assert!(emitted.iter().all(|s| distinct.contains(s)));
        let dropped = out.iter().filter(|r| matches!(r, Reordered::Late { .. } | Reordered::Duplicate { .. })).count();
        prop_assert_eq!(emitted.len() + dropped, seqs.len());
    }
}
