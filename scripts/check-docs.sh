#!/usr/bin/env bash
# check-docs.sh: every topic has one home. Fails when
#   - README.md is longer than 300 lines;
#   - a paragraph, list item or table row of 120 characters or more (whitespace collapsed,
#     Markdown emphasis kept) appears twice among the repository's Markdown files, in one file
#     or in two (fenced code blocks, headings and images are not compared: commands and
#     sample output may repeat; generated files under bench/results/ and testdata/ are skipped);
#   - a relative link [text](path) or image points at a file or directory that does not exist,
#     or its #anchor names no heading of the Markdown file it points at (GitHub's slugs).
# Run by scripts/test.sh; alone: scripts/check-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, subprocess, sys

MAX_README = 300
MIN_LEN = 120

files = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
    check=True, capture_output=True, text=True).stdout.split()
files = [f for f in files if os.path.exists(f)
         and not f.startswith("bench/results/") and "/testdata/" not in f]  # generated
bad = []

n = sum(1 for _ in open("README.md", encoding="utf-8"))
if n > MAX_README:
    bad.append(f"README.md: {n} lines, more than {MAX_README}: move a topic to its home under docs/, deploy/ or bench/")

item = re.compile(r"^\s*([-*+]|\d+\.)\s+")
link = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
seen = {}

def anchors(path):
    """GitHub's heading slugs of a Markdown file (outside code blocks)."""
    out, fence = set(), False
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if raw.lstrip().startswith("```"):
                fence = not fence
            elif not fence and re.match(r"^#{1,6} ", raw):
                h = re.sub(r"^#+ ", "", raw.strip()).lower()
                out.add(re.sub(r"[^\w\- ]", "", h).replace(" ", "-"))
    return out

def units(path):
    """Yields (line, text) for each paragraph, list item and table row outside code."""
    block, start, fence = [], 0, None
    def flush():
        if block:
            yield start, " ".join(" ".join(block).split())
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if fence:
            if s.startswith(fence):
                fence = None
            continue
        if s.startswith("```") or s.startswith("~~~"):
            yield from flush(); block = []
            fence = s[:3]
            continue
        if raw.startswith("    ") and not block:   # indented code block
            continue
        if not s or s.startswith("#") or s.startswith("!["):
            yield from flush(); block = []
            continue
        if s.startswith("|"):
            yield from flush(); block = []
            if not re.fullmatch(r"[|:\- ]+", s):
                yield i, " ".join(s.split())
            continue
        if item.match(raw) and block:
            yield from flush(); block = []
        if not block:
            start = i
        block.append(s)
    yield from flush()

for path in files:
    for line, text in units(path):
        if len(text) < MIN_LEN:
            continue
        if text in seen:
            p, l = seen[text]
            bad.append(f"{path}:{line}: duplicates {p}:{l}: give the topic one home and link to it: {text[:80]}…")
        else:
            seen[text] = (path, line)
    base = os.path.dirname(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for m in link.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue
        if target.startswith("#"):
            target = os.path.basename(path) + target
        target, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(base, target))
        if not os.path.exists(dest):
            bad.append(f"{path}: broken link {m.group(1)}")
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            bad.append(f"{path}: link {m.group(1)}: no heading #{anchor} in {dest}")

for b in bad:
    print(b)
if bad:
    print(f"check-docs: {len(bad)} problem(s)")
    sys.exit(1)
print(f"check-docs: {len(files)} Markdown files, README.md {n} lines: ok")
PY
