# call 4 (fourteenth session): flow matching, the recipe (Heun at 128 steps, the last cell) and uniform t
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
( train_run 0 fm fm_fused $FUSED; diag 0 fm_fused eh euler:32:1,euler:64:1,euler:128:1,heun:128:1 ) &
( train_run 1 fm fm_uniform_t $FUSED objective.t_sampling=uniform; diag 1 fm_uniform_t euler euler:16:1,euler:32:1,euler:64:1,euler:128:1 ) &
wait
summary fm_fused fm_uniform_t
