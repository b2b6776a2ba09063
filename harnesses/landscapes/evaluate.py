"""Immutable harness: three landscapes with known global optima and deliberate traps.

    python evaluate.py deceptive    # reads deceptive.py, prints fitness (maximise, optimum 12)
    python evaluate.py rastrigin    # reads rastrigin.py, prints loss (minimise, optimum 0.0)
    python evaluate.py nk           # reads nk.py, prints fitness (maximise, optimum NK_OPTIMUM)
    python evaluate.py nk --optimum # enumerates all 2^N genomes: prints the optimum and its genome

Each prints the metric contract block that metaexp reads:
    ---
    fitness: 9
"""

import hashlib
import importlib.util
import itertools
import math
import os
import sys

# ---------------------------------------------------------------------------
# Deceptive trap (Deb & Goldberg): 4 blocks of 3 bits B00..B11. A block with u
# ones scores 3 if u == 3, else 2 - u, so every single-bit step that helps
# (except the last one) leads to all zeros: the deceptive attractor scores 8,
# the global optimum (all ones) 12.

TRAP_ORDER = 3  # bits per block
TRAP_BLOCKS = 4
DECEPTIVE_OPTIMUM = TRAP_ORDER * TRAP_BLOCKS


def deceptive(params):
    bits = [int(getattr(params, f"B{i:02d}")) for i in range(TRAP_ORDER * TRAP_BLOCKS)]
    total = 0
    for b in range(TRAP_BLOCKS):
        u = sum(1 for bit in bits[b * TRAP_ORDER : (b + 1) * TRAP_ORDER] if bit == 1)
        total += TRAP_ORDER if u == TRAP_ORDER else TRAP_ORDER - 1 - u
    return "fitness", total


# ---------------------------------------------------------------------------
# Rastrigin: 10 n + sum(x^2 - 10 cos(2 pi x)) over X0..X2, one local minimum
# near every integer point; the global minimum 0.0 is at the origin, the next
# best (one coordinate at +-1) is 1.0.

RASTRIGIN_DIMS = 3


def rastrigin(params):
    xs = [float(getattr(params, f"X{i}")) for i in range(RASTRIGIN_DIMS)]
    loss = 10.0 * len(xs) + sum(x * x - 10.0 * math.cos(2.0 * math.pi * x) for x in xs)
    return "loss", max(loss, 0.0)  # cos(2 pi x) rounds to 1.0 at integers: clamp -0.0 and the like


# ---------------------------------------------------------------------------
# NK landscape (Kauffman): N genes G00..G13, gene i contributes a table value
# (an integer 0..99) that depends on itself and its K right neighbours
# (cyclic). The tables are hashes of (NK_SEED, i, pattern), identical on every
# machine and Python version. NK_OPTIMUM was found by enumerating all 2^N
# genomes (`python evaluate.py nk --optimum`; tests/test_study.py checks it).

NK_N = 14
NK_K = 4
NK_SEED = 1
NK_OPTIMUM = 1113


def nk_contribution(i, pattern):
    digest = hashlib.sha256(f"nk:{NK_SEED}:{i}:{pattern}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def nk_tables():
    return [[nk_contribution(i, p) for p in range(2 ** (NK_K + 1))] for i in range(NK_N)]


def nk_fitness(genome, tables):
    total = 0
    for i in range(NK_N):
        pattern = 0
        for j in range(NK_K + 1):
            pattern = (pattern << 1) | genome[(i + j) % NK_N]
        total += tables[i][pattern]
    return total


def nk(params):
    genome = [1 if int(getattr(params, f"G{i:02d}")) == 1 else 0 for i in range(NK_N)]
    return "fitness", nk_fitness(genome, nk_tables())


def nk_optimum():
    tables = nk_tables()
    return max((nk_fitness(g, tables), g) for g in itertools.product((0, 1), repeat=NK_N))


# ---------------------------------------------------------------------------

LANDSCAPES = {"deceptive": deceptive, "rastrigin": rastrigin, "nk": nk}


def load_target(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.getcwd(), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    if len(argv) < 1 or argv[0] not in LANDSCAPES:
        print(f"usage: python evaluate.py {{{'|'.join(LANDSCAPES)}}} [--optimum]", file=sys.stderr)
        return 2
    if argv[0] == "nk" and "--optimum" in argv:
        value, genome = nk_optimum()
        print(f"nk optimum: {value} at {''.join(map(str, genome))}")
        return 0
    metric, value = LANDSCAPES[argv[0]](load_target(argv[0]))
    print("---")
    print(f"{metric}: {value:.6f}" if isinstance(value, float) else f"{metric}: {value}")
    print(f"experiment: {os.environ.get('METAEXP_EXPERIMENT', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
