"""Execute the notebooks top to bottom as a reader would, and save their outputs in place (`make notebooks`).

    python tools/run_notebooks.py [NOTEBOOK_OR_GLOB ...] [--nbs nbs] [--timeout SECONDS] [--cell-timeout SECONDS]

No `IN_TEST` (nor pytest's variables) in the environment, `RETINA_PRESET=small` unless already set, `#| slow` cells
included (`#| eval: false` cells are skipped, as nbdev does), the working directory the notebook's folder. Each
notebook runs in a fresh process with execnb's `CaptureShell`; it is rewritten atomically only if every cell ran, so
on an error this stops with the notebook and cell named, and that notebook is left as it was. Outputs are tidied
before saving: progress bars dropped, absolute paths of the repository made relative (with a warning).
Run `nbdev-clean` afterwards (`make notebooks` does).
"""
from __future__ import annotations

import argparse, fnmatch, os, re, subprocess, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_re_progress = re.compile(r'^.*\d+%\|.*\|.*$|^.*\|\s*\d+/\d+\s*\[.*\]\s*$')  # tqdm's bar lines


def find_notebooks(nbs: Path, patterns: list[str]) -> list[Path]:
    "Notebooks under `nbs` (skipping `_`/`.` names) matching any of `patterns` (names, stems, globs or paths); all if none."
    found = sorted(p for p in nbs.rglob('*.ipynb') if not any(part[0] in '_.' for part in p.relative_to(nbs).parts))
    if not patterns: return found
    chosen = []
    for pattern in patterns:
        if Path(pattern).is_file():
            matches = [Path(pattern).resolve()]
        else:
            matches = [p for p in found if any(fnmatch.fnmatch(name, pattern) for name in _names(p.relative_to(nbs)))]
        if not matches: raise ValueError(f'no notebook in {nbs} matches {pattern!r}')
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _names(notebook: Path) -> list[str]:
    "The names a notebook answers to: `paper/02_fig2.ipynb`, `paper/02_fig2`, `02_fig2`, `fig2` and so on."
    stem = notebook.with_suffix('')
    short = re.sub(r'^\d+[a-zA-Z0-9]*_', '', stem.name)
    return [notebook.as_posix(), stem.as_posix(), notebook.name, stem.name, short, (stem.parent/short).as_posix()]


def reader_environment() -> dict:
    "This environment without the variables that make the notebooks think they run under test."
    env = {k: v for k, v in os.environ.items() if k != 'IN_TEST' and not k.startswith('PYTEST')}
    env.setdefault('RETINA_PRESET', 'small')
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    return env


# ---------------------------------------------------------------------------------------------------------------
# The worker: one notebook, in its own process.

def _text(value) -> str: return ''.join(value) if isinstance(value, list) else value


def replace_paths(text: str, replacements: list[tuple[str, str]], warned: set) -> str:
    "Replace each absolute path in `replacements` by its relative form; note the ones found in `warned`."
    for path, replacement in replacements:
        if path in text:
            warned.add(path)
            text = text.replace(path, replacement)
    return text


def tidy_stream(text: str) -> str:
    "Keep the last state of `\\r`-overwritten lines and drop progress-bar lines."
    lines = [line.rsplit('\r', 1)[-1] if '\r' in line.rstrip('\r\n') else line for line in text.splitlines(True)]
    return ''.join(line for line in lines if not _re_progress.match(line.rstrip('\n')))


def tidy_outputs(cell, replacements: list[tuple[str, str]], warned: set) -> None:
    "Tidy the outputs of `cell` in place: no progress bars, no absolute paths, no stream output left empty."
    outputs = []
    for output in cell.get('outputs', []):
        if output.get('output_type') == 'stream':
            output['text'] = replace_paths(tidy_stream(_text(output['text'])), replacements, warned)
            if not output['text'].strip(): continue
        data = output.get('data', {})
        for mime in [m for m in data if m.startswith('text/')]:
            data[mime] = replace_paths(_text(data[mime]), replacements, warned)
        outputs.append(output)
    cell['outputs'] = outputs


def run_one(path: Path, cell_timeout: int | None) -> int:
    "Execute the notebook at `path` in this process; save it atomically if every cell ran. Return an exit status."
    from execnb.shell import CaptureShell
    from fastcore.nbio import does_cell_eval, fm_default_eval, read_nb, write_nb
    from nbdev.frontmatter import nb_frontmatter
    path = path.resolve()
    nb = read_nb(path)
    default_eval = fm_default_eval(nb_frontmatter(nb))
    shell = CaptureShell(path)
    skip = lambda cell: cell.cell_type != 'code' or not does_cell_eval(cell, default_eval)
    failed = []

    def _postproc(cell):
        if shell.exc is not None and not failed: failed.append(cell)
    os.chdir(path.parent)
    try: shell.run_all(nb, exc_stop=True, preproc=skip, postproc=_postproc, cell_timeout=cell_timeout)
    except BaseException as error:
        cell = failed[0] if failed else None
        where = f'cell {cell.idx_ + 1} (id {cell.id})' if cell is not None else 'a cell'
        source = '\n'.join('    ' + line for line in (cell.source if cell is not None else '').splitlines()[:12])
        trace = ''.join(traceback.format_exception_only(type(error), error)).strip()
        print(f'run_notebooks: ERROR in {_shown(path)}, {where}; the notebook was left unchanged:\n{source}\n{trace}',
              file=sys.stderr)
        return 1
    repo, here = str(ROOT), str(path.parent)
    replacements = [(here + os.sep, ''), (here, '.'), (repo, os.path.relpath(ROOT, path.parent))]
    warned = set()
    for cell in nb.cells:
        if cell.cell_type == 'code': tidy_outputs(cell, replacements, warned)
    for found in sorted(warned):
        print(f'run_notebooks: warning: {_shown(path)}: outputs contained the absolute path {found!r}; made relative',
              file=sys.stderr)
    handle, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(handle)
    try:
        write_nb(nb, tmp)
        os.chmod(tmp, path.stat().st_mode & 0o7777)  # mkstemp makes it private; keep the notebook's own mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp): os.unlink(tmp)
    return 0


def _shown(path: Path) -> str:
    "A path relative to the repository (or the working directory) for messages."
    path = Path(path).resolve()
    for base in (ROOT, Path.cwd()):
        if path.is_relative_to(base): return path.relative_to(base).as_posix()
    return str(path)


# ---------------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('notebooks', nargs='*', help='notebook names, stems or globs under --nbs (default: all)')
    parser.add_argument('--nbs', default=None, help="notebooks folder (default: nbdev's nbs_path)")
    parser.add_argument('--timeout', type=float, default=None, help='seconds allowed per notebook (default: no limit)')
    parser.add_argument('--cell-timeout', type=int, default=None, help='seconds allowed per cell (default: no limit)')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker: return run_one(Path(args.worker), args.cell_timeout)
    if args.nbs: nbs = Path(args.nbs).resolve()
    else:
        from nbdev.config import get_config
        nbs = Path(get_config(ROOT).nbs_path).resolve()
    if not nbs.is_dir(): parser.error(f'--nbs: {nbs} is not a folder')
    try: notebooks = find_notebooks(nbs, args.notebooks)
    except ValueError as error: parser.error(str(error))
    env, total = reader_environment(), time.time()
    print(f"run_notebooks: {len(notebooks)} notebooks, RETINA_PRESET={env['RETINA_PRESET']}", flush=True)
    for notebook in notebooks:
        start = time.time()
        command = [sys.executable, str(Path(__file__).resolve()), '--worker', str(notebook)]
        if args.cell_timeout: command += ['--cell-timeout', str(args.cell_timeout)]
        try: status = subprocess.run(command, env=env, cwd=notebook.parent, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            print(f'run_notebooks: ERROR: {_shown(notebook)} ran past --timeout {args.timeout:g}s; left unchanged',
                  file=sys.stderr)
            return 1
        if status:
            print(f'run_notebooks: stopped at {_shown(notebook)} ({time.time() - start:.1f}s)', file=sys.stderr)
            return 1
        print(f'run_notebooks: {_shown(notebook)}: {time.time() - start:.1f}s', flush=True)
    print(f'run_notebooks: all {len(notebooks)} notebooks ran in {time.time() - total:.1f}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
