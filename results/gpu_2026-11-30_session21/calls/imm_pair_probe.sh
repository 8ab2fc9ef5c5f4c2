# twenty-first session: two IMM runs of configs/imm_mnist.yaml (fused kernels), one per GPU, given as NAME "OVERRIDES"
# pairs; each scored at 4 / 8 / 2 / 1 uniform pushforward steps (the key figures first) and with the first 4-step
# jump split in two (5 NFE), w = 1, N = 10,000; then scripts/imm_precision.py on each run's final weights, with the
# run's own mapping and with r <= t - 0.01
. results/gpu_2026-11-30_session21/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
SET=$P:4:1,$P:8:1,$P:2:1,$P:1:1,$P:5:1:times=0.994/0.8705/0.747/0.5/0.253/0.006
( train_run 0 imm $1 $FUSED $2; diag 0 $1 imm $SET; probe 0 $1 own; probe 0 $1 gap01 --min-gap 0.01 ) &
( train_run 1 imm $3 $FUSED $4; diag 1 $3 imm $SET; probe 1 $3 own; probe 1 $3 gap01 --min-gap 0.01 ) &
wait
summary $1 $3
