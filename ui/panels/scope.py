"""What a question searches: the collection, and filters by year, author and
category. Every answer event (and /chat, /retry) takes these as inputs; picking
another collection refills the comparison picker with its papers and says what it
holds at the top of the page."""

from __future__ import annotations

import gradio as gr

from ui.handlers import ChatHandlers
from ui.panels import LIGHT_EVENT


class ScopePanel:
    def __init__(self, handlers: ChatHandlers) -> None:
        with gr.Accordion("Collection and filters", open=False, elem_id="rag-scope"):
            self.collection = gr.Dropdown(
                choices=handlers.collection_choices(),
                value=handlers.settings.storage.collection,
                label="Collection",
                info="Which papers questions search; add your own below.",
                elem_id="rag-collection",
            )
            with gr.Row():
                self.year_from = gr.Number(label="From year", precision=0, value=None, minimum=0, elem_id="rag-year-from")
                self.year_to = gr.Number(label="To year", precision=0, value=None, minimum=0, elem_id="rag-year-to")
            self.author = gr.Textbox(label="Author contains", max_length=200, elem_id="rag-author")
            self.category = gr.Textbox(
                label="Category", placeholder="e.g. cs.CL, or cs for all of it", max_length=100, elem_id="rag-category"
            )

    @property
    def inputs(self) -> list[gr.components.Component]:
        """The answer events' scope inputs, in ChatHandlers.respond's order."""
        return [self.collection, self.year_from, self.year_to, self.author, self.category]

    def wire(self, handlers: ChatHandlers, *, compare_pick: gr.Dropdown, intro: gr.Markdown) -> None:
        self.collection.change(handlers.switch_collection, [self.collection], [compare_pick, intro], **LIGHT_EVENT)
