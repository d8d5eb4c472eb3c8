#!/usr/bin/env bash
# Everything that only a GPU can measure, as one prepared run for a machine with an NVIDIA GPU, its own
# Python with PyTorch, and no network: the GPU tests (tests/test_gpu.py), the benchmark suite
# (scripts/benchmark.py, CycleGAN 256 first) and the precision check (scripts/bench_precision.py: CycleGAN
# 256, 200 steps, bf16 + channels_last with and without compile against fp32's seed noise). Each part has
# its own time limit, so that one that runs long still leaves the others their time (9 minutes in all, inside
# a 10-minute call); every log and result goes under $OUT (default gpu-results/). The whole suite
# (make bench) wants more: this is its part that the targets are about.
#
# Packages the machine lacks travel as wheels in .whl/ (made beforehand where PyPI is reachable):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl hydra-core==1.3.2 omegaconf==2.3.0
#   python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3      # sdist only on PyPI: build its wheel
# and the run is:  bash scripts/gpu_session.sh   (PYTHON=... to use another interpreter than python3)
set -u
OUT="${OUT:-gpu-results}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
# The source checkout itself, not installed: translate finds conf/ beside src/ (translate.cli.app.config_dir).
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"

summary="$OUT/summary.txt"
part() {  # part NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, note the exit status
    local name="$1" limit="$2"
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - started)) s (limit $limit s)" | tee -a "$summary"
}

{ nvidia-smi; "$PYTHON" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } > "$OUT/machine.txt" 2>&1
part test_gpu 150 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu.py
part benchmark 270 "$PYTHON" scripts/benchmark.py --device cuda --out "$OUT" --only cyclegan256,pix2pix256 \
    --settings "engine fp32,engine bf16 + channels_last,engine compile + bf16 + channels_last,engine compile + bf16 + channels_last (batch x16)"
part precision 120 "$PYTHON" scripts/bench_precision.py --seeds 3 model=cyclegan device=cuda --out "$OUT"
tail -n 3 "$OUT/test_gpu.log" >> "$summary"
cat "$summary"
