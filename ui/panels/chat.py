"""The conversation: the chatbot, the question box, Ask / Retry / Clear /
Download (the conversation as Markdown with BibTeX of the cited papers), the
example questions, and the API endpoints with explicit names:

- /chat: ask in this session (history kept server-side, per browser session);
- /retry: regenerate the last answer; /clear: forget the conversation (and stop
  an answer being written);
- /ask: stateless, question + optional history + optional top_k -> the answer
  as data (ui/handlers.py ChatHandlers.ask).

Events that answer start at once (no Gradio concurrency limit): they wait at the
model's queue, which the API shares (rag/admission.py), so a page user is told
"busy" or waits there with a status line, and every answer ends by answer_timeout.
"""

from __future__ import annotations

import gradio as gr

from rag.settings import Settings
from ui.handlers import ChatHandlers
from ui.panels import ANSWERING, LIGHT_EVENT


EXAMPLES: list[tuple[str, str]] = [  # (question, label shown)
    ("What problem does TransliCo address, and how?", "What problem does TransliCo address, and how?"),
    ("Which model did they fine-tune, and on how much data?",
     "↳ then a follow-up: Which model did they fine-tune, and on how much data?"),
    ("Compare TransliCo and the Semantic Hub Hypothesis", "Compare TransliCo and the Semantic Hub Hypothesis"),
    ("What does DiffCSE learn, and how does it do against SimCSE?",
     "What does DiffCSE learn, and how does it do against SimCSE?"),
    ("What is the Platonic Representation Hypothesis?", "What is the Platonic Representation Hypothesis?"),
]


class ChatPanel:
    def __init__(self, settings: Settings) -> None:
        self.records = gr.State([])  # this session's exchanges (see ui/handlers.py)
        self.chatbot = gr.Chatbot(
            label="Conversation",
            show_label=False,
            elem_id="rag-chat",
            height=600,
            layout="bubble",
            buttons=["copy", "copy_all"],
            feedback_options=None,
            group_consecutive_messages=False,
            placeholder=(
                "**Ask a question about the papers** below, click an example, "
                "or pick papers on the right to compare them in a table."
            ),
        )
        with gr.Row(equal_height=True):
            self.question = gr.Textbox(
                label="Question",
                show_label=False,
                placeholder=f"Ask about the papers… (up to {settings.answering.max_question_chars:,} characters)",
                max_length=settings.answering.max_question_chars,
                lines=1,
                max_lines=6,
                scale=8,
                autofocus=True,
                elem_id="rag-question",
            )
            self.send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="rag-send")
        with gr.Row(elem_id="rag-buttons"):
            self.retry = gr.Button("↻ Retry last answer", size="sm", variant="secondary", elem_id="rag-retry")
            self.clear = gr.Button("✕ Clear conversation", size="sm", variant="secondary", elem_id="rag-clear")
            self.download = gr.DownloadButton(
                "⤓ Download conversation", size="sm", variant="secondary", interactive=False, elem_id="rag-download"
            )
        gr.Examples(
            examples=[[q] for q, _ in EXAMPLES],
            example_labels=[label for _, label in EXAMPLES],
            inputs=[self.question],
            label="Example questions (click one, then Ask)",
        )

    def wire(self, handlers: ChatHandlers, *, top_k: gr.Slider, scope: list, details: gr.JSON) -> None:
        """scope: the collection and filter inputs (ui/panels/scope.py), in respond's order."""
        outputs = [self.chatbot, self.records, self.question, details]
        answering = {**ANSWERING, "show_progress": "minimal"}
        chat_event = gr.on(
            triggers=[self.question.submit, self.send.click],
            fn=handlers.respond,
            inputs=[self.question, self.records, top_k, *scope],
            outputs=outputs,
            api_name="chat",
            api_description="Ask in this session (history kept server-side): returns the chat messages, "
            "the cleared textbox and the answer's details (query, cited titles, ...).",
            **answering,
        )
        retry_event = self.retry.click(
            handlers.retry,
            [self.records, top_k, *scope],
            outputs,
            api_name="retry",
            api_description="Regenerate the last answer of this session.",
            **answering,
        )
        self.clear.click(
            handlers.clear,
            None,
            [self.chatbot, self.records, details],
            api_name="clear",
            api_description="Forget this session's conversation.",
            cancels=[chat_event, retry_event],
            show_progress="hidden",
            concurrency_limit=None,
        )
        # The button downloads the file it holds when clicked, so the file follows the conversation.
        self.records.change(handlers.download_conversation, [self.records], [self.download], **LIGHT_EVENT)
        gr.api(handlers.ask, api_name="ask", **ANSWERING)
