import json, sys, time
from pathlib import Path
from string import Template
HERE = Path(__file__).parent
from statistics import mean, median
from eval.questions import load_questions
from rag.pipeline import open_pipeline
from rag.settings import load_settings
from rag.understanding import understand
from rag.evidence import select_evidence
from rag.writing import EvidenceSentence, evidence_listing

PER = int(sys.argv[1]); K = int(sys.argv[2]); files = sys.argv[3:]
schema = {"type": "object", "properties": {"papers": {"type": "array", "maxItems": K, "items": {"type": "object",
  "properties": {"paper": {"type": "integer"}, "from": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}},
  "required": ["paper", "from"]}}}, "required": ["papers"]}
settings = load_settings()
out = []
with open_pipeline(settings) as p:
    p.llm.wait_until_ready()
    eng = p.engine
    qs = [q for f in files for q in load_questions(f) if q.type == "multi" and not q.history and q.extra.get("split", "dev") == "dev"]
    for q in qs:
        query = understand(p.retriever, q.question, q.question, None)
        res = p.retriever.search(q.question, k=K, understood=query)
        papers = res.papers
        sources = select_evidence(p.embedder, query, [x.paper for x in papers], [PER] * len(papers), settings.evidence_word_weight)
        ev = [EvidenceSentence(i, n, t) for i, (n, t) in enumerate(((s.number, t) for s in sources for t in s.sentences), start=1)]
        titles = {s.number: s.title for s in sources}
        user = Template(HERE.joinpath("judge_candidates.txt").read_text().strip()).substitute(question=q.question, evidence=evidence_listing(ev, titles))
        msgs = [{"role": "system", "content": HERE.joinpath("judge_system.txt").read_text().strip()}, {"role": "user", "content": user}]
        t0 = time.perf_counter()
        reply = p.llm.complete(msgs, max_tokens=300, json_schema=schema)
        dt = time.perf_counter() - t0
        try:
            kept = sorted({int(e["paper"]) for e in json.loads(reply)["papers"] if 1 <= int(e["paper"]) <= len(papers)})
        except Exception:
            kept = []
        gold = set(q.gold_titles)
        ranked = [x.title for x in papers]
        best = papers[0].score
        cut = [x.title for r, x in enumerate(papers[:8]) if r == 0 or x.named or x.score >= 0.3 * best]
        row = dict(id=q.id, secs=round(dt, 1), kept=[ranked[k - 1] for k in kept], cut=cut, ranked=ranked, gold=sorted(gold), reply=reply)
        out.append(row)
        def pr(sel):
            s = set(sel)
            return (len(s & gold) / len(s) if s else 0.0, len(s & gold) / len(gold))
        print(q.id, f"{dt:.1f}s", "judge P/R %.2f/%.2f" % pr(row["kept"]), "cut P/R %.2f/%.2f" % pr(cut), "gold in top%d: %d/%d" % (K, len(gold & set(ranked)), len(gold)), flush=True)
json.dump(out, open(HERE / f"batched-list-{PER}-{K}.json", "w"), indent=1)
def agg(key):
    P = [len(set(r[key]) & set(r["gold"])) / len(r[key]) if r[key] else 0 for r in out]
    R = [len(set(r[key]) & set(r["gold"])) / len(r["gold"]) for r in out]
    return f"P {mean(P):.3f} R {mean(R):.3f}"
print("judge", agg("kept"), "cut", agg("cut"), "secs p50", median(r["secs"] for r in out))
