"""The project's text speaks of the project only, and the README stays a
landing page.

Every text file under README.md, docs/, configs/, tools/, benchmarks/,
segreg/ and data/README.md is searched for words about how the project was
made rather than what it is (work sessions, issue numbers, virtual machines,
"this machine", "the team") and for pointers outside the repository (a
``shared/docs`` folder). A dated measurement says what ran where instead,
e.g. "2026-12-02, 2-core x86 CPU".
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import re
from typing import List

import pytest

from conftest import REPO_ROOT

#: where the project describes itself
SCANNED = ('README.md', 'docs', 'configs', 'tools', 'benchmarks', 'segreg',
           osp.join('data', 'README.md'))
TEXT_SUFFIXES = ('.md', '.py', '.sh', '.txt', '.rst', '.toml', '.cfg',
                 '.yaml', '.yml', '.json', '.html', '.css')

#: (name, pattern): words about the making, not the project
PROCESS_WORDS = [
    ('session', re.compile(r'\bsessions?\b', re.IGNORECASE)),
    ('issue number', re.compile(r'\bissues? ?#?\d', re.IGNORECASE)),
    # "#17" in prose (not a CSS colour such as color:#222 or solid #888;,
    # nor a Markdown anchor such as (#2026-12-02-the-study))
    ('#number', re.compile(r'(?:^|(?<=[\s(\[,;]))#\d+\b(?![;}-])')),
    ('pre-issue', re.compile(r'pre-issue', re.IGNORECASE)),
    ('VM', re.compile(r'\bVMs?\b')),
    ('this machine', re.compile(r'this machine', re.IGNORECASE)),
    ('the team', re.compile(r'\bthe team\b', re.IGNORECASE)),
    ('shared/docs', re.compile(r'shared/docs')),
    ('../shared', re.compile(r'\.\./shared')),
]

README = osp.join(REPO_ROOT, 'README.md')
README_MAX_LINES = 160
TWO_COMMANDS = ('bash tools/run_demo.sh', 'bash tools/run_tests.sh')


def _text_files() -> List[str]:
    files = []
    for entry in SCANNED:
        path = osp.join(REPO_ROOT, entry)
        if osp.isfile(path):
            files.append(path)
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if d != '__pycache__'
                       and not d.startswith('.')]
            files += [osp.join(root, n) for n in names
                      if n.endswith(TEXT_SUFFIXES)]
    return sorted(files)


def _hits(path: str) -> List[str]:
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    rel = osp.relpath(path, REPO_ROOT)
    out = []
    for number, line in enumerate(lines, 1):
        for name, pattern in PROCESS_WORDS:
            if pattern.search(line):
                out.append(f'{rel}:{number}: [{name}] {line.strip()[:120]}')
    return out


def test_the_scan_finds_the_project_text():
    files = [osp.relpath(f, REPO_ROOT) for f in _text_files()]
    assert 'README.md' in files and osp.join('data', 'README.md') in files
    for folder in ('docs', 'configs', 'tools', 'benchmarks', 'segreg'):
        assert any(f.startswith(folder + os.sep) for f in files), folder


@pytest.mark.parametrize('name,pattern', PROCESS_WORDS,
                         ids=[n for n, _ in PROCESS_WORDS])
def test_the_patterns_catch_what_they_mean(name, pattern):
    caught = {
        'session': 'measured in the third session',
        'issue number': 'the bar of issue 14 (Issue #7)',
        '#number': 'as asked in #17, the loss',
        'pre-issue': 'the pre-issue-17 names',
        'VM': 'on one VM',
        'this machine': 'Python 3.11 on this machine',
        'the team': 'measured by the team that files issues',
        'shared/docs': 'see shared/docs/design.md',
        '../shared': 'see [x](../shared/x.md)',
    }[name]
    assert pattern.search(caught)
    for fine in ('color:#222;', 'border:1px solid #888}', '# 1000 iterations',
                 '[the study](#2026-12-02-the-study)', 'a 2-core x86 CPU',
                 'one array task per pair', 'a shared 2-core CPU',
                 'the same on every machine', 'tissue 4'):
        assert not pattern.search(fine), (name, fine)


def test_no_process_words_in_the_project_text():
    hits = [hit for path in _text_files() for hit in _hits(path)]
    assert not hits, ('words about the making of the project, not the '
                      'project (say what ran where and when instead):\n' +
                      '\n'.join(hits))


def test_readme_is_a_landing_page():
    with open(README, encoding='utf-8') as f:
        text = f.read()
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f'README.md has {len(lines)} lines; at most {README_MAX_LINES}: move '
        'details into docs/')
    for command in TWO_COMMANDS:
        assert command in text, command
    # the two commands come before any result or reference section
    first_table = text.find('\n|')
    assert 0 <= text.find(TWO_COMMANDS[0]) < first_table


def _relative_links(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        text = f.read()
    targets = re.findall(r'\]\(([^)\s]+)\)', text)
    return [t.split('#', 1)[0] for t in targets
            if not re.match(r'[a-z]+:', t) and not t.startswith('#')]


@pytest.mark.parametrize(
    'doc', ['README.md', 'data/README.md'] + sorted(
        osp.relpath(p, REPO_ROOT)
        for p in glob.glob(osp.join(REPO_ROOT, 'docs', '*.md'))))
def test_relative_links_resolve(doc):
    path = osp.join(REPO_ROOT, doc)
    missing = [t for t in _relative_links(path)
               if t and not osp.exists(osp.join(osp.dirname(path), t))]
    assert not missing, f'{doc} links to missing files: {missing}'


def test_readme_paths_exist():
    """Every repository path the README names (tools, configs, docs,
    benchmarks; globs allowed) exists."""
    with open(README, encoding='utf-8') as f:
        text = f.read()
    paths = set(re.findall(
        r'(?<![\w./-])((?:tools|configs|docs|benchmarks|data|\.ci)/'
        r'[\w./*{}-]*[\w*/])', text))
    missing = [p for p in sorted(paths)
               if not p.startswith(('data/demo', 'data/coco'))
               and not glob.glob(osp.join(REPO_ROOT, p))]
    assert not missing, f'README.md names missing paths: {missing}'
