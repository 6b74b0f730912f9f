"""Head scores on a hand-built model where each head is exactly one kind of head."""

import pytest
import torch
from handbuilt import EXPECTED_HEAD, handbuilt_model, repeated_distinct_tokens

from pipeline.measures import HEAD_SCORES, head_scores, repeated_random_tokens

SEQ_LEN = 20


@pytest.fixture(scope="module")
def scores():
    model = handbuilt_model()
    with torch.inference_mode():
        values = head_scores(model, repeated_distinct_tokens(8, SEQ_LEN), SEQ_LEN, list(HEAD_SCORES))
    return dict(zip(HEAD_SCORES, values))


def test_every_registered_score_has_a_handbuilt_head():
    assert set(EXPECTED_HEAD) == set(HEAD_SCORES)


@pytest.mark.parametrize("name", sorted(HEAD_SCORES))
def test_designed_head_scores_high_and_others_low(scores, name):
    layer, head = EXPECTED_HEAD[name]
    grid = scores[name]
    # induction's stripe also holds the 2 first-copy rows (BOS, first token) no head can match: L/(L+2).
    floor = 0.99 * SEQ_LEN / (SEQ_LEN + 2) if name == "induction" else 0.99
    assert grid[layer, head] >= floor
    others = grid.clone()
    others[layer, head] = 0
    if name == "current_token":  # a duplicate-token head attends to itself until its token repeats
        others[EXPECTED_HEAD["duplicate_token"]] = 0
        assert grid[EXPECTED_HEAD["duplicate_token"]] == pytest.approx(0.5, abs=0.01)
    assert others.max() < 0.1


def test_scores_of_uniform_causal_attention_equal_their_hand_computed_values():
    """A head attending uniformly to every earlier position (query q gives each key 1/(q+1)), on the
    [BOS, r_1..r_L, r_1..r_L] layout with L = 3 (queries 0..6): each score is a mean of known fractions."""
    L, n = 3, 7
    pattern = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
    pattern = pattern.expand(2, 1, n, n)  # (batch, head, query, key)
    frac = [1 / (q + 1) for q in range(n)]
    expected = {
        "previous_token": sum(frac[1:]) / 6,          # queries 1..6
        "current_token": sum(frac[1:]) / 6,           # queries 1..6, BOS row left out
        "first_token": sum(frac[1:]) / 6,             # queries 1..6 to key 0
        "prefix_matching": sum(frac[4:]) / 3,         # second-copy queries 4..6, key q - 2
        "induction": sum(frac[2:]) / 5,               # the whole 2-back stripe, queries 2..6
        "duplicate_token": sum(frac[4:]) / 3,         # queries 4..6, key q - 3
    }
    for name, value in expected.items():
        assert HEAD_SCORES[name](pattern, L).item() == pytest.approx(value, abs=1e-6), name


def test_repeated_random_tokens_layout():
    vocab = torch.tensor([3, 7, 9, 40])
    tokens = repeated_random_tokens(batch=3, seq_len=5, vocab=vocab, bos_id=0, seed=1)
    assert tokens.shape == (3, 11)
    assert (tokens[:, 0] == 0).all() and torch.isin(tokens[:, 1:], vocab).all()
    assert torch.equal(tokens[:, 1:6], tokens[:, 6:])
    assert torch.equal(tokens, repeated_random_tokens(batch=3, seq_len=5, vocab=vocab, bos_id=0, seed=1))

