"""Render the notebooks to a browsable HTML site, with or without Quarto; write README.md from `index.ipynb`.

    python tools/build_docs.py [--out _docs] [--nbs nbs] [--readme [PATH]] [--offline | --quarto] [--jobs N]

With Quarto on PATH (and not `--offline`): `nbdev-docs`. Without it, nbdev's doc processing (`nbdev.serve_drv.main`, as
`nbdev-proc-nbs` runs it, with `DOC_CONFIG` as nbdev's user config), then nbconvert's `HTMLExporter`: a page per notebook,
figures embedded, the sidebar of `nbs/sidebar.yml`, relative links, `#| export` cells shown as `#| exports` (folded).
"""
import argparse, base64, html, importlib, inspect, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path
from unittest.mock import patch
import nbdev.serve_drv, nbformat, yaml
from fastcore.docments import DocmentTbl, DocmentText
from fastcore.nbio import cell_frontmatter, nb2dict, read_nb
from fastcore.parallel import parallel
from fastcore.xdg import xdg_config_home
from nbconvert import HTMLExporter
from nbdev.config import get_config, nbpath2html
from nbdev.processors import FilterDefaults
from nbdev.showdoc import BasicMarkdownRenderer

ROOT = Path(__file__).resolve().parent.parent
CONFIG = get_config(ROOT)  # nbdev's configuration of this repository, from `pyproject.toml`
_HIDE_DIRECTIVES = {'hide', 'export', 'exporti', 'default_exp'}
# nbdev's settings for the offline build: `prepare_page`, not `mv_exports`, puts each API reference above its source
DOC_CONFIG = {'skip_procs': 'mv_exports,insert_warning', 'renderer': 'build_docs.TableRenderer'}

def find_notebooks(nbs: Path) -> list[Path]:
    "Every notebook under `nbs`, relative to it, skipping files and folders that start with `_` or `.`."
    return sorted(p for p in (p.relative_to(nbs) for p in nbs.rglob('*.ipynb')) if not any(s[0] in '_.' for s in p.parts))

def page_name(notebook: Path) -> str:
    "The page a notebook becomes: nbdev's naming (`00_core.ipynb` -> `core.html`, numeric prefix dropped)."
    return nbpath2html(notebook).as_posix()

class TableRenderer(BasicMarkdownRenderer):
    "nbdev's `show_doc`, with the docments in a table below the signature and a source link that needs no Quarto."
    def _repr_markdown_(self):
        if not isinstance(self.dm, DocmentText): return super()._repr_markdown_()
        for value in self.dm.dm.values(): value['docment'] = None  # the table carries them
        text = re.sub(r'\[source\]\((.*?)\)\{.*?\}', r'<a class="source-link" href="\1">source</a>',
                      super()._repr_markdown_())  # a link without Quarto's attributes
        if inspect.isclass(self.sym):  # the signature of its `__init__`, as a class
            text = re.sub(r'```python\ndef (.*?)\)(->None)?:\n```', r'```python\nclass \1)\n```', text, flags=re.S)
        anchor = f'<a id="{html.escape(self.nm.lower())}"></a>\n\n' if self.nm.lower() != self.nm else ''  # nbdev's links
        return anchor + text + '\n\n' + self._table()
    def _table(self) -> str:
        "The parameter table; for a class defined in the doc-processing shell (no source file), the library's one's."
        syms = importlib.import_module(f'{CONFIG.lib_path.name}._modidx').d['syms']
        for sym in [self.sym] + [getattr(importlib.import_module(m), self.nm) for m in syms if f'{m}.{self.nm}' in syms[m]]:
            try:
                if table := str(DocmentTbl(sym)): return table
            except Exception: pass
        return ''

def process_notebooks(nbs: Path, notebooks: list[Path], tmp: Path, jobs: int) -> None:
    "nbdev's doc processing of `notebooks` (`#| export` made `#| exports`) into `tmp/proc`, in parallel."
    for notebook in notebooks:
        content = json.loads((nbs/notebook).read_text())
        for cell in (c for c in content['cells'] if c['cell_type'] == 'code'):
            cell['source'] = re.sub(r'^(\s*#\|\s*)export\s*$', r'\1exports', ''.join(cell['source']), count=1, flags=re.M)
        for folder in 'src', 'proc': (tmp/folder/notebook).parent.mkdir(parents=True, exist_ok=True)
        (tmp/'src'/notebook).write_text(json.dumps(content))
    user_config, config = xdg_config_home()/'nbdev'/'config.toml', tmp/'config'/'nbdev'/'config.toml'
    config.parent.mkdir(parents=True)
    config.write_text(''.join(f'{k} = {json.dumps(v)}\n' for k, v in DOC_CONFIG.items())
                      + (user_config.read_text() if user_config.exists() else ''))
    tasks = [(tmp/'src'/notebook, tmp/'proc'/notebook, FilterDefaults) for notebook in notebooks]
    with patch.dict(os.environ, XDG_CONFIG_HOME=str(tmp/'config')):  # the workers read DOC_CONFIG
        try: parallel(nbdev.serve_drv.main, tasks, n_workers=jobs, method='spawn')
        except Exception as error: raise SystemExit(f'build_docs: nbdev doc processing failed:\n{error}') from None

def prepare_page(processed: Path, original: dict) -> tuple[dict, dict]:
    "A processed notebook as the template renders it (options applied, committed outputs), and its frontmatter."
    nb, cells, frontmatter = read_nb(processed), [], {}
    committed = {c.get('id'): c['outputs'] for c in original['cells'] if c['cell_type'] == 'code'}
    for cell in nb.cells:
        if cell.cell_type == 'raw' and not frontmatter and (frontmatter := cell_frontmatter(cell.source)): continue
        options, cell.metadata = cell.directives if cell.cell_type == 'code' else {}, {}
        if cell.cell_type == 'code':
            cell.remove_directives()
            api_doc = options.get('output') == 'asis'  # nbdev's `show_doc` cells
            if not api_doc and cell.get('id') in committed: cell.outputs = committed[cell.id]
            if options.get('include') == 'false': continue
            if options.get('output') == 'false': cell.outputs = []
            if options.get('echo') == 'false' or not cell.source.strip():
                if not cell.outputs: continue
                cell.metadata['transient'] = {'remove_source': True}
            if 'code-fold' in options: cell.metadata['code_fold'] = options.get('code-summary', 'Code').strip('"')
            if api_doc: cell.metadata['tags'] = ['api-doc']
        if cell.metadata.get('tags') and cells and cells[-1].metadata.get('code_fold'): cells.insert(-1, cell)  # `exports`
        else: cells.append(cell)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in ('kernelspec', 'language_info')}  # no widget state
    return nb2dict(dict(nb, cells=cells)), frontmatter

def _relative(target: str, page: str) -> str:
    "The link from `page` to `target` (both site paths, `/`-separated)."
    return os.path.relpath(target, os.path.dirname(page) or '.').replace(os.sep, '/')

def render_sidebar(entries: list, pages: dict, titles: dict, page: str) -> str:
    "The sidebar's HTML for `page`: every page, in `sidebar.yml`'s order and sections, linked relatively."
    def _link(entry: str | dict) -> str:
        entry = {'href': entry} if isinstance(entry, str) else entry
        href = pages.get(Path(entry.get('href') or '.').as_posix())
        active = ' class="active" aria-current="page"' if href == page else ''
        text = html.escape(str(entry.get('text') or titles.get(href)))
        return f'<li><a href="{_relative(href, page)}"{active}>{text}</a></li>' if href else ''
    def _items(items: list) -> str:
        return ''.join(f'<li class="section"><span class="section-title">{html.escape(str(e["section"]))}</span><ul>'
                       f'{_link(e)}{_items(e.get("contents", []))}</ul></li>' if 'section' in e else _link(e) for e in items)
    return f'<ul class="sidebar-list">{_items(entries)}</ul>'

TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock -%}{%- block html_head_js_mermaidjs -%}{%- endblock -%}
{% block extra_css %}<style type="text/css">
:root { --nav: 3.2rem; --accent: #2c6fad; } body.jp-Notebook { margin: 0; padding: 0 !important; overflow: visible; }
.site-navbar { position: sticky; top: 0; z-index: 10; height: var(--nav); display: flex; align-items: center; gap: 1.5rem;
  padding: 0 1.5rem; background: var(--accent); font-size: 1.2rem; } .site-navbar a { color: #fff; text-decoration: none; }
.site-links { margin-left: auto; } .site-layout { display: flex; } .site-main { flex: 1; min-width: 0; padding: 0 2.5rem; }
.site-sidebar { position: sticky; top: var(--nav); flex: 0 0 15rem; max-height: calc(100vh - var(--nav)); overflow-y: auto; }
.site-sidebar ul { list-style: none; padding-left: .8rem; } .site-sidebar a.active { font-weight: 600; }
.celltag_api-doc pre { border-left: 3px solid var(--accent); } .site-footer { margin-top: 3rem; color: #888; }
a.source-link { float: right; }
{{ resources.site.css }}</style>{% endblock extra_css %}
{%- block body_header -%}<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<header class="site-navbar">{{ resources.site.navbar }}</header><div class="site-layout">
<nav class="site-sidebar" aria-label="Pages">{{ resources.site.sidebar }}</nav><main class="site-main">
<header class="page-header"><h1 class="title">{{ resources.site.title | e }}</h1><p class="description">
{{- resources.site.description | e }}</p></header>{%- endblock body_header -%}
{% block body_footer %}<footer class="site-footer">{{ resources.site.footer }}</footer></main></div></body>{% endblock %}
{% block input_group -%}{%- if cell.metadata.code_fold -%}<details class="code-fold" open><summary>
{{- cell.metadata.code_fold | e }}</summary>{{ super() }}</details>{%- else -%}{{ super() }}{%- endif -%}{% endblock %}
"""

def _fix_links(text: str, page: str, pages: set) -> str:
    "Make links to the hosted docs and to `.ipynb` files relative links to this site's pages."
    def _fix(match):
        href, doc_url = html.unescape(match.group(2)), CONFIG.doc_url.rstrip('/')
        target, hash, fragment = href.partition('#')
        if doc_url and target.startswith(doc_url):
            local = re.sub(r'\.html\.md$', '.html', target[len(doc_url):].lstrip('/') or 'index.html')
        elif not re.match(r'^[a-z][a-z0-9+.-]*:', target) and target.endswith('.ipynb'):  # relative, as the page
            local = os.path.normpath(os.path.join(os.path.dirname(page), page_name(Path(target))))
        else: local = None
        if local in pages: href = _relative(local, page) + hash + fragment
        return f'href={match.group(1)}{html.escape(href)}{match.group(1)}'
    return re.sub(r'href=(["\'])(.*?)\1', _fix, text)

def scrub_paths(text: str, page: str, extra: tuple = ()) -> str:
    "Replace absolute paths of this machine (the repo, temporary folders) with relative ones, and warn."
    for path, replacement in [(str(ROOT), _relative('.', page)), *extra]:
        if path in text: print(f'build_docs: warning: {page} contained the absolute path {path!r}, made {replacement!r}')
        text = text.replace(path, replacement)
    return text

def build_site(nbs: Path, out: Path, jobs: int) -> list[str]:
    "Render every notebook under `nbs` into `out`; return the pages written."
    notebooks = find_notebooks(nbs)
    pages = {nb.as_posix(): page_name(nb) for nb in notebooks}
    if not notebooks or len(set(pages.values())) < len(pages): raise ValueError(f'no notebooks, or two of one page: {pages}')
    exporter = HTMLExporter(template_name='lab', embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            theme='light', raw_template=TEMPLATE)
    source = f'<span class="site-links"><a href="{html.escape(CONFIG.git_url)}">Source</a></span>' if CONFIG.git_url else ''
    with tempfile.TemporaryDirectory(prefix='build_docs.') as tmp:
        process_notebooks(nbs, notebooks, Path(tmp), jobs)
        prepared = {pages[nb.as_posix()]: (nb, *prepare_page(Path(tmp)/'proc'/nb, json.loads((nbs/nb).read_text())))
                    for nb in notebooks}
        titles = {page: str(frontmatter.get('title') or Path(page).stem) for page, (_, _, frontmatter) in prepared.items()}
        path = nbs/'sidebar.yml'  # its entries, then every notebook it misses
        sidebar = yaml.safe_load(path.read_text())['website']['sidebar']['contents'] if path.exists() else []
        listed = {Path(p).as_posix() for p in re.findall(r'"([^"]+\.ipynb)"', json.dumps(sidebar))}
        sidebar += [nb.as_posix() for nb in notebooks if nb.as_posix() not in listed]
        shutil.rmtree(out, ignore_errors=True)
        for page, (nb, notebook, frontmatter) in prepared.items():
            site = dict(css=(nbs/'styles.css').read_text() if (nbs/'styles.css').exists() else '', title=titles[page],
                        description=frontmatter.get('description', ''), sidebar=render_sidebar(sidebar, pages, titles, page),
                        navbar=f'<a href="{_relative("index.html", page)}">{html.escape(CONFIG.title)}</a>{source}',
                        footer=f'Rendered from <code>{html.escape(nb.as_posix())}</code> by tools/build_docs.py.')
            node = nbformat.reads(json.dumps(notebook), as_version=4)  # joins multi-line strings
            node.metadata['title'] = f'{titles[page]} – {CONFIG.title}' if page != 'index.html' else CONFIG.title
            body = _fix_links(exporter.from_notebook_node(node, resources={'site': site})[0], page, set(titles))
            (out/page).parent.mkdir(parents=True, exist_ok=True)
            (out/page).write_text(scrub_paths(body, page, extra=((tmp, '.'), (str(nbs), '.'))), encoding='utf-8')
    return sorted(titles)

def _output_markdown(output: dict, cell_index: int, output_index: int, images: Path | None) -> str:
    "One committed output as markdown: markdown as is, images as files beside the README, else a text block."
    kind, data = output.get('output_type'), output.get('data', {})  # an error has no data: it is left out
    if kind == 'stream': return f"```\n{''.join(output['text']).rstrip()}\n```"
    if 'text/markdown' in data: return ''.join(data['text/markdown']).strip()
    if 'image/png' in data and images is not None:
        name = f'cell-{cell_index}-output-{output_index}.png'
        images.mkdir(parents=True, exist_ok=True)
        (images/name).write_bytes(base64.b64decode(''.join(data['image/png'])))
        return f'![]({images.name}/{name})'  # beside the README, so relative to it
    return f"```\n{''.join(data['text/plain']).rstrip()}\n```" if 'text/plain' in data else ''

def readme_markdown(notebook: Path, images: Path | None = None) -> str:
    "The README text of `notebook`: markdown cells, visible code as ```python blocks, committed outputs."
    nb, doc_url, parts = read_nb(notebook), CONFIG.doc_url.rstrip('/'), []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == 'markdown': parts.append(cell.source.strip())
        if cell.cell_type != 'code': continue
        if (directives := cell.directives).keys() & _HIDE_DIRECTIVES or directives.get('include') == 'false': continue
        cell.remove_directives()
        if cell.source.strip() and directives.get('echo') != 'false': parts.append(f'```python\n{cell.source.strip()}\n```')
        if directives.get('output') != 'false':
            parts += [_output_markdown(o, index, i, images) for i, o in enumerate(cell.get('outputs', []))]
    text = '\n\n'.join(p for p in parts if p) + '\n'
    if doc_url:  # relative notebook links point to the hosted docs, as nbdev's README filter does
        text = re.sub(r'\]\((?![a-z][a-z0-9+.-]*:)([^)#\s]+)\.ipynb(#[^)\s]*)?\)',
                      lambda m: f']({doc_url}/{page_name(Path(m.group(1) + ".ipynb"))}{m.group(2) or ""})', text)
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

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='_docs', help='folder for the site (default: _docs)')
    parser.add_argument('--nbs', default=CONFIG.nbs_path, help="notebooks folder (default: nbdev's nbs_path)")
    parser.add_argument('--readme', nargs='?', const='README.md', help='also write README.md (or the path given)')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1, help='parallel doc-processing workers')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--offline', action='store_true', help='never use Quarto, even if it is installed')
    mode.add_argument('--quarto', action='store_true', help='require Quarto (nbdev-docs)')
    args, here, start = parser.parse_args(argv), Path.cwd(), time.time()
    out, nbs = (here/args.out).resolve(), (here/args.nbs).resolve()
    if not nbs.is_dir() or args.jobs < 1: parser.error(f'--nbs {nbs} must be a folder, --jobs {args.jobs} positive')
    if args.quarto and not shutil.which('quarto'): parser.error('--quarto: quarto is not on PATH')
    os.chdir(ROOT)  # nbdev reads its configuration from the working directory
    if shutil.which('quarto') and not args.offline:  # `nbdev-docs`, then its site copied to `out`
        subprocess.run([Path(sys.executable).parent/'nbdev-docs', '--path', nbs, '--n-workers', str(args.jobs)], check=True)
        if out != CONFIG.doc_path.resolve(): shutil.rmtree(out, ignore_errors=True); shutil.copytree(CONFIG.doc_path, out)
    else: print(f'build_docs: wrote {", ".join(build_site(nbs, out, args.jobs))}')
    print(f'build_docs: wrote {out.relative_to(here) if out.is_relative_to(here) else out} in {time.time() - start:.1f}s')
    if args.readme: print(f'build_docs: wrote {write_readme(nbs/CONFIG.readme_nb, (here/args.readme).resolve())}')

if __name__ == '__main__': main()
