from rag.tokens import count_tokens, truncate_tokens


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
