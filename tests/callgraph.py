#!/usr/bin/env python3
"""File-level call graph of site/, signer/ and server/, from the object files
of a build (nm): an edge A -> B when A's object refers to a symbol B's
defines. Fails (exit 1) on
  - a circle: files that call each other, directly or around a loop;
  - a call the wrong way between folders: signer/ calls nothing in site/,
    server/ or cli/; site/ calls nothing in server/ or cli/; inside site/,
    a layer calls only its own layer and the layers below it (site/README.md).
Usage: callgraph.py BUILD_DIR [SOURCE_DIR]   (ctest: callgraph)
Objects whose source file no longer exists (a stale build) are ignored."""
import collections
import glob
import os
import subprocess
import sys

# site/'s layers, lowest first (site/README.md). A path matches the longest
# prefix listed.
SITE_LAYERS = [
    ('site/store/', 0),
    ('site/core/', 1),
    ('site/audit/log.c', 2),
    ('site/keys/', 3),
    ('site/audit/', 4),
    ('site/bulk/', 5),
    ('site/registration/', 6),
    ('site/facade/', 7),
]
# folder -> folders it must not refer to
FORBIDDEN = {
    'signer': ('site', 'server', 'cli'),
    'site': ('server', 'cli'),
}
SCOPE = ('site', 'signer', 'server')


def site_rank(path):
    best = None
    for prefix, rank in SITE_LAYERS:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rank)
    return best


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build')
    src = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else
                          os.path.join(os.path.dirname(__file__), '..'))
    objs = {}
    for o in sorted(glob.glob(os.path.join(build, 'CMakeFiles', '*.dir', '**', '*.c.o'),
                              recursive=True)):
        rel = o.split('.dir/', 1)[1][:-2]
        if rel.split('/')[0] not in SCOPE + ('cli',):
            continue
        if not os.path.exists(os.path.join(src, rel)):
            continue  # stale object of a moved or deleted file
        objs.setdefault(rel, o)
    if not any(r.startswith('site/') for r in objs):
        print(f'callgraph: no object files of site/ under {build}/CMakeFiles: build first')
        return 2
    defs, refs = {}, collections.defaultdict(set)
    for rel, o in objs.items():
        out = subprocess.run(['nm', o], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in 'TDBR':
                defs[p[2]] = rel
            elif len(p) == 2 and p[0] == 'U':
                refs[rel].add(p[1])
    g = {}
    for a in objs:
        g[a] = collections.defaultdict(set)
        for s in refs[a]:
            b = defs.get(s)
            if b is not None and b != a:
                g[a][b].add(s)
    bad = 0
    # one-way rules between folders and between site/'s layers
    for a in sorted(g):
        top = a.split('/')[0]
        for b in sorted(g[a]):
            why = None
            if b.split('/')[0] in FORBIDDEN.get(top, ()):
                why = f'{top}/ must not call {b.split("/")[0]}/'
            elif a.startswith('site/') and b.startswith('site/'):
                ra, rb = site_rank(a), site_rank(b)
                if ra is None or rb is None:
                    why = 'file outside the layers listed in tests/callgraph.py'
                elif rb[1] > ra[1]:
                    why = f'layer {ra[0]} calls the layer above it, {rb[0]}'
            if why:
                print(f'WRONG WAY: {a} -> {b} ({", ".join(sorted(g[a][b])[:4])}): {why}')
                bad += 1
    # circles (Tarjan's strongly connected components) among SCOPE
    scope = {a: sorted(b for b in g[a] if b.split('/')[0] in SCOPE)
             for a in g if a.split('/')[0] in SCOPE}
    idx, low, st, on, sccs, n = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        idx[v] = low[v] = n[0]
        n[0] += 1
        st.append(v)
        on.add(v)
        for w in scope[v]:
            if w not in idx:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            c = []
            while True:
                w = st.pop()
                on.discard(w)
                c.append(w)
                if w == v:
                    break
            if len(c) > 1:
                sccs.append(sorted(c))
    for v in sorted(scope):
        if v not in idx:
            visit(v)
    for c in sccs:
        print('CYCLE:', ' '.join(c))
        for a in c:
            print('   ', a, '->', ' '.join(b for b in scope[a] if b in c))
    print(f'{len(sccs)} cycles among {len(scope)} files; {bad} calls the wrong way')
    return 1 if sccs or bad else 0


if __name__ == '__main__':
    sys.exit(main())
