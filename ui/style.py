"""How the page looks: its CSS (the elem_ids and classes that ui/render.py and the
panels use), the Gradio theme, and its one script (a click on [n] in an answer
opens that paper's evidence). System fonts only: nothing is fetched from a font
service."""

from __future__ import annotations

import gradio as gr

CSS = """
.gradio-container { max-width: 1320px !important; margin: 0 auto !important; }
#rag-header h1 { font-size: 1.7rem; margin: 0 0 .15rem 0; letter-spacing: -.01em; }
#rag-header .rag-tagline { margin: 0; color: var(--body-text-color-subdued); font-size: 1rem; }
#rag-intro { font-size: .95rem; }
#rag-intro p { margin: .2rem 0 0 0; }
#rag-intro p + p { color: var(--body-text-color-subdued); font-size: .9rem; }
.rag-status { color: var(--body-text-color-subdued); font-style: italic; }
.rag-found { margin-top: .5rem; border-top: 1px solid var(--border-color-primary); padding-top: .4rem; font-size: .85rem; }
.rag-found ol { margin: .2rem 0 0 1.1rem; padding: 0; }
.rag-found-text { color: var(--body-text-color-subdued); }
.rag-sources { margin-top: .6rem; border-top: 1px solid var(--border-color-primary); padding-top: .5rem; }
.rag-sources-heading { font-weight: 600; font-size: .9rem; margin-bottom: .3rem; }
.rag-hint { font-weight: 400; color: var(--body-text-color-subdued); font-size: .8rem; }
details.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: .35rem .6rem; margin: .3rem 0; background: var(--background-fill-secondary); }
details.rag-source > summary { cursor: pointer; font-size: .9rem; line-height: 1.35; }
details.rag-source[open] > summary { margin-bottom: .35rem; }
.rag-num { font-weight: 700; color: var(--color-accent); margin-right: .15rem; }
.rag-title { font-weight: 600; }
.rag-byline { color: var(--body-text-color-subdued); font-size: .9em; }
.rag-meta { font-size: .8rem; color: var(--body-text-color-subdued); margin-bottom: .25rem; }
.rag-abstract { font-size: .88rem; line-height: 1.5; }
.rag-abstract strong { font-weight: 600; }
mark.rag-support { background: rgba(250, 204, 21, .45); color: inherit; border-radius: 3px; padding: 0 .1rem; }
.rag-evidence { font-size: .88rem; line-height: 1.45; margin-bottom: .4rem; }
.rag-evidence ul { margin: .1rem 0 .2rem 1.1rem; padding: 0; }
.rag-withheld { font-size: .8rem; color: #b45309; font-style: italic; }
.rag-near-misses { font-size: .85rem; color: #6b7280; margin-top: .4rem; }
.rag-cite { color: var(--color-accent); cursor: pointer; font-weight: 600; }
.rag-cite:hover { text-decoration: underline; }
details.rag-source.rag-flash { outline: 2px solid var(--color-accent); }
.rag-note { font-size: .75rem; color: var(--body-text-color-subdued); margin-top: .3rem; }
.rag-model { font-size: .85rem; line-height: 1.45; }
.rag-model code { font-size: .8rem; }
.rag-llm-status { font-size: .9rem; font-weight: 600; margin-top: .4rem; display: flex;
  align-items: center; gap: .45rem; }
.rag-dot { width: .65rem; height: .65rem; border-radius: 50%; display: inline-block; flex: none; }
.rag-ok .rag-dot { background: #16a34a; }
.rag-wait .rag-dot { background: #f59e0b; animation: rag-pulse 1s infinite alternate; }
.rag-bad .rag-dot { background: #dc2626; }
.rag-bad { color: #b91c1c; }
@keyframes rag-pulse { from { opacity: .35; } to { opacity: 1; } }
.rag-status-detail { font-size: .75rem; white-space: pre-wrap; max-height: 8rem; overflow: auto; }
#rag-buttons button { min-width: 0; }
.rag-table-wrap { overflow-x: auto; }
table.rag-table { border-collapse: collapse; font-size: .88rem; line-height: 1.4; }
table.rag-table th, table.rag-table td { border: 1px solid var(--border-color-primary); padding: .3rem .45rem; vertical-align: top; text-align: left; }
table.rag-table th.rag-aspect { white-space: nowrap; }
.rag-cell-details summary { cursor: pointer; list-style: none; }
.rag-cell-source { font-size: .8rem; color: var(--body-text-color-subdued); margin-top: .25rem; }
.rag-not-stated { color: var(--body-text-color-subdued); }
.rag-differences { font-size: .9rem; margin-top: .4rem; }
.rag-differences ul { margin: .1rem 0 .2rem 1.1rem; padding: 0; }
.rag-error-tag { display: inline-block; font-size: .75rem; font-weight: 700; text-transform: uppercase;
  letter-spacing: .04em; color: #fff; background: #dc2626; border-radius: 4px; padding: 0 .4rem; margin-right: .3rem; }
"""

THEME = gr.themes.Soft(
    primary_hue="indigo",
    neutral_hue="slate",
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)  # system fonts only: nothing is fetched from a font service


# Opens the evidence of the paper whose [n] was clicked: the nearest answer that holds
# a <details class="rag-ev-n"> (rendered by ui/render.py) has it opened, scrolled to and flashed.
# A listener on the document, so answers rendered later are covered too.
CITATION_SCRIPT = r"""<script>
document.addEventListener('click', (event) => {
  const cite = event.target.closest && event.target.closest('.rag-cite');
  if (!cite) return;
  const number = [...cite.classList].find((name) => /^rag-cite-\d+$/.test(name)).slice('rag-cite-'.length);
  let node = cite.parentElement, target = null;
  while (node && !target) {
    target = node.querySelector('details.rag-ev-' + number);
    node = node.parentElement;
  }
  if (!target) return;
  target.open = true;
  target.scrollIntoView({block: 'nearest'});
  target.classList.add('rag-flash');
  setTimeout(() => target.classList.remove('rag-flash'), 1500);
});
</script>"""
