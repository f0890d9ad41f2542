"""Starting the servers: `rag ui` (the page) and `rag serve` (the page and the API on one port).

startup.py holds what every server does before it listens (the listen-address check,
SIGTERM handling, opening the served pipeline); app.py composes the page and the API.
The page (ui) and the API (api) use startup.py and never import each other.
"""
