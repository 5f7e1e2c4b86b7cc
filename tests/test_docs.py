"""The offline docs site (`make docs`), README generation and `make notebooks` (tools/build_docs.py, run_notebooks.py)."""
import base64, html, inspect, json, os, re, shutil, struct, subprocess, sys, zlib
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import build_docs  # noqa: E402

CORE_API = ['Preset', 'running_under_test', 'get_preset', 'configure_threads', 'seed_everything', 'artifact_dir',
            'atomic_write', 'write_json']


def _png(width=6, height=4) -> bytes:
    "A small valid PNG (a red-to-blue gradient), built by hand so the test needs no plotting library."
    rows = b''.join(b'\x00' + b''.join(bytes((255 * x // width, 0, 255 - 255 * x // width)) for x in range(width))
                    for _ in range(height))
    chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


PNG_B64 = base64.b64encode(_png()).decode()


def _notebook(cells) -> dict:
    return {'cells': cells, 'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
            'nbformat': 4, 'nbformat_minor': 5}


def _md(source, id): return {'cell_type': 'markdown', 'id': id, 'metadata': {}, 'source': source}


def _code(source, id, outputs=()):
    return {'cell_type': 'code', 'execution_count': None, 'id': id, 'metadata': {}, 'outputs': list(outputs), 'source': source}


FIGURE_NB = _notebook([
    _md('# figure demo\n\n> A page with a committed figure.', 'a1'),
    _md('The figure below was saved by `make notebooks`; the docs must embed it.', 'a2'),
    _code('plot_gradient()', 'a3', [{'output_type': 'display_data', 'metadata': {},
                                      'data': {'image/png': PNG_B64, 'text/plain': '<Figure size 600x400 with 1 Axes>'}}]),
])


class _Links(HTMLParser):
    "The hrefs inside the sidebar `<nav>`, and every `<img src>` of a page."
    def __init__(self):
        super().__init__()
        self.depth, self.sidebar, self.images = 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'nav' and 'site-sidebar' in (attrs.get('class') or ''): self.depth = 1
        elif tag == 'nav' and self.depth: self.depth += 1
        if tag == 'a' and self.depth and attrs.get('href'): self.sidebar.append(attrs['href'])
        if tag == 'img': self.images.append(attrs.get('src', ''))

    def handle_endtag(self, tag):
        if tag == 'nav' and self.depth: self.depth -= 1


def _parse(text):
    parser = _Links()
    parser.feed(text)
    return parser


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "Docs built from a copy of nbs/ plus a notebook with a committed figure, and a README, in a temporary folder."
    tmp = tmp_path_factory.mktemp('docs')
    nbs = tmp/'nbs'
    shutil.copytree(ROOT/'nbs', nbs, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc'))
    (nbs/'99_figure_demo.ipynb').write_text(json.dumps(FIGURE_NB, indent=1))
    out, readme = tmp/'site', tmp/'README.md'
    result = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--offline', '--out', str(out),
                             '--nbs', str(nbs), '--readme', str(readme), '--jobs', '2'],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    notebooks = build_docs.find_notebooks(nbs)
    return dict(tmp=tmp, nbs=nbs, out=out, readme=readme, log=result.stdout + result.stderr,
                pages={nb.as_posix(): build_docs.page_name(nb) for nb in notebooks})


def test_page_naming():
    assert build_docs.page_name(Path('00_core.ipynb')) == 'core.html'
    assert build_docs.page_name(Path('04a_metrics.ipynb')) == 'metrics.html'
    assert build_docs.page_name(Path('index.ipynb')) == 'index.html'
    assert build_docs.page_name(Path('paper/02_fig2.ipynb')) == 'paper/fig2.html'


def test_one_page_per_notebook(site):
    out, pages = site['out'], site['pages']
    assert (out/'index.html').exists() and pages['00_core.ipynb'] == 'core.html'
    assert pages['99_figure_demo.ipynb'] == 'figure_demo.html'
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*.html')) == sorted(pages.values())
    assert not (site['nbs']/'_proc').exists()  # the build writes nothing into the notebooks folder:
    assert {p.name for p in site['nbs'].iterdir()} - {p.name for p in (ROOT/'nbs').iterdir()} == {'99_figure_demo.ipynb'}


def test_every_sidebar_links_every_page(site):
    out, pages = site['out'], set(site['pages'].values())
    for page in pages:
        links = _parse((out/page).read_text())
        targets = {str(PurePosixPath(os.path.normpath(os.path.join(os.path.dirname(page), href.split('#')[0]))))
                   for href in links.sidebar if not re.match(r'^[a-z]+:', href)}
        assert targets >= pages, f'{page}: sidebar misses {sorted(pages - targets)}'
        for target in targets: assert (out/target).exists(), f'{page} links to missing {target}'


def test_no_cell_mixes_imports_with_code(site):
    assert 'Found cells containing imports' not in site['log']  # nbdev runs such cells at every docs build


def test_figure_embedded(site):
    text = (site['out']/'figure_demo.html').read_text()
    images = _parse(text).images
    assert f'data:image/png;base64,{PNG_B64}' in [src.replace('\n', '') for src in images]
    assert all(src.startswith('data:') for src in images)  # no external image files
    assert '<title>figure demo' in text and 'A page with a committed figure.' in text


def _section(text, name):
    "The HTML of the API reference entry of `name`: from its heading to the next entry."
    match = re.search(rf'<h3 id="{re.escape(name)}">', text)
    assert match, f'no API heading for {name}'
    end = text.find('<hr', match.end())
    return text[match.start(): end if end > 0 else len(text)]


def _plain(fragment): return html.unescape(re.sub(r'<[^>]+>', '', fragment))


def test_core_api_reference(site):
    from fastcore.docments import docments
    import retina_nbdev.core as core
    text = (site['out']/'core.html').read_text()
    for name in CORE_API:
        section, obj = _section(text, name), getattr(core, name)
        keyword = 'class' if inspect.isclass(obj) else 'def'
        assert re.search(rf'{keyword}\s+{name}\(', _plain(section)), f'{name}: no signature'
        params = [p for p in inspect.signature(inspect.unwrap(obj)).parameters if p != 'self']
        documented = {k: v['docment'] for k, v in docments(inspect.unwrap(obj), full=True).items()
                      if k in params and v['docment']}
        if not params: continue
        assert documented, f'{name} has parameters without docments'
        assert '<table' in section, f'{name}: no parameter table'
        rows = re.findall(r'<tr>(.*?)</tr>', section, flags=re.DOTALL)
        cells = {_plain(re.findall(r'<td>(.*?)</td>', row, flags=re.DOTALL)[0]).strip(): _plain(row) for row in rows
                 if '<td>' in row}
        for param, docment in documented.items():
            assert param in cells, f'{name}: no row for {param}'
            assert docment.replace('`', '') in cells[param], f'{name}.{param}: docment missing'
    assert 'a preset name or a Preset; None picks one from the environment' in _plain(_section(text, 'get_preset'))


def test_no_absolute_paths(site):
    for page in site['out'].rglob('*.html'):
        text = page.read_text()
        for path in (str(ROOT), str(site['tmp']), str(Path.home()) + '/'):
            assert path not in text, f'{page.name} contains {path}'


def test_readme(site):
    text = site['readme'].read_text()
    first_screen = '\n'.join(text.splitlines()[:25])
    assert first_screen.startswith('# retina_nbdev')
    assert 'make demo' in first_screen and 'make test' in first_screen
    assert '#|' not in text and 'default_exp' not in text  # directives and hidden cells left out
    images = re.findall(r'!\[\]\(([^)]+)\)', text)
    assert images and all((site['readme'].parent/link).is_file() for link in images), images  # figures beside it, linked relative to it


# ---------------------------------------------------------------------------------------------------------------
# tools/run_notebooks.py

TRIVIAL_NB = _notebook([
    _md('# trivial\n\n> A notebook for the runner.', 'b1'),
    _code("import os, sys\nprint(os.environ.get('IN_TEST'), os.environ.get('RETINA_PRESET'), 'pytest' in sys.modules)", 'b2'),
    _code("#| slow\nprint(os.getcwd())\n"
          "for i in range(3): print(f'\\r{50 * i}%|#####| {i}/2 [00:00<00:00]', end='', file=sys.stderr)\n6 * 7", 'b3'),
    _code("#| eval: false\nraise RuntimeError('not run by make notebooks')", 'b4'),
])


def _run_notebooks(nbs, *names):
    env = {**os.environ, 'IN_TEST': '1'}  # the runner must drop it (and pytest's variables)
    env.pop('RETINA_PRESET', None)
    return subprocess.run([sys.executable, str(ROOT/'tools'/'run_notebooks.py'), '--nbs', str(nbs), *names],
                          env=env, capture_output=True, text=True, timeout=120)


def test_run_notebooks_saves_outputs(tmp_path):
    (tmp_path/'trivial.ipynb').write_text(json.dumps(TRIVIAL_NB))
    result = _run_notebooks(tmp_path, 'trivial')
    assert result.returncode == 0, result.stderr
    assert re.search(r'trivial\.ipynb: \d+\.\ds', result.stdout), result.stdout  # per-notebook timing
    cells = json.loads((tmp_path/'trivial.ipynb').read_text())['cells']
    assert ''.join(cells[1]['outputs'][0]['text']) == 'None small False\n'  # a reader's environment, small preset
    slow = cells[2]['outputs']
    assert [o['output_type'] for o in slow] == ['stream', 'execute_result']  # the progress bar is dropped
    assert ''.join(slow[0]['text']) == '.\n'  # the notebook's folder, made relative
    assert ''.join(slow[1]['data']['text/plain']) == '42'
    assert cells[3]['outputs'] == []
    assert str(tmp_path) not in (tmp_path/'trivial.ipynb').read_text()
    assert 'absolute path' in result.stderr


def test_run_notebooks_error_leaves_notebook(tmp_path):
    broken = _notebook(TRIVIAL_NB['cells'][:2] + [_code('1 / 0', 'c9')])
    (tmp_path/'broken.ipynb').write_text(json.dumps(broken))
    before = (tmp_path/'broken.ipynb').read_text()
    result = _run_notebooks(tmp_path)
    assert result.returncode == 1
    assert re.search(r'ERROR in .*broken\.ipynb, cell 3 \(id c9\)', result.stderr), result.stderr
    assert 'ZeroDivisionError' in result.stderr
    assert (tmp_path/'broken.ipynb').read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ['broken.ipynb']  # no temporary file left behind
    assert _run_notebooks(tmp_path, 'nonexistent').returncode == 2
