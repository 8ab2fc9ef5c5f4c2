# call 5 (sixteenth session): how long the first steps of the MNIST recipes take (compilation, CUDA-graph
# capture), on a fresh machine (cold compile cache) and again right after (warm); one recipe per GPU
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
FIRST="train.steps=40 train.time_limit=0 train.decay_by=steps train.log_every=1 train.eval_every=0 train.ckpt_every=0"
for pass in cold warm; do
  ( train_run 0 fm fm_$pass $FUSED $FIRST ) & ( train_run 1 imm imm_$pass $FUSED $FIRST ) & wait
done
for n in fm_cold imm_cold fm_warm imm_warm; do
  python3 -c "import json; r=[json.loads(l) for l in open('$OUT/$n/metrics.jsonl')]; \
print('$n', 'ms of steps 1-12:', [round(x['perf/step_ms']) for x in r[:12]], 'median 20-40:', sorted(x['perf/step_ms'] for x in r[19:])[10])"
done
