# twentieth session: two IMM runs of configs/imm_mnist.yaml (fused kernels), one per GPU, given as NAME "OVERRIDES"
# pairs; each scored at 1 / 2 / 4 / 8 uniform pushforward steps and with the first 4-step jump split in two
# (5 NFE: does the first jump still lose the most?); w = 1, N = 10,000
. results/gpu_2026-11-30_session20/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
SET=$P:1:1,$P:2:1,$P:4:1,$P:8:1,$P:5:1:times=0.994/0.8705/0.747/0.5/0.253/0.006
( train_run 0 imm $1 $FUSED $2; diag 0 $1 imm $SET ) &
( train_run 1 imm $3 $FUSED $4; diag 1 $3 imm $SET ) &
wait
summary $1 $3
