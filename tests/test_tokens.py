from hypothesis import given, settings
from hypothesis import strategies as st

from rag.tokens import count_tokens, token_bound, truncate_tokens


def test_counts_words_and_subwords_without_special_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("vpn") == 2  # vp ##n
    assert count_tokens("How do I connect to the VPN?") == 9


def test_long_text_is_not_truncated_at_128() -> None:
    text = "word " * 600
    assert count_tokens(text) == 600


def test_truncate_keeps_whole_tokens() -> None:
    text = "Reset your password in the self-service portal."
    cut = truncate_tokens(text, 4)
    assert cut == "Reset your password in"
    assert count_tokens(cut) == 4
    assert truncate_tokens(text, 100) == text
    assert truncate_tokens(text, 0) == ""


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=300))
@settings(max_examples=300, deadline=None)
def test_the_free_bound_never_undercounts_ascii(text: str) -> None:
    bound = token_bound(text)
    assert bound is not None and count_tokens(text) <= bound


def test_text_that_normalization_can_grow_has_no_free_bound() -> None:
    assert count_tokens("한국어") > 0 and token_bound("한국어") is None
    assert token_bound("café") is None
