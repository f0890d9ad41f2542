from rag.chunking import chunk_paper, embed_text
from rag.text import split_sentences
from rag.paper import Paper


def test_no_chunk_of_the_bundled_corpus_exceeds_the_model_limit(bundled_papers, real_embedder):
    limit = real_embedder.max_tokens
    for max_tokens in (64, limit):
        for paper in bundled_papers:
            chunks = chunk_paper(paper, real_embedder.count_tokens, max_tokens, overlap_sentences=1)
            assert chunks
            for chunk in chunks:
                assert real_embedder.count_tokens(chunk.embed_text) <= max_tokens <= limit


def test_chunks_keep_every_word_in_order(bundled_papers, real_embedder):
    paper = max(bundled_papers, key=lambda p: len(p.abstract))
    chunks = chunk_paper(paper, real_embedder.count_tokens, 64, overlap_sentences=0)
    assert len(chunks) > 3
    assert " ".join(c.text for c in chunks).split() == paper.abstract.split()
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.embed_text.startswith(paper.title + "\n") for c in chunks)


def test_overlap_repeats_the_last_sentence(real_embedder):
    sentences = [f"Sentence number {n} talks about topic {n} in some detail." for n in range(12)]
    paper = Paper(title="T", abstract=" ".join(sentences))
    chunks = chunk_paper(paper, real_embedder.count_tokens, 48, overlap_sentences=1)
    for before, after in zip(chunks, chunks[1:]):
        assert split_sentences(after.text)[0] == split_sentences(before.text)[-1]


def test_a_sentence_longer_than_the_limit_is_split_not_truncated(real_embedder):
    long_sentence = " ".join(f"word{n}" for n in range(400)) + "."
    paper = Paper(title="Long", abstract=long_sentence)
    chunks = chunk_paper(paper, real_embedder.count_tokens, 100)
    assert len(chunks) > 1
    assert " ".join(c.text for c in chunks) == long_sentence
    assert all(real_embedder.count_tokens(embed_text("Long", c.text)) <= 100 for c in chunks)


def test_sentence_splitting_keeps_abbreviations():
    assert split_sentences("We use e.g. dropout. Then 3 layers follow! Done?") == [
        "We use e.g. dropout.",
        "Then 3 layers follow!",
        "Done?",
    ]
