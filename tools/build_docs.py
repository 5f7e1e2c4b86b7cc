"""Render the notebooks to a browsable HTML site, with or without Quarto; write README.md from `index.ipynb`.

    python tools/build_docs.py [--out _docs] [--nbs nbs] [--readme [PATH]] [--offline | --quarto] [--jobs N]

With Quarto on PATH (and not `--offline`) this is `nbdev-docs`. Without it (our machines: the Quarto PyPI package
downloads a binary at build time) it renders offline, with nothing but Python:

1. nbdev's own doc processing (`nbdev.processors.FilterDefaults`, as `nbdev-proc-nbs` runs it, with `IN_TEST=1`)
   writes processed copies of the notebooks to a temporary folder: frontmatter from the `# title` cell, `show_doc`
   cells added after exported definitions and executed, hidden and directive-only cells dropped. `#| export` cells
   are shown as folded "Exported source" (nbdev's `#| exports`), and `show_doc` renders a signature, the docstring
   and a parameter table from the docments. Nothing is written into `nbs/`; outputs a reader sees are the committed
   ones (`make notebooks`), never those of the doc-processing run.
2. nbconvert's `HTMLExporter` turns each processed notebook into one self-contained page (figures embedded as
   `data:` URIs), with a navbar and a sidebar built from `nbs/sidebar.yml` (nbdev's `nbdev_sidebar` layout if it is
   absent; notebooks it misses are appended), links between pages relative, so the site works from disk.

`--readme` writes README.md (or PATH) from `index.ipynb` without Quarto: markdown cells as they are, code cells as
```python blocks followed by their committed outputs; hidden cells and directives left out.
"""
from __future__ import annotations

import argparse, base64, contextlib, html, importlib, io, json, os, re, shutil, subprocess, sys, tempfile, time, warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HIDE_DIRECTIVES = {'hide', 'export', 'exporti', 'default_exp'}
_SCHEMA_KEYS = {'code': {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count'},
                'markdown': {'cell_type', 'id', 'metadata', 'source', 'attachments'},
                'raw': {'cell_type', 'id', 'metadata', 'source', 'attachments'}}


def _config():
    "nbdev's configuration of this repository (read from `pyproject.toml`)."
    from nbdev.config import get_config
    return get_config(ROOT)


def find_notebooks(nbs: Path) -> list[Path]:
    "Every notebook under `nbs`, relative to it, skipping files and folders that start with `_` or `.`."
    found = [p.relative_to(nbs) for p in nbs.rglob('*.ipynb')]
    return sorted(p for p in found if not any(part[0] in '_.' for part in p.parts))


def page_name(notebook: Path) -> str:
    "The page a notebook becomes: nbdev's naming (`00_core.ipynb` -> `core.html`, numeric prefix dropped)."
    from nbdev.config import nbpath2html
    return nbpath2html(notebook).as_posix()


# ---------------------------------------------------------------------------------------------------------------
# Step 1: nbdev's doc processing, one worker process per CPU (each notebook gets a fresh IPython shell).

def _table_renderer():
    "A `show_doc` renderer: nbdev's heading and signature (without docment comments), the docstring, a parameter table."
    import inspect
    from fastcore.docments import DocmentTbl, DocmentText
    from nbdev.showdoc import BasicMarkdownRenderer
    from nbdev.doclinks import NbdevLookup

    class TableRenderer(BasicMarkdownRenderer):
        def _repr_markdown_(self):
            if not isinstance(self.dm, DocmentText): return super()._repr_markdown_()
            signature = DocmentText(self.sym, maxline=100, docstring=False)
            for value in signature.dm.values(): value['docment'] = None  # the table below carries them
            signature = str(signature)
            if inspect.isclass(self.sym): signature = re.sub(r'\)(->None)?:$', ')', re.sub(r'^def ', 'class ', signature))
            doc = '---\n\n'
            source = NbdevLookup().code(self.fn)
            if source: doc += f'<a class="source-link" href="{html.escape(source)}">source</a>\n\n'
            if self.nm.lower() != self.nm: doc += f'<a id="{html.escape(self.nm.lower())}"></a>\n\n'  # nbdev's anchor
            doc += f"{'#' * self.title_level} {self.nm}\n\n```python\n{signature}\n```\n\n"
            if self.docs: doc += f'*{self.docs.strip()}*\n\n'
            return doc + self._table()

        def _table(self):
            # a class defined in the doc-processing shell has no source file, so its docments come from the library
            candidates = [self.sym]
            if TableRenderer.module and getattr(self.sym, '__module__', None) == '__main__':
                with contextlib.suppress(Exception):
                    candidates.append(getattr(importlib.import_module(TableRenderer.module), self.nm))
            for sym in candidates:
                with contextlib.suppress(Exception):
                    if table := str(DocmentTbl(sym)): return table
            return ''

    TableRenderer.module = None  # the library module of the notebook being processed, set by `process_notebook`
    return TableRenderer


def _docs_version(source: str) -> str:
    "Show `#| export` cells in the docs the way nbdev shows `#| exports`: source folded below the API reference."
    return re.sub(r'^(\s*#\|\s*)export(\s*)$', r'\1exports\2', source, count=1, flags=re.MULTILINE)


def _DocFilters(name: str):
    "nbdev's `FilterDefaults`, except that a cell run only because it contains an import may fail with a warning."
    from nbdev.processors import FilterDefaults, exec_show_docs

    class tolerant_exec_show_docs(exec_show_docs):
        def __call__(self, cell):
            try: super().__call__(cell)
            except Exception as error:
                needed = getattr(cell, 'has_sd', False) or re.search(r'^show_doc\(', cell.source, flags=re.MULTILINE) \
                    or cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}
                if needed: raise
                self.k.exc = None
                print(f'build_docs: warning: {name}: nbdev runs cells that contain an import to build the docs; this one '
                      f'failed ({type(error.__cause__ or error).__name__}: {error.__cause__ or error}); put the import '
                      f'in a cell of its own:\n{cell.source}', file=sys.stderr)

    class DocFilters(FilterDefaults):
        def base_procs(self):  # `mv_exports` is left out: `prepare_page` puts each API reference above its source
            procs = [tolerant_exec_show_docs if p is exec_show_docs else p for p in super().base_procs()]
            return [p for p in procs if getattr(p, '__name__', '') != 'mv_exports']
    return DocFilters()


def process_notebook(src: str, dest: str) -> float:
    "Run nbdev's doc processors on notebook `src`, writing the processed notebook to `dest`; return the seconds taken."
    start = time.time()
    os.chdir(ROOT)  # nbdev reads its configuration from the working directory
    os.environ['IN_TEST'] = '1'  # as `nbdev-proc-nbs` does: doc processing runs at the test preset
    import nbdev.showdoc
    from fastcore.nbio import read_nb, write_nb
    renderer = nbdev.showdoc.BasicMarkdownRenderer = _table_renderer()
    nb = read_nb(src)
    default_exp = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', '\n'.join(c.source for c in nb.cells if c.cell_type == 'code'),
                            flags=re.MULTILINE)
    if default_exp: renderer.module = f'{Path(_config().lib_path).name}.{default_exp.group(1)}'
    for cell in nb.cells:
        if cell.cell_type == 'code': cell.set_source(_docs_version(cell.source))
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Found cells containing imports')
        _DocFilters(Path(src).name)(nb)
    for cell in nb.cells:
        if getattr(cell, 'has_sd', False): cell.metadata['show_doc'] = True  # survives write_nb, unlike has_sd
    write_nb(nb, dest)
    return time.time() - start


def process_all(nbs: Path, notebooks: list[Path], proc: Path, jobs: int) -> None:
    "Process `notebooks` into `proc` in parallel; stop with the notebook's name on the first failure."
    tasks = [(str(nbs/nb), str(proc/nb)) for nb in notebooks]
    for _, dest in tasks: Path(dest).parent.mkdir(parents=True, exist_ok=True)
    context = get_context('spawn')  # a fresh interpreter: no state from this process, TensorFlow imported once per worker
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tasks))), mp_context=context) as pool:
        futures = {pool.submit(process_notebook, *task): name for task, name in zip(tasks, notebooks)}
        for future in as_completed(futures):
            try: print(f'build_docs: processed {futures[future]} in {future.result():.1f}s')
            except Exception as error:
                for other in futures: other.cancel()
                raise SystemExit(f'build_docs: processing {futures[future]} failed:\n{error}') from None


# ---------------------------------------------------------------------------------------------------------------
# Step 2: processed notebook -> nbformat-valid notebook with cell-level options -> HTML page.

_re_option = re.compile(r'^\s*#\|\s*([\w-]+)\s*(?::\s*(.*?))?\s*$')


def _split_options(source: str) -> tuple[dict, str]:
    "Leading `#| key: value` lines of a code cell as a dict, and the rest of the source."
    lines, options = source.splitlines(True), {}
    while lines and (match := _re_option.match(lines[0])):
        options[match.group(1)] = (match.group(2) or '').strip().strip('"\'')
        lines.pop(0)
    return options, ''.join(lines).strip('\n')


def _frontmatter(cell: dict) -> dict:
    "The YAML mapping of a `---`-fenced raw cell, or {}."
    import yaml
    source = ''.join(cell.get('source', ''))
    match = re.match(r'^\s*---\s*\n(.*?)\n---\s*$', source, flags=re.DOTALL)
    if cell.get('cell_type') != 'raw' or not match: return {}
    try: return yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError: return {}


def prepare_page(processed: dict, original: dict) -> tuple[dict, dict]:
    "Turn a processed notebook into an nbformat-valid one for nbconvert; return it and its frontmatter."
    committed = {c.get('id'): c for c in original.get('cells', []) if c.get('cell_type') == 'code'}
    cells, frontmatter = [], {}
    for cell in processed['cells']:
        source = ''.join(cell.get('source', ''))
        if not frontmatter and (fm := _frontmatter(cell)):
            frontmatter = fm
            continue
        if cell['cell_type'] == 'markdown' and source.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'):
            continue
        metadata = {}
        if cell['cell_type'] == 'code':
            options, source = _split_options(source)
            show_doc = cell.get('metadata', {}).get('show_doc', False)
            if not show_doc and cell.get('id') in committed:  # readers see the committed outputs, not this run's
                cell['outputs'] = committed[cell['id']].get('outputs', [])
                cell['execution_count'] = committed[cell['id']].get('execution_count')
            if options.get('include') == 'false' or options.keys() & _HIDE_DIRECTIVES: continue
            if options.get('output') == 'false': cell['outputs'] = []
            if options.get('echo') == 'false' or not source.strip():
                metadata['transient'] = {'remove_source': True}
                if not cell.get('outputs'): continue
            if 'code-fold' in options: metadata['code_fold'] = options.get('code-summary') or 'Code'
            if show_doc: metadata['tags'] = ['api-doc']
            for output in cell.get('outputs', []):
                if output.get('output_type') == 'execute_result' and output.get('execution_count') is None:
                    output['execution_count'] = cell.get('execution_count')
        cell = {k: v for k, v in cell.items() if k in _SCHEMA_KEYS.get(cell['cell_type'], ())}
        cell.update(source=source, metadata=metadata)
        cells.append(cell)
    i = 0
    while i < len(cells):  # exported source below its API reference, as nbdev shows `#| exports`
        end = i + 1
        if cells[i]['metadata'].get('code_fold'):
            while end < len(cells) and 'api-doc' in cells[end]['metadata'].get('tags', []): end += 1
            cells[i:end] = cells[i + 1:end] + [cells[i]]
        i = end
    notebook = dict(processed, cells=cells, nbformat=4, nbformat_minor=max(processed.get('nbformat_minor', 5), 5))
    notebook['metadata'] = {k: v for k, v in processed.get('metadata', {}).items() if k in ('kernelspec', 'language_info')}
    return notebook, frontmatter


def _relative(target: str, page: str) -> str:
    "The link from `page` to `target` (both site paths, `/`-separated)."
    return os.path.relpath(target, os.path.dirname(page) or '.').replace(os.sep, '/')


def read_sidebar(nbs: Path, notebooks: list[Path]) -> list:
    "Sidebar entries: `sidebar.yml`'s contents (nbdev's generated layout if absent), then any notebook it misses."
    import yaml
    path = nbs/'sidebar.yml'
    if path.exists(): text = path.read_text()
    else:
        from nbdev.quarto import nbdev_sidebar
        with contextlib.redirect_stdout(io.StringIO()) as captured:
            nbdev_sidebar.__wrapped__(path=str(nbs), printit=True, force=True)
        text = captured.getvalue()
    try: contents = (yaml.safe_load(text) or {})['website']['sidebar']['contents']
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise ValueError(f'{path}: expected website.sidebar.contents, a list of notebooks and sections ({error})') from None

    def _listed(entries):
        for entry in entries:
            if isinstance(entry, str): yield Path(entry).as_posix()
            elif isinstance(entry, dict):
                if entry.get('href'): yield Path(entry['href']).as_posix()
                yield from _listed(entry.get('contents', []))
    listed = set(_listed(contents))
    missing = [nb.as_posix() for nb in notebooks if nb.as_posix() not in listed]
    if missing: print(f'build_docs: not in sidebar.yml, appended to the sidebar: {", ".join(missing)}')
    return list(contents) + missing


def render_sidebar(entries: list, pages: dict, titles: dict, page: str) -> str:
    "The sidebar's HTML for `page`: every page, in `sidebar.yml`'s order and sections, linked relatively."
    def _link(target, text=None):
        if target not in pages: return ''
        href, text = pages[target], text or titles[pages[target]]
        active = ' class="active" aria-current="page"' if href == page else ''
        return f'<li><a href="{_relative(href, page)}"{active}>{html.escape(text)}</a></li>'

    def _items(items):
        out = []
        for entry in items:
            if isinstance(entry, str): out.append(_link(Path(entry).as_posix()))
            elif isinstance(entry, dict) and 'section' in entry:
                head = html.escape(str(entry['section']))
                if entry.get('href') and Path(entry['href']).as_posix() in pages:
                    head = f'<a href="{_relative(pages[Path(entry["href"]).as_posix()], page)}">{head}</a>'
                out.append(f'<li class="section"><span class="section-title">{head}</span>'
                           f'<ul>{_items(entry.get("contents", []))}</ul></li>')
            elif isinstance(entry, dict) and entry.get('href'):
                out.append(_link(Path(entry['href']).as_posix(), entry.get('text')))
        return ''.join(out)
    return f'<ul class="sidebar-list">{_items(entries)}</ul>'


SITE_CSS = """
:root { --site-nav-height: 3.2rem; --site-accent: #2c6fad; }
html, body { margin: 0; padding: 0; }
body.jp-Notebook { padding: 0 !important; overflow: visible; background: #fff; }
.site-navbar { position: sticky; top: 0; z-index: 10; height: var(--site-nav-height); display: flex; align-items: center;
  gap: 1.5rem; padding: 0 1.5rem; background: var(--site-accent); color: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; box-shadow: 0 1px 3px rgba(0,0,0,.2); }
.site-navbar a { color: #fff; text-decoration: none; }
.site-navbar .site-title { font-size: 1.25rem; font-weight: 600; }
.site-navbar .site-links { margin-left: auto; display: flex; gap: 1.2rem; font-size: .95rem; }
.site-layout { display: flex; align-items: flex-start; }
.site-sidebar { position: sticky; top: var(--site-nav-height); flex: 0 0 15rem; max-height: calc(100vh - var(--site-nav-height));
  overflow-y: auto; padding: 1.5rem 1rem 2rem 1.5rem; box-sizing: border-box; border-right: 1px solid #e5e5e5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: .92rem; }
.site-sidebar ul { list-style: none; margin: 0; padding: 0; }
.site-sidebar ul ul { padding-left: .9rem; }
.site-sidebar li { margin: .2rem 0; }
.site-sidebar a { color: #333; text-decoration: none; display: block; padding: .15rem .4rem; border-radius: 4px; }
.site-sidebar a:hover { background: #eef3f8; }
.site-sidebar a.active { color: var(--site-accent); font-weight: 600; background: #eaf1f8; }
.site-sidebar .section-title { display: block; margin-top: .7rem; font-weight: 600; color: #555;
  text-transform: uppercase; font-size: .78rem; letter-spacing: .04em; padding: 0 .4rem; }
.site-main { flex: 1 1 auto; min-width: 0; max-width: 62rem; padding: 1.5rem 2.5rem 4rem 2.5rem; box-sizing: border-box; }
.site-main, .site-main summary, .page-header { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.page-header h1 { font-size: 2.1rem; margin: .2rem 0 .4rem 0; }
.page-header .description { font-size: 1.1rem; color: #555; margin: 0 0 1.5rem 0; }
.jp-Cell { padding: 0 !important; }
.jp-InputArea { overflow: visible !important; }
.jp-InputArea-editor { overflow-x: auto !important; }
.jp-InputArea-editor { background: #f7f7f7 !important; border: 1px solid #e3e3e3 !important; border-radius: 4px; }
details.code-fold > summary { cursor: pointer; color: #666; font-size: .9rem; margin: .3rem 0; }
.jp-RenderedMarkdown table, .jp-RenderedHTMLCommon table { border-collapse: collapse; margin: .6rem 0 1rem 0; }
.jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td { border: 1px solid #ddd !important; padding: .3rem .6rem !important;
  text-align: left !important; vertical-align: top; }
.jp-RenderedHTMLCommon thead { background: #f3f6f9; }
.jp-RenderedHTMLCommon table { margin-left: 0 !important; margin-right: auto !important; }
.jp-RenderedMarkdown pre { background: #f7f7f7; border: 1px solid #e3e3e3; border-radius: 4px; padding: .5rem .7rem; }
.api-doc .jp-RenderedMarkdown hr { margin: 1.5rem 0 .8rem 0; border: 0; border-top: 1px solid #ccc; }
.api-doc .jp-RenderedMarkdown h3 { font-family: var(--jp-code-font-family); font-size: 1.15rem; margin-top: .4rem; }
.api-doc pre { background: #f4f7fa !important; border-left: 3px solid var(--site-accent); padding: .5rem .8rem !important; }
a.source-link { float: right; font-size: .85rem; }
.api-doc p:has(> a[id]:only-child) { margin: 0; }
.site-footer { margin-top: 3rem; color: #888; font-size: .85rem; border-top: 1px solid #eee; padding-top: .8rem; }
@media (max-width: 800px) { .site-layout { display: block; } .site-sidebar { position: static; max-height: none;
  border-right: 0; border-bottom: 1px solid #e5e5e5; } .site-main { padding: 1rem; } }
"""

TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}
<style type="text/css">{{ resources.site.css }}</style>
{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<header class="site-navbar">{{ resources.site.navbar }}</header>
<div class="site-layout">
<nav class="site-sidebar" aria-label="Pages">{{ resources.site.sidebar }}</nav>
<main class="site-main">
<header class="page-header"><h1 class="title">{{ resources.site.title | e }}</h1>
{%- if resources.site.description %}<p class="description">{{ resources.site.description | e }}</p>{% endif %}</header>
{%- endblock body_header -%}
{% block body_footer %}
<footer class="site-footer">{{ resources.site.footer }}</footer>
</main>
</div>
</body>
{% endblock body_footer %}
{% block input_group -%}
{%- if cell.metadata.get('code_fold') -%}
<details class="code-fold" open><summary>{{ cell.metadata.code_fold | e }}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{% endblock input_group %}
{% block codecell %}
{%- if 'api-doc' in cell.metadata.get('tags', []) -%}<div class="api-doc">{{ super() }}</div>
{%- else -%}{{ super() }}{%- endif -%}
{%- endblock codecell %}
"""


def make_exporter(template_dir: Path):
    "nbconvert's HTML exporter with our template: no prompts, images embedded, light theme."
    from nbconvert import HTMLExporter
    (template_dir/'retina_site').mkdir(parents=True, exist_ok=True)
    (template_dir/'retina_site'/'index.html.j2').write_text(TEMPLATE)
    (template_dir/'retina_site'/'conf.json').write_text(json.dumps({'base_template': 'lab', 'mimetypes': {'text/html': True}}))
    return HTMLExporter(template_name='retina_site', extra_template_basedirs=[str(template_dir)], embed_images=True,
                        exclude_input_prompt=True, exclude_output_prompt=True, theme='light')


def _fix_links(text: str, page: str, pages_by_html: set, doc_url: str) -> str:
    "Make links to the hosted docs and to `.ipynb` files relative links to this site's pages."
    def _fix(match):
        quote, href = match.group(1), html.unescape(match.group(2))
        target, _, fragment = href.partition('#')
        if doc_url and target.startswith(doc_url):
            local = target[len(doc_url):].lstrip('/') or 'index.html'
            local = re.sub(r'\.html\.md$', '.html', local)
            if local in pages_by_html: href = _relative(local, page) + (f'#{fragment}' if fragment else '')
        elif not re.match(r'^[a-z][a-z0-9+.-]*:', target) and target.endswith('.ipynb'):
            local = os.path.normpath(os.path.join(os.path.dirname(page), page_name(Path(target)))).replace(os.sep, '/')
            if local in pages_by_html: href = _relative(local, page) + (f'#{fragment}' if fragment else '')
        return f'href={quote}{html.escape(href)}{quote}'
    return re.sub(r'href=(["\'])(.*?)\1', _fix, text)


def scrub_paths(text: str, page: str, where: str, extra: tuple = ()) -> str:
    "Replace absolute paths of this machine (the repo, temporary folders) with relative ones, and warn."
    for path, replacement in [(str(ROOT), _relative('.', page) or '.'), *extra]:
        if path and path in text:
            print(f'build_docs: warning: {where} contained the absolute path {path!r}; replaced with {replacement!r}')
            text = text.replace(path, replacement)
    return text


def build_site(nbs: Path, out: Path, jobs: int) -> list[str]:
    "Render every notebook under `nbs` into `out`; return the pages written."
    import nbformat, yaml
    cfg = _config()
    notebooks = find_notebooks(nbs)
    if not notebooks: raise ValueError(f'no notebooks found in {nbs}')
    pages = {nb.as_posix(): page_name(nb) for nb in notebooks}
    clashes = {p for p in pages.values() if list(pages.values()).count(p) > 1}
    if clashes: raise ValueError(f'notebooks map to the same page {sorted(clashes)}: rename one of them')
    nbdev_yml = yaml.safe_load((nbs/'nbdev.yml').read_text()) if (nbs/'nbdev.yml').exists() else {}
    website = (nbdev_yml or {}).get('website', {})
    site_title = website.get('title') or cfg.get('title') or cfg.get('lib_name')
    repo_url = website.get('repo-url') or cfg.get('git_url')
    doc_url = (cfg.get('doc_url') or website.get('site-url') or '').rstrip('/')
    user_css = (nbs/'styles.css').read_text() if (nbs/'styles.css').exists() else ''
    with tempfile.TemporaryDirectory(prefix='build_docs.') as tmp:
        tmp = Path(tmp)
        start = time.time()
        process_all(nbs, notebooks, tmp/'proc', jobs)
        print(f'build_docs: processed {len(notebooks)} notebooks with nbdev in {time.time() - start:.1f}s')
        prepared, titles = {}, {}
        for nb in notebooks:
            processed = json.loads((tmp/'proc'/nb).read_text())
            notebook, frontmatter = prepare_page(processed, json.loads((nbs/nb).read_text()))
            page = pages[nb.as_posix()]
            titles[page] = str(frontmatter.get('title') or Path(page).stem)
            prepared[nb] = notebook, frontmatter
        sidebar = read_sidebar(nbs, notebooks)
        exporter = make_exporter(tmp/'templates')
        navbar_links = f'<a href="{html.escape(repo_url)}">Source</a>' if repo_url else ''
        shutil.rmtree(out, ignore_errors=True)
        for nb, (notebook, frontmatter) in prepared.items():
            page = pages[nb.as_posix()]
            home = _relative('index.html', page) if 'index.html' in pages.values() else _relative(pages[notebooks[0].as_posix()], page)
            site = dict(css=SITE_CSS + '\n' + user_css, title=titles[page], description=frontmatter.get('description', ''),
                        navbar=f'<a class="site-title" href="{home}">{html.escape(site_title)}</a>'
                               f'<span class="site-links">{navbar_links}</span>',
                        sidebar=render_sidebar(sidebar, pages, titles, page),
                        footer=f'Rendered from <code>{html.escape(nb.as_posix())}</code> by <code>tools/build_docs.py</code>.')
            node = nbformat.reads(json.dumps(notebook), as_version=4)  # joins multi-line strings
            node.metadata['title'] = f'{titles[page]} – {site_title}' if page != 'index.html' else site_title
            nbformat.validate(node)
            body, _ = exporter.from_notebook_node(node, resources={'site': site})
            body = _fix_links(body, page, set(pages.values()), doc_url)
            body = scrub_paths(body, page, page, extra=((str(tmp), '.'), (str(nbs.resolve()), '.')))
            (out/page).parent.mkdir(parents=True, exist_ok=True)
            (out/page).write_text(body, encoding='utf-8')
    return sorted(pages.values())


# ---------------------------------------------------------------------------------------------------------------
# README.md from index.ipynb, without Quarto.

def _output_markdown(output: dict, cell_index: int, output_index: int, images: Path | None) -> str:
    "One committed output as markdown: markdown as is, images as files beside the README, else a text block."
    kind = output.get('output_type')
    if kind == 'stream': return f"```\n{''.join(output['text']).rstrip()}\n```"
    if kind == 'error': return ''
    data = output.get('data', {})
    if 'text/markdown' in data: return ''.join(data['text/markdown']).strip()
    if 'image/png' in data and images is not None:
        name = f'cell-{cell_index}-output-{output_index}.png'
        images.mkdir(parents=True, exist_ok=True)
        (images/name).write_bytes(base64.b64decode(''.join(data['image/png'])))
        return f'![]({images.parent.name}/{images.name}/{name})'
    if 'text/plain' in data: return f"```\n{''.join(data['text/plain']).rstrip()}\n```"
    return ''


def readme_markdown(notebook: Path, images: Path | None = None) -> str:
    "The README text of `notebook`: markdown cells, visible code as ```python blocks, committed outputs."
    from fastcore.nbio import read_nb
    nb, doc_url, parts = read_nb(notebook), (_config().get('doc_url') or '').rstrip('/'), []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == 'markdown': parts.append(cell.source.strip())
        if cell.cell_type != 'code': continue
        directives = cell.directives
        if directives.keys() & _HIDE_DIRECTIVES or directives.get('include') == 'false': continue
        cell.remove_directives()
        if cell.source.strip() and directives.get('echo') != 'false': parts.append(f'```python\n{cell.source.strip()}\n```')
        if directives.get('output') != 'false':
            parts += [_output_markdown(o, index, i, images) for i, o in enumerate(cell.get('outputs', []))]
    text = '\n\n'.join(p for p in parts if p) + '\n'
    if doc_url:  # relative notebook links point to the hosted docs, as nbdev's README filter does
        text = re.sub(r'\]\((?![a-z][a-z0-9+.-]*:)([^)#\s]+)\.ipynb(#[^)\s]*)?\)',
                      lambda m: f'](' + f'{doc_url}/{page_name(Path(m.group(1) + ".ipynb"))}' + (m.group(2) or '') + ')', text)
    return text


def write_readme(notebook: Path, path: Path) -> Path:
    "Write `path` (README.md) from `notebook`, atomically."
    if not notebook.exists(): raise ValueError(f'--readme: {notebook} does not exist (the readme_nb of pyproject.toml)')
    text = readme_markdown(notebook, images=path.parent/f'{notebook.stem}_files')
    handle, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    with os.fdopen(handle, 'w', encoding='utf-8') as f: f.write(text)
    umask = os.umask(0); os.umask(umask)
    os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~umask)  # mkstemp's file is private
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------------------

def build_with_quarto(nbs: Path, out: Path, jobs: int) -> None:
    "`nbdev-docs`, then the site moved to `out` if that is not nbdev's `doc_path`."
    cfg = _config()
    subprocess.run([str(Path(sys.executable).parent/'nbdev-docs'), '--path', str(nbs), '--n_workers', str(jobs)],
                   cwd=ROOT, check=True)
    if out.resolve() != Path(cfg.doc_path).resolve():
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(cfg.doc_path, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='_docs', help='folder for the site (default: _docs)')
    parser.add_argument('--nbs', default=None, help="notebooks folder (default: nbdev's nbs_path)")
    parser.add_argument('--readme', nargs='?', const='README.md', default=None,
                        help='also write README.md (or the path given) from index.ipynb')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--offline', action='store_true', help='never use Quarto, even if it is installed')
    mode.add_argument('--quarto', action='store_true', help='require Quarto (nbdev-docs)')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1, help='parallel doc-processing workers')
    args = parser.parse_args(argv)
    here = Path.cwd()
    out = (here/args.out).resolve()
    nbs = (here/args.nbs).resolve() if args.nbs else Path(_config().nbs_path).resolve()
    if not nbs.is_dir(): parser.error(f'--nbs: {nbs} is not a folder')
    if args.jobs < 1: parser.error('--jobs must be a positive integer')
    os.chdir(ROOT)
    start, quarto = time.time(), shutil.which('quarto')
    if args.quarto and not quarto: parser.error('--quarto: quarto is not on PATH')
    if quarto and not args.offline:
        build_with_quarto(nbs, out, args.jobs)
        print(f'build_docs: nbdev-docs wrote {out} in {time.time() - start:.1f}s')
    else:
        pages = build_site(nbs, out, args.jobs)
        shown = out.relative_to(here) if out.is_relative_to(here) else out
        print(f'build_docs: wrote {len(pages)} pages to {shown} in {time.time() - start:.1f}s: {", ".join(pages)}')
    if args.readme:
        readme = write_readme(nbs/_config().get('readme_nb', 'index.ipynb'), (here/args.readme).resolve())
        print(f'build_docs: wrote {readme.relative_to(here) if readme.is_relative_to(here) else readme}')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import build_docs  # run from the module, so that the worker processes find its functions by name
    build_docs.main()
