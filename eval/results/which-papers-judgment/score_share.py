import sys, statistics as st
from eval.questions import load_questions
from rag.pipeline import open_pipeline
from rag.settings import load_settings
from rag.understanding import understand
settings = load_settings()
data = []
with open_pipeline(settings, answering=False) as p:
    r = p.retriever
    for f in sys.argv[1:]:
        for q in load_questions(f):
            if q.type != "multi" or q.history or q.extra.get("split", "dev") != "dev":
                continue
            query = understand(r, q.question, q.question, None)
            res = r.search(q.question, k=15, understood=query)
            data.append((q, [(x.score, x.named, x.dense_similarity, x.title in q.gold_titles) for x in res.papers]))
def ev(sel):
    P=[];R=[];N=[]
    for q, rows in data:
        best = rows[0][0]
        kept=[g for i,(s,nm,d,g) in enumerate(rows) if sel(i,s,nm,d,best)]
        P.append(sum(kept)/len(kept) if kept else 0); R.append(sum(kept)/len(q.gold_titles)); N.append(len(kept))
    return st.mean(P), st.mean(R), st.mean(N)
for n in (8, 15):
    for share in (0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        p_, r_, k_ = ev(lambda i,s,nm,d,b,share=share,n=n: i<n and (i==0 or nm or (b>0 and s>=share*b)))
        print(f"top{n} share {share}: P {p_:.3f} R {r_:.3f} F1 {2*p_*r_/(p_+r_):.3f} kept {k_:.1f}")
for n in (2,3,4): 
    p_, r_, k_ = ev(lambda i,s,nm,d,b,n=n: i<n); print(f"top{n}: P {p_:.3f} R {r_:.3f} F1 {2*p_*r_/(p_+r_):.3f}")
