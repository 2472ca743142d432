"""Parsers read the final answer and never raise, whatever the model says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emobench import parsing

CHOICES = ["Joy", "Sadness", "Gratitude & Joy", "Anger"]


def test_json_answer_letter_is_read():
    assert parsing.choice_index('```json\n{"answer": "C"}\n```', CHOICES) == 2


def test_final_answer_wins_over_reasoning():
    text = 'A) looks tempting, but on reflection... {"reasoning": "x", "answer": "D"}'
    assert parsing.choice_index(text, CHOICES) == 3


def test_answer_line_and_bare_letter():
    assert parsing.choice_index("Reasoning first.\nAnswer: (B)", CHOICES) == 1
    assert parsing.choice_index(" b ", CHOICES) == 1


def test_option_text_longest_match_beats_contained_option():
    assert parsing.choice_index("I think gratitude & joy.", CHOICES) == 2


def test_out_of_range_letter_is_unparseable():
    assert parsing.choice_index('{"answer": "Z"}', CHOICES) is None
    assert parsing.choice_index("no idea", CHOICES) is None


def test_think_block_is_stripped():
    assert parsing.choice_index("<think>Answer: A</think>Answer: B", CHOICES) == 1


def test_an_explicit_answer_is_read_strictly_and_leniently():
    for text in (
        '{"answer": "B"}',
        "Reasoning first.\nAnswer: (B)",
        "**Answer:** B",
        "Final answer: B) Sadness",
        "B",
        "B) Sadness",
        "Answer: Sadness, because she cries",
    ):
        assert parsing.choice_index(text, CHOICES, strict=True) == 1, text
        assert parsing.choice_index(text, CHOICES) == 1, text


def test_a_hedged_or_free_text_answer_is_read_leniently_only():
    for text in (
        "the answer is probably B because she cries",
        "She feels sadness, I would say.",
        '{"answer": "probably sadness"}',
    ):
        assert parsing.choice_index(text, CHOICES) == 1, text
        assert parsing.choice_index(text, CHOICES, strict=True) is None, text


def test_a_reply_that_echoes_the_options_is_unparseable():
    assert parsing.choice_index("A) Joy B) Sadness", CHOICES) is None
    assert parsing.choice_index("A) Joy\nB) Sadness\nC) Gratitude & Joy\nD) Anger", CHOICES) is None
    # the echoed list is not an answer, but what the reply says after it is
    assert parsing.choice_index("A) Joy\nB) Sadness\n\nI think she feels sadness.", CHOICES) == 1
    assert parsing.choice_index("A) Joy\nB) Sadness\nAnswer: B", CHOICES, strict=True) == 1


def test_integer_and_number():
    assert parsing.integer('```json\n{"index": 7}\n```') == 7
    assert parsing.integer("segment 3 then 12", lo=0, hi=10) is None  # only the last number counts
    assert parsing.number("I'd say 85.5%", lo=0, hi=100) == 85.5


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=400))
def test_parsers_never_raise_on_arbitrary_text(text):
    parsing.choice_index(text, CHOICES)
    parsing.choice_index(text, CHOICES, strict=True)
    parsing.json_field(text, "answer")
    parsing.integer(text)
    parsing.number(text)
    parsing.json_objects(text)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=10,
    )
)
def test_parsers_never_raise_on_arbitrary_json(value):
    import json

    text = json.dumps({"answer": value})
    parsing.choice_index(text, CHOICES)
    parsing.integer(text)
