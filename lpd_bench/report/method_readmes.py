"""Each method's results table in its own README (``MethodSpec.readme``), from the main table.

The table goes between two marker lines of the README, which the report rewrites and leaves the
rest of the file alone; a README without the markers is not touched.
"""
from pathlib import Path

import pandas as pd

from ..methods import registered_methods
from .tables import formatted

BEGIN = '<!-- lpd-bench report: results (generated, do not edit) -->'
END = '<!-- lpd-bench report: end of results -->'
COLUMNS = ('mIoU', 'mDice', 'FwIoU')


def method_results_markdown(main: pd.DataFrame, method: str, source: str) -> str:
    """The ``main`` table's rows of ``method`` (every gating x CRF x background) as Markdown."""
    rows = main[main['method'] == method].reset_index(drop=True)
    if not len(rows):
        return ''
    shown = formatted(rows, ['Gating', 'CRF', 'Background'], COLUMNS)
    return (f'Test split, mean ± std over seeds, last checkpoint ({source})\n\n'
            f'{shown.to_markdown(index=False)}\n')


def replace_block(text: str, block: str) -> str:
    """``text`` with the lines between :data:`BEGIN` and :data:`END` replaced by ``block``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f'{text[:start]}\n{block}{text[end:]}'


def update_method_readmes(main: pd.DataFrame, root, source: str) -> list:
    """Rewrite the results block of every registered method's README under ``root`` that has the
    markers and results in ``main``; returns the files written."""
    written = []
    for spec in registered_methods():
        if not spec.readme:
            continue
        path = Path(root) / spec.readme
        text = path.read_text() if path.is_file() else ''
        block = method_results_markdown(main, spec.name, source)
        if BEGIN in text and END in text and block:
            updated = replace_block(text, block)
            if updated != text:
                path.write_text(updated)
                written.append(path)
    return written
