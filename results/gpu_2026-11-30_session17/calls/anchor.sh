# seventeenth session: the two MNIST recipes as committed (untimed_steps 2), flow matching on GPU 0 and IMM on
# GPU 1 in the same call, fused kernels both: the re-anchored table, step counts and the same-call step-time pair
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
( train_run 0 fm fm_recipe $FUSED
  diag 0 fm_recipe euler euler:4:1,euler:8:1,euler:16:1,euler:32:1,euler:64:1 ) &
( train_run 1 imm imm_recipe $FUSED
  diag 1 imm_recipe imm $P:1:1,$P:2:1,$P:4:1,$P:8:1
  diag 1 fm_recipe heun heun:8:1,heun:16:1 ) &
wait
summary fm_recipe imm_recipe
