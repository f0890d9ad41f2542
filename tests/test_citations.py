from rag.citations import add_marker, check_citations, markers_in
from rag.text import split_sentences as split_answer_sentences


def test_valid_markers_are_kept_in_order_of_first_citation():
    checked = check_citations("B does X [2]. A does Y [1]. B again [2].", {1, 2, 3})
    assert checked.text == "B does X [2]. A does Y [1]. B again [2]."
    assert checked.cited_numbers == [2, 1] and checked.dropped == 0


def test_out_of_range_markers_are_dropped_and_counted():
    checked = check_citations("Claim [1]. Invented [7]. Mixed [2, 9].", {1, 2})
    assert checked.text == "Claim [1]. Invented. Mixed [2]."
    assert checked.cited_numbers == [1, 2] and checked.dropped == 2


def test_grouped_ranged_and_repeated_markers_are_normalised():
    checked = check_citations("All three [1-3]. Pair [1, 2]. Twice [2][2]. Semi [3; 1].", {1, 2, 3})
    assert checked.text == "All three [1][2][3]. Pair [1][2]. Twice [2]. Semi [3][1]."
    assert checked.cited_numbers == [1, 2, 3]


def test_prose_citations_become_markers():
    checked = check_citations("As Source 2 shows, it works. Both agree (Sources 1 and 2).", {1, 2})
    assert checked.cited_numbers == [2, 1]
    assert "[2]" in checked.text and "Source" not in checked.text


def test_malformed_markers_are_not_citations():
    checked = check_citations("Odd [a]. Empty []. Year [2021 study]. Real [1].", {1})
    assert checked.cited_numbers == [1]
    assert "[a]" in checked.text  # left as text, never turned into a citation


def test_the_models_own_reference_list_is_removed():
    checked = check_citations("It works [1].\n\nSources:\n[1] A Made-Up Title (2023)", {1})
    assert checked.text == "It works [1]."


def test_sentence_helpers():
    sentences = split_answer_sentences("First claim [1]. Second one [2]! Third?")
    assert sentences == ["First claim [1].", "Second one [2]!", "Third?"]
    assert markers_in("x [1][3] y [2, 4]") == [1, 3, 2, 4]
    assert add_marker("It holds.", 2) == "It holds [2]."
    assert add_marker("No stop", 1) == "No stop [1]"
