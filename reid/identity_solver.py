"""The global assignment of fragments to identities: one integer program for the whole clip.

Greedy labelling (longest fragment first, each takes its best free identity) commits early: one
confident mistake pushes every later fragment of that time off its right answer. Instead every
fragment's identity is chosen at once by maximising the total log-evidence subject to
*cannot-link*: fragments present at the same time are different individuals. Fragments are
intervals of time, so "present at the same time" is captured by the maximal cliques of the
interval graph (:func:`reid.fragments.cliques`): one constraint per clique and identity, a few
thousand rows for a long clip, which HiGHS (``scipy.optimize.milp``) solves to optimality in a
fraction of a second.

*Must-links* (the tracker or the source says two fragments are one object) outweigh all
evidence together: a link is cut only where keeping it is impossible, because a chain of links
joins fragments present at the same time (a source that handed one id to two animals). Put
into the program as heavily weighted terms, hundreds of them made its relaxation so loose that
a 3000-frame, 7-animal clip did not solve in a minute, and the answer cut off by a time limit
left a quarter of the masks without identity and depended on the machine's load. So chains are
*contracted* first (:func:`contract_links`): a chain that never joins coexisting fragments
becomes one node (its evidence summed, its cliques united), which every answer cutting the
fewest links agrees with. A chain that does is cut apart beforehand with the fewest links
that part every coexisting pair (a small hitting-set program over that chain's links alone,
:func:`_fewest_cuts`); among equally few, the cut whose pieces fit best on their own
evidence, pieces present at the same time taking different identities (:func:`_pieces_fit`).
That choice is the one place the answer may differ from solving everything at once (the
pieces' cannot-links with other chains are not weighed in it). Only a chain whose cut is not
found that way leaves its links to the program, one cut variable each. The program left has a
node per chain and solves to optimality in well under a second on the benchmark clips.

A fragment may also stay unassigned, at the price ``unassigned``: there are more objects than
individuals when the mask source adds a spurious blob or a duplicate, and one of them must give
way. The price is the evidence of the fragment's worst identity, so a fragment is only dropped
when keeping it would cost more than labelling it as badly as possible; a chain is dropped only
after every unlinked fragment that could give way, and where more chains are present together
than there are identities, one is split (its links handed to the program) rather than dropped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import DisjointSet
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

# seconds; a safety net only: the contracted programs of the benchmark clips (up to 3000
# frames, 8 animals) solve to optimality within a few seconds (``SolverLog`` says if not)
TIME_LIMIT = 30.0
# small programs solved per chain (paths added, cuts found) before its links are left to the
# whole program, and cuts of the fewest links compared on their evidence
CUT_ROUNDS = 200
CUT_CHOICES = 50


@dataclass
class SolverLog:
    """How the programs of one clip went, for ``summary.json``: an answer cut off by the time
    limit is the best found so far, and may differ on a slower or busier machine."""

    programs: int = 0
    stopped_early: int = 0

    def record(self, optimal: bool) -> None:
        self.programs += 1
        self.stopped_early += int(not optimal)

    def summary(self) -> dict:
        return {"programs": self.programs, "stopped_at_time_limit": self.stopped_early}


def unassigned_price(evidence: np.ndarray) -> np.ndarray:
    """The default price of leaving each fragment unassigned: just below its worst identity's
    evidence (see the module docstring)."""
    return evidence.min(axis=1) - 1.0


def solve_assignment(evidence: np.ndarray, cliques: list[list[int]],
                     must_links: list[tuple[int, int]] | None = None,
                     unassigned: np.ndarray | None = None,
                     time_limit: float = TIME_LIMIT, log: SolverLog | None = None,
                     ) -> np.ndarray:
    """Column index per row of ``evidence`` (fragments x identities) maximising the summed
    evidence with no two members of a clique on one identity; -1 where a fragment is left
    unassigned. ``must_links`` ``(f, g)``: ``f`` and ``g`` take one identity, except where a
    chain of them joins fragments present at the same time; then as few links as possible are
    cut (and, among those choices, the one with the most evidence)."""
    n, k = evidence.shape
    if n == 0 or k == 0:
        return np.full(n, -1, np.int64)
    if unassigned is None:
        unassigned = unassigned_price(evidence)
    # a link outweighs all evidence together: no evidence can pay for cutting one
    hard = float(np.abs(evidence).sum()) + 1.0
    links = sorted({(min(f, g), max(f, g)) for f, g in must_links or [] if f != g})
    chain_of = _chain_names(n, links)
    expanded: set[int] = set()
    while True:
        node_of, node_links = contract_links(evidence, cliques, links, expanded)
        nodes = int(node_of.max()) + 1
        node_evidence = np.zeros((nodes, k))
        np.add.at(node_evidence, node_of, evidence)
        # dropping a contracted chain loses the links inside it (a link between nodes is
        # lost through its cut variable)
        inside = np.zeros(nodes)
        for f, g in links:
            if node_of[f] == node_of[g]:
                inside[node_of[f]] += 1
        node_unassigned = np.zeros(nodes)
        np.add.at(node_unassigned, node_of, unassigned)
        node_unassigned -= inside * hard
        node_cliques = {tuple(sorted({int(node_of[f]) for f in clique})) for clique in cliques}
        chosen = _assign(node_evidence, [list(c) for c in node_cliques if len(c) > 1],
                         node_links, hard, node_unassigned, time_limit, log)
        # a contracted chain left out (more chains at once than identities) is split instead:
        # its links go to the program, which cuts the fewest of them
        dropped = {f for f in range(n) if chosen[node_of[f]] < 0 and inside[node_of[f]] > 0}
        grow = {chain_of[f] for f in dropped} - expanded
        if not grow:
            return chosen[node_of]
        expanded |= grow


def _chain_names(n: int, links: list[tuple[int, int]]) -> list[int]:
    """Per fragment, the smallest fragment linked to it (directly or through others): a
    name for its chain."""
    chains = DisjointSet(range(n))
    for f, g in links:
        chains.merge(f, g)
    name = list(range(n))
    for chain in chains.subsets():
        for f in chain:
            name[f] = min(chain)
    return name


def contract_links(evidence: np.ndarray, cliques: list[list[int]],
                   links: list[tuple[int, int]],
                   expanded: set[int] | frozenset[int] = frozenset(),
                   ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Node per fragment after merging must-linked fragments, and the links left between
    nodes (for the program to keep or cut).

    A chain (connected set of links) whose fragments are never present together becomes one
    node: every link of it can be kept, and keeping all is what any answer that cuts as few
    as possible does. A chain that joins fragments present together must lose links: its
    conflict-free leaves are merged (cutting a leaf's link frees no one), then the fewest
    links that part every coexisting pair are found (:func:`_fewest_cuts`) and the pieces
    merged; where they are not found, the links are left to the program.
    Chains named in ``expanded`` (by their smallest fragment) are not merged at all."""
    n = len(evidence)
    present: list[set[int]] = [set() for _ in range(n)]
    for q, clique in enumerate(cliques):
        for f in clique:
            present[f].add(q)
    chain_of = _chain_names(n, links)
    chains: dict[int, list[int]] = {}
    for f in range(n):
        chains.setdefault(chain_of[f], []).append(f)
    merged = list(range(n))  # fragment -> representative within the final contraction
    remaining: list[tuple[int, int]] = []
    by_chain: dict[int, list[tuple[int, int]]] = {}
    for f, g in links:
        by_chain.setdefault(chain_of[f], []).append((f, g))
    for name, members in chains.items():
        if len(members) == 1:
            continue
        seen: list[int] = [q for f in members for q in present[f]]
        if name not in expanded and len(seen) == len(set(seen)):
            for f in members:
                merged[f] = name
            continue
        chain_links = by_chain[name]
        if name not in expanded:
            chain_links = _merge_free_leaves(chain_links, present, merged)
            chain_links = _fewest_cuts(chain_links, evidence, present, merged)
        remaining.extend(chain_links)
    numbering = {r: i for i, r in enumerate(dict.fromkeys(merged))}
    node_of = np.array([numbering[merged[f]] for f in range(n)], np.int64)
    node_links = sorted({(int(min(node_of[f], node_of[g])), int(max(node_of[f], node_of[g])))
                         for f, g in remaining if node_of[f] != node_of[g]})
    return node_of, node_links


def _merge_free_leaves(links: list[tuple[int, int]], present: list[set[int]],
                       merged: list[int]) -> list[tuple[int, int]]:
    """Merge, one at a time, a fragment (or merged group) linked to exactly one other that is
    present together with no one else of its chain: its link is on no path between two
    fragments that must be parted, so an answer cutting the fewest links keeps it. Returns
    the links left.

    A leaf that meets another group at some time never becomes free (merging others only
    unites what it meets), so each leaf is judged once, and again only when a merge makes
    its neighbour a leaf."""
    neighbours: dict[int, set[int]] = defaultdict(set)
    for f, g in links:
        if f != g:
            neighbours[f].add(g)
            neighbours[g].add(f)
    group = {f: {f} for f in neighbours}
    times = {f: set(present[f]) for f in neighbours}
    holders = Counter(q for f in neighbours for q in times[f])  # groups present at each time
    waiting = [f for f in neighbours if len(neighbours[f]) == 1]
    while waiting:
        leaf = waiting.pop()
        if leaf not in group or len(neighbours[leaf]) != 1 or \
                any(holders[q] > 1 for q in times[leaf]):
            continue
        keep = neighbours.pop(leaf).pop()
        neighbours[keep].discard(leaf)
        group[keep] |= group.pop(leaf)
        times[keep] |= times.pop(leaf)
        if len(neighbours[keep]) == 1:
            waiting.append(keep)
    for representative, members in group.items():
        for f in members:
            merged[f] = representative
    return sorted((f, g) for f in neighbours for g in neighbours[f] if f < g)


def _fewest_cuts(links: list[tuple[int, int]], evidence: np.ndarray,
                 present: list[set[int]], merged: list[int],
                 rounds: int = CUT_ROUNDS, choices: int = CUT_CHOICES,
                 ) -> list[tuple[int, int]]:
    """The fewest of ``links`` (between merged groups, named by ``merged``) whose cutting
    leaves no two coexisting fragments joined; among equally few (up to ``choices`` of them),
    the cut whose pieces fit best (:func:`_pieces_fit`: the best labelling of the pieces in
    which those present at the same time differ). The
    pieces are merged and no link is returned; where no such cut is found in ``rounds``
    rounds, nothing is merged and every link is returned, for the program to decide.

    It is a hitting set: every path of links between two coexisting groups must lose a link.
    Paths are added as they are found (a shortest one per pair that a candidate cut left
    joined) to a small integer program over the chain's links alone; each cut found is then
    excluded to find the next one as small. That is quick where tens of heavily weighted cut
    variables in the whole program took seconds to tens of seconds on a 3000-frame clip."""
    groups = sorted({merged[f] for edge in links for f in edge})
    members: dict[int, list[int]] = {g: [] for g in groups}
    for f, g in enumerate(merged):
        if g in members:
            members[g].append(f)
    times = {g: set().union(*(present[f] for f in members[g])) for g in groups}
    summed = {g: evidence[members[g]].sum(axis=0) for g in groups}
    edges = sorted({(min(merged[f], merged[g]), max(merged[f], merged[g])) for f, g in links})
    apart = [(a, b) for i, a in enumerate(groups) for b in groups[i + 1:]
             if times[a] & times[b]]
    rows: list[np.ndarray] = []  # paths that must lose a link; cuts already found, excluded
    lower: list[float] = []
    found: list[list[list[int]]] = []  # pieces left by each cut of the fewest links
    fewest: int | None = None
    for _ in range(rounds):
        result = milp(np.ones(len(edges)), integrality=np.ones(len(edges)), bounds=Bounds(0, 1),
                      constraints=[LinearConstraint(np.array(rows), np.array(lower), np.inf)]
                      if rows else [])
        if result.x is None or (fewest is not None and result.fun > fewest + 0.5):
            break  # no other cut as small
        cut = set(np.flatnonzero(result.x > 0.5).tolist())
        step = _adjacency(edges, cut)
        joined = [path for a, b in apart if (path := _path(step, a, b)) is not None]
        for path in joined:
            row = np.zeros(len(edges))
            row[path] = 1.0
            rows.append(row)
            lower.append(1.0)
        if joined:
            continue
        fewest = len(cut)
        found.append(_pieces(groups, edges, cut))
        if len(found) >= choices:
            break
        row = np.zeros(len(edges))  # not this cut again: -(its links cut) >= 1 - |cut|
        row[list(cut)] = -1.0
        rows.append(row)
        lower.append(1.0 - len(cut))
    if not found:
        return links

    def fit(pieces: list[list[int]]) -> float:
        return _pieces_fit(np.stack([sum(summed[g] for g in piece) for piece in pieces]),
                           [set().union(*(times[g] for g in piece)) for piece in pieces])

    for piece in max(found, key=fit):
        for g in piece:
            for f in members[g]:
                merged[f] = piece[0]
    return []


def _pieces_fit(evidence: np.ndarray, times: list[set[int]]) -> float:
    """The summed evidence of the best labelling of a cut's pieces (``evidence``: pieces x
    identities) in which pieces present at the same time (``times``: their cliques) take
    different identities.

    Why not each piece's own best: the cut exists because two of the chain's fragments are
    present together, so at least two of its pieces are, and they are two individuals. A
    spurious mask linked into an animal's chain is parted either on its own or with half of
    the chain; judged piece by piece both cuts fit equally well (each half of the animal
    fits the animal), although the second leaves two pieces that both need the animal's
    identity at the same frame, one of which must then take another animal's."""
    pairs = [[a, b] for a in range(len(times)) for b in range(a + 1, len(times))
             if times[a] & times[b]]
    if not pairs:
        return float(evidence.max(axis=1).sum())
    unassigned = unassigned_price(evidence)
    chosen = solve_assignment(evidence, pairs, unassigned=unassigned)
    return float(sum(evidence[p, j] if j >= 0 else unassigned[p]
                     for p, j in enumerate(chosen)))


def _adjacency(edges: list[tuple[int, int]], cut: set[int]) -> dict[int, list[tuple[int, int]]]:
    """Per group, the (neighbour, edge index) pairs of the edges not in ``cut``."""
    step: dict[int, list[tuple[int, int]]] = {}
    for e, (u, v) in enumerate(edges):
        if e not in cut:
            step.setdefault(u, []).append((v, e))
            step.setdefault(v, []).append((u, e))
    return step


def _path(step: dict[int, list[tuple[int, int]]], a: int, b: int) -> list[int] | None:
    """Indices of the edges on a shortest path from ``a`` to ``b`` over ``step``
    (:func:`_adjacency`)."""
    came: dict[int, tuple[int, int] | None] = {a: None}
    todo = [a]
    for node in todo:
        if node == b:
            out = []
            while came[node] is not None:
                node, e = came[node]  # type: ignore[misc]
                out.append(e)
            return out
        for other, e in step.get(node, []):
            if other not in came:
                came[other] = (node, e)
                todo.append(other)
    return None


def _pieces(groups: list[int], edges: list[tuple[int, int]], cut: set[int]) -> list[list[int]]:
    """The groups still joined by the edges not in ``cut``: each piece in ascending order,
    the pieces in order of their smallest group."""
    joined = DisjointSet(groups)
    for e, (u, v) in enumerate(edges):
        if e not in cut:
            joined.merge(u, v)
    return sorted(sorted(piece) for piece in joined.subsets())


def _assign(evidence: np.ndarray, cliques: list[list[int]], links: list[tuple[int, int]],
            penalty: float, unassigned: np.ndarray, time_limit: float,
            log: SolverLog | None) -> np.ndarray:
    n, k = evidence.shape
    m = len(links)
    size = n * k + n + m
    # variables: x[f, j] (n*k, row-major), u[f] (n): f unassigned, cut[l] (m): link l lost,
    # forced to 1 by cut[l] >= x[f, j] - x[g, j] (every identity, both directions) and by
    # cut[l] >= u[f], u[g]: kept only where both ends take one identity
    c = -np.concatenate([evidence.ravel(), unassigned, np.full(m, -penalty)])
    rows = np.repeat(np.arange(n), k + 1)
    cols = np.concatenate([np.r_[f * k: (f + 1) * k, n * k + f] for f in range(n)])
    constraints = [LinearConstraint(coo_matrix((np.ones(len(rows)), (rows, cols)),
                                               shape=(n, size)), 1, 1)]
    r2, c2, v2, upper = [], [], [], []
    row = 0
    for clique in cliques:
        for j in range(k):
            r2.extend([row] * len(clique))
            c2.extend(f * k + j for f in clique)
            v2.extend([1.0] * len(clique))
            upper.append(1.0)
            row += 1
    for li, (f, g) in enumerate(links):
        for j in range(k):
            for a, b in ((f, g), (g, f)):
                r2.extend([row] * 3)
                c2.extend([a * k + j, b * k + j, n * k + n + li])
                v2.extend([1.0, -1.0, -1.0])
                upper.append(0.0)
                row += 1
        for end in (f, g):
            r2.extend([row, row])
            c2.extend([n * k + end, n * k + n + li])
            v2.extend([1.0, -1.0])
            upper.append(0.0)
            row += 1
    if row:
        constraints.append(LinearConstraint(coo_matrix((v2, (r2, c2)), shape=(row, size)),
                                            -np.inf, np.array(upper)))
    result = milp(c, constraints=constraints, integrality=np.ones(size),
                  bounds=Bounds(0, 1), options={"time_limit": time_limit})
    if log is not None:
        log.record(result.status == 0)
    if result.x is None:  # no feasible point found in time: fall back to a greedy answer
        return _greedy(evidence, cliques)
    x = result.x[: n * k].reshape(n, k)
    return np.where(x.max(axis=1) > 0.5, x.argmax(axis=1), -1).astype(np.int64)


def _greedy(evidence: np.ndarray, cliques: list[list[int]]) -> np.ndarray:
    n, _ = evidence.shape
    members: dict[int, list[int]] = {}
    for q, clique in enumerate(cliques):
        for f in clique:
            members.setdefault(f, []).append(q)
    taken: dict[int, set[int]] = {}
    out = np.full(n, -1, np.int64)
    for f in np.argsort(-evidence.max(axis=1)):
        blocked = set().union(*(taken.get(q, set()) for q in members.get(int(f), [])))
        for j in np.argsort(-evidence[f]):
            if int(j) not in blocked:
                out[f] = j
                for q in members.get(int(f), []):
                    taken.setdefault(q, set()).add(int(j))
                break
    return out
