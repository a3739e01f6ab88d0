#!/usr/bin/env python3
"""Checks the project's markdown: README.md and every docs/*.md.

- Every relative link resolves: the file or directory it names exists inside the repository,
  and an #anchor names a heading of the same file or of the markdown file linked (GitHub's
  heading slugs: lower case, punctuation dropped, spaces to dashes, -1, -2 for repeats).
  Links inside fenced code blocks and `code spans` are not links and are skipped.
- README.md stays under README_MAX_LINES lines: the long form belongs in docs/.
- Every docs/*.md is linked from README.md, so that nothing there is out of a newcomer's reach.

    python3 scripts/check-docs.py               check; exit 1 naming file:line of each problem
    python3 scripts/check-docs.py --root DIR    the same on another copy of the repository
    python3 scripts/check-docs.py --self-test   prove it: an intact temporary copy passes, and
                                                copies broken in each way above are refused

Standard library only.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from urllib.parse import unquote

README = "README.md"
DOCS = "docs"
README_MAX_LINES = 400  # README.md must have fewer lines than this

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"\]\(\s*(<[^>\n]*>|[^)\s]*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ID = re.compile(r"""<a\s[^>]*?(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def github_slug(text):
    """The anchor GitHub gives a heading whose markdown source is `text`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "")
    text = text.strip().lower()
    kept = "".join(c for c in text if c.isalnum() or c in "-_ " or c.isspace())
    return re.sub(r"\s", "-", kept)


class Markdown:
    """The headings' anchors and the link targets of one markdown file."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.lines = f.read().splitlines()
        self.anchors = set()
        self.links = []  # (line number, target as written)
        seen = {}
        fence = None
        previous = ""  # the previous line, when it could be a setext heading's text
        for number, line in enumerate(self.lines, 1):
            opening = FENCE.match(line)
            if fence is not None:
                if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                        and line.strip() == opening.group(1):
                    fence = None
                continue
            if opening:
                fence = opening.group(1)
                previous = ""
                continue
            heading = None
            atx = ATX_HEADING.match(line)
            if atx:
                heading = atx.group(2) or ""
            elif previous and SETEXT_UNDERLINE.match(line) and not previous.lstrip().startswith(("|", "-", "*", ">")):
                heading = previous
            if heading is not None:
                slug = github_slug(heading)
                if slug in seen:
                    seen[slug] += 1
                    slug = f"{slug}-{seen[slug]}"
                else:
                    seen[slug] = 0
                self.anchors.add(slug)
            self.anchors.update(HTML_ID.findall(line))
            text = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
            for match in INLINE_LINK.finditer(text):
                self.links.append((number, match.group(1)))
            definition = REFERENCE_DEFINITION.match(text)
            if definition:
                self.links.append((number, definition.group(1)))
            previous = line if line.strip() and not atx else ""


def check(root):
    """Returns (problems as "file:line: what", a summary of what was checked)."""
    root = os.path.abspath(root)
    problems = []
    parsed = {}

    def markdown(path):
        if path not in parsed:
            parsed[path] = Markdown(path)
        return parsed[path]

    def rel(path):
        return os.path.relpath(path, root)

    readme = os.path.join(root, README)
    docs_dir = os.path.join(root, DOCS)
    if not os.path.isfile(readme):
        return [f"{README}:1: missing"], ""
    docs = sorted(
        os.path.join(docs_dir, name) for name in os.listdir(docs_dir) if name.endswith(".md")
    ) if os.path.isdir(docs_dir) else []

    links = anchored = 0
    linked_from_readme = set()
    for path in [readme] + docs:
        page = markdown(path)
        for number, target in page.links:
            where = f"{rel(path)}:{number}"
            target = target.strip("<>")
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue  # a URL (http:, mailto:, ...), not a file of this repository
            links += 1
            file_part, _, anchor = target.partition("#")
            file_part = unquote(file_part)
            if file_part:
                base = root if file_part.startswith("/") else os.path.dirname(path)
                resolved = os.path.normpath(os.path.join(base, file_part.lstrip("/")))
                if resolved != root and not resolved.startswith(root + os.sep):
                    problems.append(f"{where}: link to {target!r} points outside the repository")
                    continue
                if not os.path.exists(resolved):
                    problems.append(f"{where}: link to {target!r}: {rel(resolved)} does not exist")
                    continue
            else:
                resolved = path
            if path == readme:
                linked_from_readme.add(resolved)
            if anchor and resolved.endswith(".md") and os.path.isfile(resolved):
                anchored += 1
                anchors = markdown(resolved).anchors
                if unquote(anchor) not in anchors:
                    near = sorted(a for a in anchors if a.split("-")[0] == anchor.split("-")[0])
                    hint = f" (headings there: {', '.join('#' + a for a in near[:5])})" if near else ""
                    problems.append(
                        f"{where}: link to {target!r}: {rel(resolved)} has no heading "
                        f"with the anchor #{anchor}{hint}"
                    )

    readme_lines = len(markdown(readme).lines)
    if readme_lines >= README_MAX_LINES:
        problems.append(
            f"{README}:{readme_lines}: {readme_lines} lines; README.md must stay under "
            f"{README_MAX_LINES}: move the long form to a page under docs/ and link it"
        )
    for doc in docs:
        if doc not in linked_from_readme:
            problems.append(f"{rel(doc)}:1: not linked from {README} (add it to its Documentation table)")

    summary = (
        f"{README} ({readme_lines} lines, under {README_MAX_LINES}) and {len(docs)} {DOCS}/*.md: "
        f"{links} relative links resolve ({anchored} of them to a heading's anchor), "
        f"and every {DOCS}/*.md is linked from {README}"
    )
    return problems, summary


def main_check(root):
    problems, summary = check(root)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"check-docs: {len(problems)} problem(s) in {README} and {DOCS}/*.md", file=sys.stderr)
        return 1
    print(f"check-docs: {summary}")
    return 0


# --self-test --------------------------------------------------------------------------------


def copy_repository(root, into):
    """README.md and docs/ copied (they are what gets broken); everything else symlinked."""
    os.makedirs(into)
    for name in os.listdir(root):
        source = os.path.join(root, name)
        if name == README:
            shutil.copy(source, os.path.join(into, name))
        elif name == DOCS:
            shutil.copytree(source, os.path.join(into, name))
        else:
            os.symlink(source, os.path.join(into, name))


def append(path, text):
    """Appends `text` to `path` and returns the line number its first line lands on."""
    with open(path, encoding="utf-8") as f:
        content = f.read()
    if content and not content.endswith("\n"):
        content += "\n"
    first = content.count("\n") + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(content + text)
    return first


def break_missing_file(copy):
    line = append(os.path.join(copy, DOCS, "keeper.md"), "See [the missing page](no-such-page.md).\n")
    return f"docs/keeper.md:{line}:", "no-such-page.md"


def break_missing_anchor_here(copy):
    line = append(os.path.join(copy, README), "Read [nothing](#no-such-heading).\n")
    return f"README.md:{line}:", "#no-such-heading"


def break_missing_anchor_there(copy):
    line = append(os.path.join(copy, DOCS, "events.md"), "[Gone](subscribing.md#no-such-heading).\n")
    return f"docs/events.md:{line}:", "docs/subscribing.md has no heading with the anchor #no-such-heading"


def break_renamed_heading(copy):
    """Renames the heading that README.md's first same-file anchor link points at."""
    path = os.path.join(copy, README)
    page = Markdown(path)
    for number, target in page.links:
        if target.startswith("#"):
            slug = target[1:]
            for index, line in enumerate(page.lines):
                atx = ATX_HEADING.match(line)
                if atx and github_slug(atx.group(2) or "") == slug:
                    page.lines[index] = line + " renamed"
                    with open(path, "w", encoding="utf-8") as f:
                        f.write("\n".join(page.lines) + "\n")
                    return f"README.md:{number}:", f"#{slug}"
    raise SystemExit("self-test: README.md has no link to one of its own headings to break")


def break_outside(copy):
    line = append(os.path.join(copy, DOCS, "operations.md"), "[Out](../../outside.md)\n")
    return f"docs/operations.md:{line}:", "outside the repository"


def break_long_readme(copy):
    append(os.path.join(copy, README), "A line too many.\n" * README_MAX_LINES)
    return "README.md:", "must stay under"


def break_unlinked_page(copy):
    with open(os.path.join(copy, DOCS, "orphan.md"), "w", encoding="utf-8") as f:
        f.write("# Orphan\n\nNo one links here.\n")
    return "docs/orphan.md:1:", "not linked from README.md"


def code_is_not_a_link(copy):
    """Not a breakage: a link written inside code is text, and must not be refused."""
    append(
        os.path.join(copy, DOCS, "events.md"),
        "\n```md\n[in a fence](no-such-file.md)\n# not a heading\n```\n\n"
        "Write `[x](no-such-file.md)` for a link.\n",
    )
    return None, None


CASES = [
    ("a link to a file that does not exist", break_missing_file),
    ("a link to a heading the same file lacks", break_missing_anchor_here),
    ("a link to a heading another file lacks", break_missing_anchor_there),
    ("a heading renamed under a link to it", break_renamed_heading),
    ("a link that leaves the repository", break_outside),
    (f"README.md grown to {README_MAX_LINES} lines and more", break_long_readme),
    ("a docs page README.md does not link", break_unlinked_page),
    ("links written inside code (must pass)", code_is_not_a_link),
]


def run(copy):
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--root", copy],
        capture_output=True, text=True,
    )
    return result.returncode, result.stdout + result.stderr


def self_test(root):
    failures = 0
    with tempfile.TemporaryDirectory(prefix="check-docs-") as tmp:
        intact = os.path.join(tmp, "intact")
        copy_repository(root, intact)
        code, output = run(intact)
        if code != 0:
            print(f"self-test: the intact copy is refused already (exit {code}):\n{output}", file=sys.stderr)
            return 1
        print("self-test: the intact copy passes")
        for index, (name, breaker) in enumerate(CASES):
            copy = os.path.join(tmp, f"case-{index}")
            copy_repository(root, copy)
            where, says = breaker(copy)
            code, output = run(copy)
            if where is None:
                ok = code == 0
                verdict = "passes" if ok else f"refused (exit {code}): {output.strip()}"
            else:
                problem = next((l for l in output.splitlines() if l.startswith(where) and says in l), None)
                ok = code == 1 and problem is not None
                verdict = f"refused: {problem}" if ok else (
                    f"NOT refused as expected (exit {code}, wanted a line starting {where!r} "
                    f"that says {says!r}):\n{output}"
                )
            print(f"self-test: {name}: {verdict}")
            failures += not ok
    if failures:
        print(f"check-docs --self-test: {failures} of {len(CASES)} cases failed", file=sys.stderr)
        return 1
    print(f"check-docs --self-test: the intact copy passes, and each of {len(CASES) - 1} broken "
          f"copies is refused with file:line; code is not mistaken for links")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                        help="the repository to check (default: this script's)")
    parser.add_argument("--self-test", action="store_true",
                        help="check that broken temporary copies of the docs are refused")
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    sys.exit(self_test(root) if args.self_test else main_check(root))


if __name__ == "__main__":
    main()
