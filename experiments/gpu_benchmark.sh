#!/usr/bin/env bash
# FGSM/PGD throughput on one GPU: fgsm_jax in float32 and bfloat16, batch sizes up to what
# fits, and the TF/PyTorch peers on the same GPU; then each result's share of the roofline.
# Not yet run (no GPU was lent to the session that wrote it): run it as one prepared job.
#
#   bash experiments/gpu_benchmark.sh [OUT_DIR]        (default /tmp/gpu_bench)
#
# Needs a CUDA jax (pip install -U "jax[cuda12]" matching jax 0.10.x). Peers on the GPU need
# CUDA builds of torch (the default Linux wheel of torch==2.13.0) and TensorFlow
# ("tensorflow[and-cuda]" instead of tensorflow-cpu); with CPU builds they run on the CPU and
# their records say so (implementation '... on cpu'), which makes their ratios meaningless --
# drop --peers then (PEERS="" bash experiments/gpu_benchmark.sh).
#
# Roofline (printed at the end, from the JSON): the CNN's FGSM costs F = 68.4 MFLOP and at
# least B = 10.3 MB of memory traffic per 160 x 160 image (experiments/benchmark_fgsm.py,
# cnn_fgsm_cost: forward + backward-to-input multiply-adds x 2; each activation and
# activation gradient written and read once, saved activations re-read for masks). Its
# arithmetic intensity F/B = 6.6 FLOP/byte is below every current GPU's ridge point, so the
# attainable rate is min(P / F, BW / B) images/s, with P the peak FLOP/s for the dtype
# (float32: the non-tensor-core FP32 peak, as XLA uses TF32 tensor cores only when allowed;
# bfloat16: the dense tensor-core peak) and BW the HBM bandwidth. share = measured images/s /
# attainable. PGD with S steps costs S times FGSM (S forward+backward passes), so its share
# uses S x F and S x B. Peak numbers below are the datasheet values for the SXM parts.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/gpu_bench}"
PEERS="${PEERS-tf,torch}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"

# 1) FGSM and PGD(10), float32 and bfloat16, growing batches (each adds a record; a batch
#    that does not fit fails alone and is reported as skipped).
"$PY" experiments/benchmark_fgsm.py --attacks fgsm,pgd,fgsm_naive --models cnn \
    --dtypes float32,bfloat16 --batch-sizes 1,8,64,256,1024,4096 --steps 10 \
    --repeats 20 --warmup 3 --json "$OUT/jax.json" 2>&1 | tee "$OUT/jax.log"

# 2) Peers on the same GPU, float32 (TF: FGSM eager and tf.function; torch: FGSM, PGD).
if [[ -n "$PEERS" ]]; then
  "$PY" experiments/benchmark_fgsm.py --attacks fgsm,pgd --models cnn --dtypes float32 \
      --batch-sizes 64,256,1024 --steps 10 --repeats 20 --warmup 3 --peers "$PEERS" \
      --json "$OUT/peers.json" 2>&1 | tee "$OUT/peers.log"
fi

# 3) dlib's ResNet when it is available.
"$PY" experiments/benchmark_fgsm.py --attacks fgsm --models dlib --batch-sizes 8,64,256 \
    --repeats 10 --json "$OUT/dlib.json" 2>&1 | tee "$OUT/dlib.log" || true

# 4) Roofline shares.
"$PY" - "$OUT" <<'EOF'
import importlib.util, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
spec = importlib.util.spec_from_file_location("bench", "experiments/benchmark_fgsm.py")
bench = importlib.util.module_from_spec(spec); sys.modules["bench"] = bench
spec.loader.exec_module(bench)
cost = bench.cnn_fgsm_cost()
F, B = cost["flops_per_image"], cost["bytes_per_image"]
# name substring -> (FP32 FLOP/s, BF16 dense tensor FLOP/s, HBM bytes/s)
PEAKS = {"H200": (67e12, 989e12, 4.8e12), "H100": (67e12, 989e12, 3.35e12),
         "A100": (19.5e12, 312e12, 2.0e12), "L4": (30.3e12, 121e12, 0.3e12)}
gpu = (out / "gpu.txt").read_text()
name = next((k for k in PEAKS if k in gpu), None)
print(f"per image: {F / 1e6:.1f} MFLOP, {B / 1e6:.1f} MB (intensity {F / B:.1f} FLOP/B)")
if name is None:
  print("unknown GPU: add its peaks to PEAKS"); sys.exit(0)
fp32, bf16, bw = PEAKS[name]
print(f"{name}: FP32 {fp32 / 1e12:.0f} TFLOP/s, BF16 {bf16 / 1e12:.0f} TFLOP/s, "
      f"HBM {bw / 1e12:.2f} TB/s")
for path in sorted(out.glob("*.json")):
  for r in json.loads(path.read_text()):
    if r["model"] != "cnn" or not r["images_per_s"]:
      continue
    steps = r["steps"] or 1
    peak = bf16 if r["dtype"] == "bfloat16" else fp32
    attainable = min(peak / (steps * F), bw / (steps * B))
    bound = "memory" if bw / B < peak / F else "compute"
    print(f"{r['framework']:>12s} {r['attack']:>10s} {r['dtype']:>8s} "
          f"batch {r['batch_size']:5d}: {r['images_per_s']:10.1f} img/s = "
          f"{100 * r['images_per_s'] / attainable:5.1f}% of the {bound}-bound roofline "
          f"({attainable:,.0f} img/s)")
EOF
