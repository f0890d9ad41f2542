"""The last answer as data (Answer.to_dict()): the query searched, the papers
retrieved, the sources given to the model, the checks and the timings. The chat
panel's events fill it."""

from __future__ import annotations

import gradio as gr


class DetailsPanel:
    def __init__(self) -> None:
        with gr.Accordion("Last answer: what was searched", open=False):
            self.json = gr.JSON(label="Query, retrieved papers, timings", elem_id="rag-details")
