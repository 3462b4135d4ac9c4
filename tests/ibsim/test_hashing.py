"""Counter-based randomness (ibsim.hashing): the same inputs always give the same numbers."""

from __future__ import annotations

import numpy as np

from ibsim.hashing import Stream, halves, hash64, normal, round_to, stream_key, uniform


def test_keys_differ_by_seed_instrument_and_stream():
    key = stream_key(0, 265598, Stream.PATH)
    assert key == stream_key(0, 265598, Stream.PATH)
    others = {stream_key(1, 265598, Stream.PATH), stream_key(0, 272093, Stream.PATH)}
    others.add(stream_key(0, 265598, Stream.HIGH_LOW))
    assert key not in others and len(others) == 3


def test_a_number_depends_on_its_index_only():
    key = stream_key(0, 265598, Stream.PATH)
    block = hash64(key, np.arange(1000))
    assert hash64(key, np.array([517]))[0] == block[517]
    assert hash64(key, np.arange(1000).reshape(10, 100))[5, 17] == block[517]
    assert len(np.unique(block)) == 1000


def test_uniforms_and_normals_have_their_shape():
    z = hash64(stream_key(7, 1, Stream.VOLUME), np.arange(200_000))
    u = uniform(z)
    high, low = halves(z)
    for x in (u, high, low):
        assert x.min() > 0 and x.max() < 1 and abs(x.mean() - 0.5) < 0.01
    n = normal(z)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01
    assert np.abs(n).max() > 4  # fat tails, like returns


def test_round_to_a_tick():
    assert round_to(np.array([1.23456, 1.22]), 0.05, 2).tolist() == [1.25, 1.2]
    assert round_to(np.array([1.0999999]), 0.00005, 5).tolist() == [1.1]
