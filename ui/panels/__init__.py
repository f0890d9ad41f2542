"""The page's panels, each with its components and the events that drive them:

chat.py      the conversation: chatbot, question box, Ask/Retry/Clear, examples; /chat /retry /clear /ask
compare.py   the comparison picker: a table of 2-6 papers in the chat; its CSV and Markdown downloads
scope.py     the collection and the year/author/category filters every answer uses
upload.py    adding a file of papers (.bib .ris .jsonl .csv .txt) to a new or existing collection
settings.py  papers retrieved per question, which model answers and its status (polled)
details.py   the last answer as data: query, retrieved papers, timings

ui/app.py builds them into the page, then wires each (a panel's events may use
another panel's components, so wiring comes after building).
"""

# Events that must not wait behind answers in the queue, and are not API endpoints.
LIGHT_EVENT = {"queue": False, "api_visibility": "private", "show_progress": "hidden"}

ANSWERING = {"concurrency_limit": None}  # the model's queue admits answers, not Gradio's
