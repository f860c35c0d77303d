from trainerbot.evaluation.wer import corpus_wer, wer, words


def test_wer_on_known_cases() -> None:
    assert words("Open the door, please!") == ["open", "the", "door", "please"]
    assert wer("open the door please", "Open the door, please.") == 0.0
    assert wer("open the door please", "open a door") == 0.5  # one substitution, one deletion
    assert wer("a b", "a b c d") == 1.0  # two insertions over two words
    assert corpus_wer([("a b c d", "a b c d"), ("e f", "x f")]) == 1 / 6


def test_small_numbers_count_as_words() -> None:
    assert wer("the train leaves at seven", "The train leaves at 7.") == 0.0
    assert wer("room 42", "room forty two") == 1.0  # only 0–20 are normalised
