# twentieth session: is IMM's 4-step FID held by the backbone's size? Flow matching (GPU 0) and IMM (GPU 1), the
# committed MNIST recipes with the overrides given (e.g. "model.n_layer=12 train.time_limit=420"), trained in
# the same call; IMM scored at 4 / 8 / 2 / 1 pushforward steps, flow matching at Euler 32 / 16 / 8 (the key figures first); w = 1, N = 10,000
. results/gpu_2026-11-30_session20/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
( train_run 0 fm fm_$1 $FUSED $2; diag 0 fm_$1 euler euler:32:1,euler:16:1,euler:8:1 ) &
( train_run 1 imm imm_$1 $FUSED $2; diag 1 imm_$1 imm $P:4:1,$P:8:1,$P:2:1,$P:1:1 ) &
wait
summary fm_$1 imm_$1
