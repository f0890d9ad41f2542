"""Stream an answer from `rag serve` with nothing but the `openai` package, then
print the papers it cites (from the `citations` field the API adds).

    .venv/bin/rag serve                       # in another terminal
    python scripts/openai_stream_example.py "Compare DiffCSE and SimCSE"

Base URL and key from OPENAI_BASE_URL / OPENAI_API_KEY (defaults: the local
server, and any key, which a server without RAG_SERVING__API_KEYS accepts).
"""

import os
import sys

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ.get("OPENAI_API_KEY", "none"),
)
question = " ".join(sys.argv[1:]) or "Compare DiffCSE and SimCSE"
citations = []
for chunk in client.chat.completions.create(
    model="default", messages=[{"role": "user", "content": question}], stream=True
):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    citations = (chunk.model_extra or {}).get("citations", citations)  # sent with the last chunk
print("\n\nCited papers:")
for cited in citations:
    print(f"[{cited['number']}] {cited['title']}")
