#!/usr/bin/env bash
# The main job: a GENREG evolution on MNIST (the published protocol: population 200,
# 784-64-10 tanh, 600 generations), then the best genome on the 10k test set.
# Extra arguments go to `genreg evolve` (e.g. --generations 100, --set population=300).
set -euo pipefail
source "$(dirname "$0")/scripts/setup.sh"
out=runs/mnist-$(date +%Y%m%d-%H%M%S)
.venv/bin/genreg evolve --out "$out" "$@"
best=$(ls "$out"/best_genome_mnist_gen*.pkl | sort | tail -n 1)
.venv/bin/genreg eval "$best" --json "$out/eval.json"
.venv/bin/genreg plot "$out"
