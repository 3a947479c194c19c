#!/usr/bin/env bash
# Copy lossreg's pure-Python dependencies from this environment into conformance/gpu/site, for a
# machine that cannot install them (the GPU machine has no network and lacks array-api-compat
# and array-api-extra). The folder is git-ignored; carry it along: carry=["conformance/gpu/site"].
set -eu
cd "$(dirname "$0")"
python=${PYTHON:-python}
rm -rf site && mkdir site
for module in array_api_compat array_api_extra; do
    src=$("$python" -c "import $module, os; print(os.path.dirname($module.__file__))")
    cp -r "$src" site/
done
find site -name __pycache__ -type d -prune -exec rm -rf {} +
du -sh site
