"""The comparison picker: 2-6 papers picked, optional aspects, and "Compare" puts them
side by side in a table in the chat, cell by cell; the last table downloads as CSV or
Markdown."""

from __future__ import annotations

from typing import Sequence

import gradio as gr

from ui.handlers import ChatHandlers
from ui.panels import ANSWERING, LIGHT_EVENT


class ComparePanel:
    def __init__(self, titles: Sequence[str], max_papers: int) -> None:
        with gr.Accordion("Compare papers", open=True):
            self.pick = gr.Dropdown(
                choices=sorted(titles, key=str.casefold),
                multiselect=True,
                max_choices=max_papers,
                label=f"Pick 2–{max_papers} papers",
                info="A table: a column per paper, a row per aspect, every cell cited.",
                elem_id="rag-compare",
            )
            self.aspects = gr.Textbox(
                label="Aspects (optional)",
                placeholder="e.g. training signal, languages covered",
                info="Comma-separated; empty: problem, approach, data / benchmarks, main result, limitation.",
                elem_id="rag-compare-aspects",
                max_lines=1,
            )
            self.run = gr.Button("Compare in a table", variant="primary", size="sm", elem_id="rag-compare-run")
            with gr.Row():
                self.csv = gr.DownloadButton("⤓ Table (CSV)", size="sm", interactive=False, elem_id="rag-table-csv")
                self.markdown = gr.DownloadButton("⤓ Table (Markdown)", size="sm", interactive=False, elem_id="rag-table-md")

    def wire(self, handlers: ChatHandlers, *, chatbot, records: gr.State, question: gr.Textbox, details, collection: gr.Dropdown) -> None:
        self.run.click(
            handlers.compare,
            [self.pick, self.aspects, records, collection],
            [chatbot, records, question, details],
            api_name="compare",
            api_description="Compare the picked papers in a table, in this session.",
            **{**ANSWERING, "show_progress": "minimal"},
        )
        records.change(lambda r: handlers.download_table(r, "csv"), [records], [self.csv], **LIGHT_EVENT)
        records.change(lambda r: handlers.download_table(r, "markdown"), [records], [self.markdown], **LIGHT_EVENT)
