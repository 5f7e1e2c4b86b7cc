"""Author a notebook from a percent-format script (`# %%` cells): `python tools/py2nb.py draft.py nbs/NN_name.ipynb`.

The notebook is the source of truth; this is only a convenience for writing one in a text editor. It keeps the
ids and outputs of cells whose source did not change, sets the standard Python 3 kernelspec and drops jupytext's metadata.
"""
import sys
from pathlib import Path

import jupytext, nbformat


def convert(src, dest):
    nb = jupytext.read(src)
    dest = Path(dest)
    if dest.exists():  # keep outputs of unchanged cells so a small edit does not wipe the committed figures
        old = {(c.cell_type, c.source): c for c in nbformat.read(dest, as_version=4).cells}
        for cell in nb.cells:
            match = old.get((cell.cell_type, cell.source))
            if match is None: continue
            if 'id' in match: cell.id = match.id  # stable ids keep the exported module's diff quiet
            if cell.cell_type == 'code': cell.outputs, cell.execution_count = match.outputs, match.execution_count
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    for cell in nb.cells: cell.metadata = {}
    nbformat.write(nb, dest)


if __name__ == '__main__':
    if len(sys.argv) != 3: sys.exit(__doc__)
    convert(*sys.argv[1:])
