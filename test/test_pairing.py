"""Pairing colour and depth frames by stamp: exact and within-slop matches, the closest partner,
frames left behind counted, bounded waiting, any arrival order."""

from __future__ import annotations

import threading

import pytest

from sgdn_ros.pipeline.pairing import COLOUR, DEPTH, Pair, StampPairer

MS = 1_000_000


def test_equal_stamps_pair_whichever_comes_first():
    pairer = StampPairer[str](slop_s=0.0)
    assert pairer.add(COLOUR, 10 * MS, "c10") is None
    assert pairer.add(DEPTH, 10 * MS, "d10") == Pair("c10", "d10", 10 * MS, 10 * MS)
    assert pairer.add(DEPTH, 20 * MS, "d20") is None
    assert pairer.add(COLOUR, 20 * MS, "c20") == Pair("c20", "d20", 20 * MS, 20 * MS)
    assert pairer.unmatched == 0


def test_within_slop_the_closest_partner_wins():
    pairer = StampPairer[str](slop_s=0.010)
    pairer.add(DEPTH, 95 * MS, "d95")
    pairer.add(DEPTH, 103 * MS, "d103")
    pair = pairer.add(COLOUR, 100 * MS, "c100")
    assert (pair.colour, pair.depth) == ("c100", "d103")
    assert pairer.unmatched == 1  # d95 can never pair with anything newer


def test_beyond_slop_nothing_pairs():
    pairer = StampPairer[str](slop_s=0.005)
    pairer.add(COLOUR, 0, "c0")
    assert pairer.add(DEPTH, 6 * MS, "d6") is None
    assert pairer.unmatched == 0  # both still wait: a partner may yet come


def test_a_pair_releases_older_frames_of_both_streams_as_unmatched():
    pairer = StampPairer[str](slop_s=0.0)
    for stamp in (1, 2, 3):
        pairer.add(COLOUR, stamp * MS, f"c{stamp}")
    pairer.add(DEPTH, 2 * MS, "d2")
    assert pairer.unmatched == 1  # c1
    assert pairer.add(DEPTH, 3 * MS, "d3") == Pair("c3", "d3", 3 * MS, 3 * MS)
    assert pairer.unmatched == 1


def test_waiting_is_bounded_and_the_overflow_counted():
    pairer = StampPairer[str](slop_s=0.0, keep=3)
    for stamp in range(10):
        assert pairer.add(COLOUR, stamp * MS, f"c{stamp}") is None
    assert pairer.unmatched == 7
    assert pairer.add(DEPTH, 9 * MS, "d9").colour == "c9"
    assert pairer.unmatched == 9


def test_clear_counts_what_waited():
    pairer = StampPairer[str](slop_s=0.0)
    pairer.add(COLOUR, 1, "c")
    pairer.add(DEPTH, 2, "d")
    pairer.clear()
    assert pairer.unmatched == 2
    assert pairer.add(DEPTH, 1, "d1") is None


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="slop_s must be >= 0"):
        StampPairer(slop_s=-1.0)
    with pytest.raises(ValueError, match="keep must be >= 1"):
        StampPairer(slop_s=0.0, keep=0)
    with pytest.raises(ValueError, match="stream must be"):
        StampPairer(slop_s=0.0).add("infrared", 0, "x")


def test_two_callback_threads_pair_every_frame_once():
    pairer = StampPairer[int](slop_s=0.0, keep=1000)
    pairs: list[Pair[int]] = []
    lock = threading.Lock()

    def feed(stream: str) -> None:
        for stamp in range(500):
            pair = pairer.add(stream, stamp, stamp)
            if pair is not None:
                with lock:
                    pairs.append(pair)

    threads = [threading.Thread(target=feed, args=(stream,)) for stream in (COLOUR, DEPTH)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pairer.clear()
    assert all(pair.colour == pair.depth for pair in pairs)
    assert len({pair.colour for pair in pairs}) == len(pairs)
    assert 2 * len(pairs) + pairer.unmatched == 1000  # every frame paired once or counted
