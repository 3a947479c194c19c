"""lossreg on JAX against optax and Keras (JAX backend); the same as ``lossreg bench --library jax``.

    python benchmarks/bench_jax.py --out benchmarks/results/jax_peers
"""

import sys

from lossreg.bench import main

if __name__ == "__main__":
    sys.exit(main(["--library", "jax", *sys.argv[1:]], command=" ".join(["python", *sys.argv])))
