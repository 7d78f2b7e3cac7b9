"""A tiny document model rendered to Markdown and to self-contained HTML.

The report is built as a list of blocks (heading, paragraph, list, table,
figure, image grid, code) and rendered twice: ``report.md`` links the PNG
files, ``report.html`` embeds them as base64 with inline CSS, so it opens
offline and can be mailed.
"""
from __future__ import annotations

import base64
import html
import math
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple


def _f(x: float, digits: int = 2, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return 'n/a'
    return f'{x:+.{digits}f}' if sign else f'{x:.{digits}f}'


def _pm(half: float) -> str:
    return 'n/a' if math.isnan(half) else f'±{half:.2f}'


def _ci(lo: float, hi: float) -> str:
    return 'n/a' if math.isnan(lo) else f'[{lo:.2f}, {hi:.2f}]'


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return 'n/a'
    return '<0.001' if p < 1e-3 else f'{p:.3f}'


def _mean_pm(mean: float, half: float) -> str:
    if math.isnan(mean):
        return 'n/a'
    return f'{mean:.2f}' if math.isnan(half) else f'{mean:.2f} ± {half:.2f}'


def _safe(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


class Document:
    """A tiny document model rendered to Markdown and to HTML."""

    def __init__(self):
        self.blocks: List[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(('h', level, text))

    def p(self, text: str):
        self.blocks.append(('p', text))

    def ul(self, items: Sequence[str]):
        self.blocks.append(('ul', list(items)))

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]]):
        self.blocks.append(('table', list(head), [list(r) for r in rows]))

    def img(self, path: str, alt: str):
        self.blocks.append(('img', path, alt))

    def grid(self, head: Sequence[str],
             rows: Sequence[Sequence[Tuple[str, str]]],
             notes: Sequence[str],
             legends: Sequence[Sequence[Tuple[str, Tuple[int, int, int]]]]):
        """A table of small images.

        ``rows[i]`` holds ``(png path, caption)`` per column; ``notes[i]`` and
        ``legends[i]`` (class name, RGB) fill the row's last column.
        """
        self.blocks.append(('grid', list(head), [list(r) for r in rows],
                            list(notes), [list(g) for g in legends]))

    def code(self, text: str, summary: Optional[str] = None,
             link: Optional[str] = None):
        self.blocks.append(('code', text, summary, link))

    def markdown(self, out_dir: str) -> str:
        lines: List[str] = []
        for b in self.blocks:
            if b[0] == 'h':
                lines += ['#' * b[1] + ' ' + b[2], '']
            elif b[0] == 'p':
                lines += [b[1], '']
            elif b[0] == 'ul':
                lines += [f'- {x}' for x in b[1]] + ['']
            elif b[0] == 'table':
                esc = lambda s: str(s).replace('|', '\\|')  # noqa: E731
                lines.append('| ' + ' | '.join(map(esc, b[1])) + ' |')
                lines.append('|' + '|'.join('---' for _ in b[1]) + '|')
                lines += ['| ' + ' | '.join(map(esc, r)) + ' |'
                          for r in b[2]]
                lines.append('')
            elif b[0] == 'img':
                rel = osp.relpath(b[1], out_dir)
                lines += [f'![{b[2]}]({rel})', '']
            elif b[0] == 'grid':
                head, rows, notes, legends = b[1:]
                lines.append('| ' + ' | '.join(head) + ' | why shown, '
                             'classes present |')
                lines.append('|' + '|'.join('---' for _ in head) + '|---|')
                for cells, note, legend in zip(rows, notes, legends):
                    shown = [f'![{cap}]({osp.relpath(p, out_dir)})<br>{cap}'
                             for p, cap in cells]
                    names = ', '.join(n for n, _ in legend)
                    lines.append('| ' + ' | '.join(shown) +
                                 f' | {note}<br>classes: {names} |')
                lines.append('')
            elif b[0] == 'code':
                text, summary, link = b[1], b[2], b[3]
                if summary:
                    lines.append(f'**{summary}**' + (
                        f' ([file]({osp.relpath(link, out_dir)}))'
                        if link else ''))
                    lines.append('')
                fence = '````' if '```' in text else '```'
                lines += [fence, text.rstrip('\n'), fence, '']
        return '\n'.join(lines)

    def html(self, title: str) -> str:
        e = html.escape
        parts = [
            '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
            f'<title>{e(title)}</title>',
            '<meta name="viewport" content="width=device-width, '
            'initial-scale=1">', f'<style>{_CSS}</style></head><body>'
        ]
        for b in self.blocks:
            if b[0] == 'h':
                parts.append(f'<h{b[1]}>{e(b[2])}</h{b[1]}>')
            elif b[0] == 'p':
                parts.append(f'<p>{_inline(b[1])}</p>')
            elif b[0] == 'ul':
                parts.append('<ul>' + ''.join(f'<li>{_inline(x)}</li>'
                                              for x in b[1]) + '</ul>')
            elif b[0] == 'table':
                head = ''.join(f'<th>{e(str(c))}</th>' for c in b[1])
                body = ''.join('<tr>' + ''.join(
                    f'<td>{e(str(c))}</td>' for c in r) + '</tr>'
                    for r in b[2])
                parts.append(f'<table><thead><tr>{head}</tr></thead>'
                             f'<tbody>{body}</tbody></table>')
            elif b[0] == 'grid':
                parts.append(_html_grid(*b[1:]))
            elif b[0] == 'img':
                data = _b64(b[1])
                parts.append(f'<figure><img alt="{e(b[2])}" '
                             f'src="data:image/png;base64,{data}">'
                             f'<figcaption>{e(b[2])}</figcaption></figure>')
            elif b[0] == 'code':
                text, summary = b[1], b[2]
                pre = f'<pre>{e(text)}</pre>'
                parts.append(f'<details><summary>{e(summary)}</summary>'
                             f'{pre}</details>' if summary else pre)
        parts.append(_IMG_CHECK)
        parts.append('</body></html>')
        return '\n'.join(parts)


def _b64(path: str) -> str:
    with open(path, 'rb') as f:
        return base64.b64encode(f.read()).decode('ascii')


def _html_grid(head, rows, notes, legends) -> str:
    e = html.escape
    out = ['<table class="grid"><thead><tr>'] + \
        [f'<th>{e(h)}</th>' for h in head] + \
        ['<th>why shown, classes present</th></tr></thead><tbody>']
    for cells, note, legend in zip(rows, notes, legends):
        out.append('<tr>')
        for path, cap in cells:
            out.append(f'<td><img alt="{e(cap)}" src="data:image/png;base64,'
                       f'{_b64(path)}"><div class="cap">{e(cap)}</div></td>')
        swatches = ''.join(
            f'<span class="sw"><i style="background:rgb{tuple(rgb)}"></i>'
            f'{e(name)}</span>' for name, rgb in legend)
        out.append(f'<td class="note">{_inline(note)}<div>{swatches}</div>'
                   f'</td></tr>')
    out.append('</tbody></table>')
    return ''.join(out)


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold** spans."""
    out = html.escape(text)
    out = re.sub(r'`([^`]+)`', r'<code>\1</code>', out)
    return re.sub(r'\*\*([^*]+)\*\*', r'<strong>\1</strong>', out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;
max-height:40em}code{background:#f3f3f3;padding:0 .2em}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
table.grid td,table.grid th{text-align:center;vertical-align:top;padding:.2em}
table.grid img{width:160px;border:0;image-rendering:pixelated}
table.grid td.note{text-align:left;font-size:.8em;max-width:16em}
.cap{font-size:.75em;color:#444}
.sw{display:inline-block;margin:.1em .5em .1em 0;white-space:nowrap}
.sw i{display:inline-block;width:.9em;height:.9em;margin-right:.25em;
vertical-align:-.1em;border:1px solid #888}
"""

# Marks <body data-images-loaded="k/n"> once the page has loaded, so a
# headless browser (tests) can tell that every embedded figure decoded.
_IMG_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
</script>"""
