"""Settings and the model: papers retrieved per question (each request gets an
engine with that top_k), which model answers, and its status, polled (every
second while the model starts, then every five)."""

from __future__ import annotations

import gradio as gr

from rag.llm import ChatLLM
from rag.settings import Settings
from ui import render
from ui.handlers import ChatHandlers
from ui.panels import LIGHT_EVENT


class SettingsPanel:
    def __init__(self, settings: Settings, llm: ChatLLM) -> None:
        with gr.Accordion("Settings", open=True):
            self.top_k = gr.Slider(
                minimum=1,
                maximum=settings.retrieval.max_top_k,
                step=1,
                value=min(settings.retrieval.top_k, settings.retrieval.max_top_k),
                label="Papers retrieved per question",
                info=f"The {settings.answering.context_papers} best (all named papers, for comparisons) are given to the model.",
                elem_id="rag-top-k",
            )
            gr.HTML(render.model_description(llm), elem_id="rag-model")
            self.status = gr.HTML(render.status_badge(llm.status()), elem_id="rag-llm-status")
        self.timer = gr.Timer(1.0)

    def wire(self, handlers: ChatHandlers, *, app: gr.Blocks) -> None:
        outputs = [self.status, self.timer]  # the badge, and the timer's next interval
        self.timer.tick(handlers.poll_status, None, outputs, **LIGHT_EVENT)
        app.load(handlers.poll_status, None, outputs, **LIGHT_EVENT)
