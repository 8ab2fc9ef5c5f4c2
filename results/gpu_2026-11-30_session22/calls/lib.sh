# twenty-second session's helpers: the twenty-first session's, plus what this session's call scripts share
. results/gpu_2026-11-30_session21/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
SPLIT=$P:5:1:times=0.994/0.8705/0.747/0.5/0.253/0.006  # the 4-step grid with its first jump split (5 NFE)
# adam NAME: Adam's second moments against its eps (adam_state.py) for run NAME's checkpoints
adam() {
  PYTHONPATH=$PWD:$PYTHONPATH python results/gpu_2026-11-30_session22/calls/adam_state.py $R/$1 > $OUT/$1/adam_state.txt 2>&1
  echo "== $1 adam"; cat $OUT/$1/adam_state.txt
}
