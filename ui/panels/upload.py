"""Adding your own papers from the page: a .bib, .ris, .jsonl, .csv or .txt file
is read and summarised (papers found, entries skipped and why), then ingested
into a chosen or new collection with a progress bar. Ingesting runs in its own
concurrency group, so the chat goes on meanwhile; when it is done, questions on
that collection use the new index. Off with the uploads_enabled setting."""

from __future__ import annotations

import gradio as gr

from ui.handlers import ChatHandlers
from ui.panels import LIGHT_EVENT

UPLOAD_GROUP = "upload"  # one ingest at a time (the index takes one writer anyway)
FILE_TYPES = [".bib", ".ris", ".jsonl", ".json", ".csv", ".txt"]
NEW_COLLECTION = "my-papers"  # the name offered for a first upload


class UploadPanel:
    def __init__(self, handlers: ChatHandlers) -> None:
        limit = handlers.settings.serving.max_upload_mb
        with gr.Accordion("Add your papers", open=False, elem_id="rag-upload"):
            self.file = gr.File(
                label=f"BibTeX, RIS, arXiv JSON Lines, CSV or text (up to {limit:g} MB)",
                file_types=FILE_TYPES,
                file_count="single",
                type="filepath",
                elem_id="rag-upload-file",
            )
            self.summary = gr.HTML(elem_id="rag-upload-result")
            names = [name for _, name in handlers.collection_choices()]
            self.target = gr.Dropdown(
                choices=names,
                value=NEW_COLLECTION,
                allow_custom_value=True,
                label="Add to collection",
                info="Pick one, or type a new name (lower-case letters, digits, '-').",
                elem_id="rag-upload-target",
            )
            self.add = gr.Button("Add papers", variant="primary", interactive=False, elem_id="rag-upload-add")

    def wire(self, handlers: ChatHandlers, *, collection: gr.Dropdown) -> None:
        self.file.change(handlers.preview_upload, [self.file], [self.summary, self.add], **LIGHT_EVENT)
        self.add.click(
            handlers.add_upload,
            [self.file, self.target],
            [self.summary, collection],
            concurrency_id=UPLOAD_GROUP,
            concurrency_limit=1,
            api_visibility="private",
            show_progress="full",
        )
