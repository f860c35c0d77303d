"""Finding taught facts: today's BM25 with the content-word cover rule, against sentence
embeddings (all-MiniLM-L6-v2, ``model/embeddings.py``), alone and combined.

The taught set: the 24 invented facts of ``bench/data/teach_flow.jsonl`` among 500 generated
look-alike facts ("What is the capital of X?"). The questions:
- the 48 rephrasings of those 24 (synonyms, another order): the right fact must come first;
- 100 generated facts asked with words dropped (``sample.rephrase``);
- the 40 shipped general questions: no fact may come at all (a false pull);
- Russian: 50 generated Russian facts, each asked as "скажи пожалуйста, <question lowercased>".

Then the time to find the facts for one message with 10,000 facts taught (p50, p95; the
sides interleaved in rounds): BM25 against the embedding lookup (the message embedded, a dot
product with the stored fact vectors).

    .venv/bin/python bench/retrieval.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.teach_flow import load_facts, p50_p95
from trainerbot.core.chat import FACTS_MIN_COVER, FACTS_MIN_SHARE
from trainerbot.datasets.sample import generate, rephrase
from trainerbot.evaluation import general_questions
from trainerbot.model.embeddings import Embedder
from trainerbot.model.taught import Meaning, TaughtIndex

Finder = Callable[[str], list[str]]  # a message → the taught questions that go into its context, best first


ATTRIBUTES = ["capital", "oldest bridge", "main export", "founder", "river", "mayor", "largest market", "harbour master",
              "town bell", "head librarian", "football captain", "museum curator", "favourite dish", "lighthouse keeper"]


def many_facts(n: int, *, seed: int) -> list[tuple[str, str]]:
    """``n`` distinct invented facts ("What is the mayor of Zorbiquil?"), for the size test
    (``sample.generate`` runs out of distinct names long before 10,000)."""
    rng = random.Random(seed)
    syllables = ["zor", "bi", "quil", "port", "ves", "sa", "mar", "tel", "ka", "dun", "ri", "lo", "fen", "var", "os",
                 "mi", "ta", "gen", "ul", "po"]
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        place = "".join(rng.choice(syllables) for _ in range(4)).capitalize()
        attribute = rng.choice(ATTRIBUTES)
        question = f"What is the {attribute} of {place}?"
        if question in seen:
            continue
        seen.add(question)
        answer = "".join(rng.choice(syllables) for _ in range(2)).capitalize()
        out.append((question, f"The {attribute} of {place} is {answer}."))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="the embedder's threads (the bot uses 1)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every miss and false pull")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flow = load_facts()
    look_alikes = generate(500, seed=5)
    pairs = [(f.question, f.answer) for f in flow] + [(e.prompt, e.response) for e in look_alikes]
    ru = generate(50, seed=7, russian_share=1.0)
    queries: dict[str, list[tuple[str, str | None]]] = {
        "rephrased (synonyms, order)": [(q, f.question) for f in flow for q in f.rephrasings],
        "words dropped": [(r[0], e.prompt) for e in look_alikes[:200] if (r := rephrase(e)) is not None][:100],
        "general (none wanted)": [(q.prompt, None) for q in general_questions.questions()],
        "Russian": [(f"скажи пожалуйста, {e.prompt.lower()}", e.prompt) for e in ru],
    }
    embedder = Embedder(threads=args.threads)
    t0 = time.perf_counter()
    index = TaughtIndex(pairs + [(e.prompt, e.response) for e in ru])
    questions = [p for p, _ in pairs] + [e.prompt for e in ru]
    vectors = embedder.encode(questions)
    print(f"{len(questions)} facts indexed and embedded in {time.perf_counter() - t0:.1f} s")

    def bm25(message: str) -> list[str]:
        return [f.prompt for f in index.related(message, 3, min_share=FACTS_MIN_SHARE, min_cover=FACTS_MIN_COVER)]

    def embedded(threshold: float) -> Finder:
        def find(message: str) -> list[str]:
            scores = vectors @ embedder.encode([message])[0]
            top = torch.topk(scores, 3)
            return [questions[int(i)] for s, i in zip(top.values, top.indices, strict=True) if float(s) >= threshold]
        return find

    def combined(threshold: float, anchored: bool = False) -> Finder:
        by_meaning = embedded(threshold)

        def find(message: str) -> list[str]:
            words = bm25(message)
            if words:
                return words  # words first; meaning only where words found nothing
            found = by_meaning(message)[:1]
            return [q for q in found if not anchored or index.anchored(message, q)]
        return find

    finders: dict[str, Finder] = {"BM25 + cover (today)": bm25}
    for t in (0.5, 0.6, 0.7):
        finders[f"embeddings, cosine ≥ {t}"] = embedded(t)
    for t in (0.6, 0.7):
        finders[f"BM25, else embeddings ≥ {t}"] = combined(t)
    for t in (0.5, 0.6, 0.7):
        finders[f"BM25, else anchored emb. ≥ {t}"] = combined(t, anchored=True)
    print(f"{'finder':34}" + "".join(f"{k:>30}" for k in queries))
    for name, find in finders.items():
        cells = []
        for kind, asked in queries.items():
            if kind.startswith("general"):
                pulls = sum(1 for q, _ in asked if find(q))
                cells.append(f"{pulls}/{len(asked)} pulled")
            else:
                first = sum(1 for q, want in asked if (got := find(q)) and got[0] == want)
                anywhere = sum(1 for q, want in asked if want in find(q))
                cells.append(f"{first}/{len(asked)} first, {anywhere} in")
        print(f"{name:34}" + "".join(f"{c:>30}" for c in cells))
        if args.verbose:
            for kind, asked in queries.items():
                for q, want in asked:
                    got = find(q)
                    if (want is None and got) or (want is not None and (not got or got[0] != want)):
                        print(f"    ✗ {kind}: {q!r} → {got[:1]} (wanted {want!r})")

    # ------------------------------------------------------------- latency
    big_pairs = many_facts(10_000, seed=13)
    t0 = time.perf_counter()
    big_index = TaughtIndex(big_pairs)
    bm25_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    big_vectors = embedder.encode([p for p, _ in big_pairs])
    embed_build = time.perf_counter() - t0
    print(f"10,000 facts: BM25 index built in {bm25_build:.2f} s; embedded in {embed_build:.1f} s (once per fact, stored)")
    rng = random.Random(3)
    messages = [f"Tell me the {q.split(' the ', 1)[1].rstrip('?')}, please." for q, _ in rng.sample(big_pairs, 60)]
    messages += [q.prompt for q in general_questions.questions()]  # words find nothing: the meaning path runs (and finds nothing)
    product = TaughtIndex(big_pairs)
    product.meaning = Meaning(embedder.encode, big_vectors)
    times: dict[str, list[float]] = {"BM25 (words only)": [], "embeddings alone": [], "words, else meaning": []}

    def by_words(message: str) -> object:
        return big_index.related(message, 3, min_share=FACTS_MIN_SHARE, min_cover=FACTS_MIN_COVER)

    def by_meaning(message: str) -> object:
        return torch.topk(big_vectors @ embedder.encode([message])[0], 3)

    def as_the_bot_does(message: str) -> object:
        return product.related(message, 3, min_share=FACTS_MIN_SHARE, min_cover=FACTS_MIN_COVER)

    sides = (("BM25 (words only)", by_words), ("embeddings alone", by_meaning), ("words, else meaning", as_the_bot_does))
    for _ in range(args.rounds):  # interleaved: each round runs every side on every message
        for side, fn in sides:
            for m in messages:
                t = time.perf_counter()
                fn(m)
                times[side].append(1000 * (time.perf_counter() - t))
    print(f"  {len(messages)} messages a round ({len(messages) - 40} found by words, 40 general questions that are not)")
    for side, ms in times.items():
        print(f"  {side:20} {p50_p95(ms)}   ({len(ms)} lookups)"
              f"   vs BM25 {statistics.median(ms) / statistics.median(times['BM25 (words only)']):.1f}x")


if __name__ == "__main__":
    main()
