"""Runs llama.cpp's OpenAI-compatible server as a child process that ends with its parent.

    python -m rag.llm_child PARENT_PID llama_cpp.server --model ... (the server's arguments)

A parent killed by SIGKILL, or by SIGTERM under the default handler, runs no clean-up,
and a plain child would live on holding the model's memory and the cores. A watcher
thread in the child ends it once its parent is gone (it is then re-parented).
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time

PARENT_POLL_SECONDS = 1.0


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)  # no clean-up to wait for: the server holds nothing that outlives it


def main(argv: list[str]) -> None:
    parent, module, *arguments = argv
    threading.Thread(target=_exit_when_orphaned, args=(int(parent),), daemon=True).start()
    sys.argv = [module, *arguments]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
