# call 3 (sixteenth session): flow matching (configs/fm_mnist.yaml) beside IMM (configs/imm_mnist.yaml with
# a = 1.25, seed 1), fused kernels both, for a same-call step-time pair and the ratio at the current recipes
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
( train_run 0 fm fm_fused $FUSED
  diag 0 fm_fused euler euler:4:1,euler:8:1,euler:16:1,euler:32:1,euler:64:1 ) &
( train_run 1 imm imm_a125_s1 $FUSED objective.a=1.25 train.seed=1
  diag 1 imm_a125_s1 imm $P:1:1,$P:2:1,$P:4:1,$P:8:1,$P:4:1.25
  diag 1 fm_fused heun heun:8:1,heun:16:1 ) &
wait
summary fm_fused imm_a125_s1
