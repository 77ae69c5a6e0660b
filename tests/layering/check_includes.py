#!/usr/bin/env python3
"""Checks every #include "..." of the source tree against the allowed edges of
docs/architecture.md (its "Include rules" table), so that a layer including a header of a layer
above it fails `make test` with the file, the line and the rule it broke.

A file belongs to the longest folder of the table that prefixes its path; so does an included
header. `comm` alone means the files directly in comm/ (its core): comm/algorithms/x.h belongs
to comm/algorithms when that folder has a row of its own.

Usage: check_includes.py ROOT [--pretend FILE:HEADER ...]
--pretend adds an include edge as if FILE included HEADER (the check's own test uses it).
"""
import argparse
import os
import re
import sys

SOURCE_SUFFIXES = ('.h', '.cc', '.cu', '.cuh', '.cpp')
SKIPPED_DIRS = {'.git', 'build'}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def read_rules(doc_path):
    """The table under '## Include rules': | folder | may include |, as {folder: set}."""
    rules = {}
    in_section = False
    with open(doc_path, encoding='utf-8') as doc:
        for line in doc:
            if line.startswith('## '):
                in_section = line.strip() == '## Include rules'
                continue
            if not in_section or not line.startswith('|'):
                continue
            cells = [c.strip().strip('`') for c in line.strip().strip('|').split('|')]
            if len(cells) < 2 or cells[0] in ('folder', '') or set(cells[0]) <= {'-', ':'}:
                continue
            allowed = {a.strip().strip('`') for a in cells[1].split(',') if a.strip()}
            rules[cells[0]] = allowed | {cells[0]}
    if not rules:
        sys.exit(f'{doc_path}: no "## Include rules" table found')
    return rules


def folder_of(path, folders):
    """The longest folder of the table that holds `path`, or None."""
    best = None
    for folder in folders:
        if path.startswith(folder + '/') and (best is None or len(folder) > len(best)):
            best = folder
    return best


def source_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if d not in SKIPPED_DIRS and not d.startswith('build')]
        for name in filenames:
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def include_edges(root, path):
    with open(os.path.join(root, path), encoding='utf-8', errors='replace') as src:
        for number, line in enumerate(src, 1):
            match = INCLUDE.match(line)
            if match:
                yield number, match.group(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('root')
    parser.add_argument('--pretend', action='append', default=[])
    args = parser.parse_args()
    doc = os.path.join(args.root, 'docs', 'architecture.md')
    rules = read_rules(doc)

    edges = []
    for path in sorted(source_files(args.root)):
        edges += [(path, n, inc) for n, inc in include_edges(args.root, path)]
    for pretend in args.pretend:
        path, header = pretend.split(':', 1)
        edges.append((path, 0, header))

    broken = []
    for path, number, header in edges:
        here = folder_of(path, rules)
        if here is None:
            continue  # a folder the table does not govern (tests/, bench/ ...)
        there = folder_of(header, rules)
        if there is None:
            # Same-folder includes without a path, or a header outside every layer.
            if '/' not in header or '*' in rules[here]:
                continue
            broken.append(f'{path}:{number}: includes "{header}", which is in no folder of '
                          f'the table: add the folder to docs/architecture.md or fix the path')
            continue
        if there not in rules[here] and '*' not in rules[here]:
            allowed = ', '.join(sorted(rules[here]))
            broken.append(f'{path}:{number}: includes "{header}" ({there}/), but {here}/ may '
                          f'include only {allowed} (docs/architecture.md, "Include rules")')
    for message in broken:
        print(message)
    if broken:
        print(f'{len(broken)} include(s) break the layering')
        return 1
    print(f'layering: {len(edges)} includes checked against {len(rules)} folders, all allowed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
