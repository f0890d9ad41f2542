"""The comparison picker: choosing 2-3 papers writes "Compare A and B" into the
question box (by each paper's short name when that alone names it)."""

from __future__ import annotations

from typing import Sequence

import gradio as gr

from ui.handlers import ChatHandlers
from ui.panels import LIGHT_EVENT


class ComparePanel:
    def __init__(self, titles: Sequence[str]) -> None:
        with gr.Accordion("Compare papers", open=True):
            self.pick = gr.Dropdown(
                choices=sorted(titles, key=str.casefold),
                multiselect=True,
                max_choices=3,
                label="Pick 2–3 papers",
                info="Fills in a comparison question; then press Ask.",
                elem_id="rag-compare",
            )

    def wire(self, handlers: ChatHandlers, *, question: gr.Textbox, collection: gr.Dropdown) -> None:
        self.pick.change(handlers.comparison, [self.pick, collection], [question], **LIGHT_EVENT)
