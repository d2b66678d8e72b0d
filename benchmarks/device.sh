#!/usr/bin/env bash
# One GPU lease's accelerator checks (issues 25 and 27; 28's too with ALL=1), in the order they matter, in one call:
#
#   bash benchmarks/device.sh            # on the lent machine, from the repository root, .whl carried
#   ALL=1 bash benchmarks/device.sh      # also BERT, Word2Vec and GloVe (issue 28)
#
# Each benchmark prints its one JSON line; they are collected in $OUT/results.jsonl and every line of output in
# $OUT/log, so a run cut off by its time limit still returns what finished. gensim is not in the device image:
# its wheel travels in .whl (the Word2Vec corpus is gensim's test data), fetched here, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl gensim==4.4.0 smart_open==9.0.4
# and named in the call's carry. Every step has its own time limit
# (seconds, first argument of `step`) so one slow benchmark cannot starve the rest.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
  python3 -c "import jax, torch, transformers; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__,
  torch.backends.cudnn.version(), '| transformers', transformers.__version__)"; } 2>&1 | tee -a "$OUT/log"

step() {  # step SECONDS NAME ARGS...: one benchmark, its JSON lines kept, its whole output logged
  local limit=$1 name=$2; shift 2
  local t0=$SECONDS label="$name $*${XLA_FLAGS:+ XLA_FLAGS=$XLA_FLAGS}"
  echo "=== $label (limit ${limit}s)" | tee -a "$OUT/log"
  timeout "$limit" python3 -m "benchmarks.$name" "$@" > "$OUT/step.txt" 2>&1
  local rc=$?
  cat "$OUT/step.txt" >> "$OUT/log"
  grep '^{' "$OUT/step.txt" | sed "s/^{/{\"step\": \"$label\", /" >> "$OUT/results.jsonl"
  echo "=== $name rc=$rc $((SECONDS - t0))s" | tee -a "$OUT/log"
  tail -n 3 "$OUT/step.txt" | cut -c1-400
}

# Issue 27: GPT-2 small (12 x 768, seq 1024, batch 16) bf16 training MFU beside HF; cached generation, batch 1 and 32.
step 170 gpt --bf16 --rounds 1
# Issue 25: the 2 x 512 LSTM (T 64) forward+backward beside torch.nn.LSTM (cuDNN); its step changed in round 11
# (one product a step, the inputs' gradient inside the backward scan's product).
step 60 lstm --batch-size 32 --unroll 1,4,8
step 60 lstm --batch-size 256 --unroll 1,4,8
# Issue 27: XLA's GPU options on GPT-2's training step, scratchlm alone (each against the default above): cuBLAS for
# every product instead of Triton's fusions, and cuBLASLt's epilogues (bias, GELU) fused into the products.
for flags in --xla_gpu_enable_triton_gemm=false --xla_gpu_enable_cublaslt=true; do
  XLA_FLAGS=$flags step 60 gpt --bf16 --rounds 1 --no-peers --gen-batches ''
done
if [ "${ALL:-0}" = 1 ]; then  # issue 28's targets (resolved in round 10), re-measured on request: ALL=1
  # BERT-base MLM training, bf16, seq 512, batch 64, beside HF.
  step 110 encoder --bf16 --seq 512
  # Word2Vec words/s on the sample x100 (45 M tokens), 2 timed epochs after a warm-up one.
  step 110 word2vec --model both --epochs 1 --repeat-corpus 100 --speed-epochs 2 --no-gensim
  # A GloVe epoch over 100 M non-zeros.
  step 70 glove --synthetic-nnz 1e8 --batch-size 1048576 --epochs 3
fi
# The GRU beside cuDNN, re-measured on today's code.
step 45 gru --batch-size 32 --unroll 1,4
step 45 gru --batch-size 256 --unroll 4,8
rm -f "$OUT/step.txt"
echo "=== done $SECONDS s" | tee -a "$OUT/log"
