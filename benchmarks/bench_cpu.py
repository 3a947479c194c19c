"""CPU benchmark of lossreg against native torch; the same as ``lossreg bench``.

    python benchmarks/bench_cpu.py --out benchmarks/results/cpu
"""

import sys

from lossreg.bench import main

if __name__ == "__main__":
    sys.exit(main(command=" ".join(["python", *sys.argv])))
