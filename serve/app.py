"""`rag ui` and `rag serve`: the page alone, or the page and the API mounted on one port;
`rag llm-server`: the embedded model's OpenAI-compatible server alone."""

from __future__ import annotations

from rag.pipeline import Workspace
from rag.settings import Settings
from serve.startup import check_listen_address, check_model_address, open_served_pipeline


def serve_page(settings: Settings) -> None:
    """`rag ui`: load the index once, start the LLM in the background, serve the page."""
    from ui.app import build_app, launch

    check_listen_address(settings, settings.serving.ui_host)
    pipeline = open_served_pipeline(settings)
    with pipeline:
        app = build_app(pipeline)
        if pipeline.llm.embedded:
            print(f"starting the embedded model ({pipeline.llm.description}); the page shows its status", flush=True)
        launch(app, settings, block=True)


def serve_page_and_api(settings: Settings) -> None:
    """`rag serve`: the API and the page on settings.serving.serve_host:serve_port until Ctrl-C."""
    import gradio as gr
    import uvicorn

    from api.app import build_api
    from api.auth import configured_keys
    from rag.net import free_port
    from ui.app import build_app, page_options, queue_page

    keys = configured_keys(settings.serving)
    check_listen_address(settings, settings.serving.serve_host, api_keys=keys)
    pipeline = open_served_pipeline(settings)
    with pipeline:
        workspace = Workspace(pipeline)
        page = build_app(pipeline, workspace)
        queue_page(page, settings)
        app = gr.mount_gradio_app(build_api(workspace, keys), page, path="/", **page_options(settings))
        port = settings.serving.serve_port or free_port(settings.serving.serve_host)
        url = f"http://{settings.serving.serve_host}:{port}"
        print(f"paper-rag: page {url}/  API {url}/v1  (keys required: {'yes' if keys else 'no'}; Ctrl-C to stop)", flush=True)
        uvicorn.run(app, host=settings.serving.serve_host, port=port, log_level="warning")


def serve_embedded_model(settings: Settings, host: str, port: int) -> None:
    """`rag llm-server`: run the embedded model's server until Ctrl-C."""
    from rag.local_llm import run_forever

    check_model_address(settings, host)
    run_forever(settings, host=host, port=port)
