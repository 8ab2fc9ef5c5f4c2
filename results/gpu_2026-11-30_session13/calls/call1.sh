# call 1: flow matching with the fused kernels (its whole Euler / Heun table) beside IMM a = 2, b = 5 (fused)
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
IMMSET=imm_pushforward:1:1,imm_pushforward:2:1,imm_pushforward:4:1,imm_pushforward:8:1,imm_pushforward:4:1:spacing=edm,imm_pushforward:8:1:spacing=edm
( train_run 0 fm fm_fused $FUSED
  diag 0 fm_fused euler euler:1:1,euler:2:1,euler:4:1,euler:8:1,euler:16:1,euler:32:1,euler:64:1,euler:128:1
  diag 0 fm_fused heun64 heun:64:1 ) &
( train_run 1 imm imm_a2_b5_fused $FUSED objective.b=5.0
  diag 1 imm_a2_b5_fused imm $IMMSET ema,raw
  diag 1 fm_fused heun heun:1:1,heun:2:1,heun:4:1,heun:8:1,heun:16:1,heun:32:1 ) &
wait
summary fm_fused imm_a2_b5_fused
