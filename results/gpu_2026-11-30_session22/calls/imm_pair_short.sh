# twenty-second session, call 5: two IMM recipe runs, one per GPU (NAME "OVERRIDES" pairs), scored at 4 / 8 steps and
# the 5-NFE split grid only (the call's device time was short); w = 1, N = 10,000
. results/gpu_2026-11-30_session21/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
S=$P:4:1,$P:8:1,$P:5:1:times=0.994/0.8705/0.747/0.5/0.253/0.006
( train_run 0 imm $1 $FUSED $2; diag 0 $1 imm $S ) &
( train_run 1 imm $3 $FUSED $4; diag 1 $3 imm $S ) &
wait
summary $1 $3
