# call 2: the same recipes (fused kernels) trained for 420 s instead of 240 s, the cosine decay ending at 420 s
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true train.steps=40000 train.time_limit=${SECONDS_TRAIN:-420}"
( train_run 0 imm imm_${SECONDS_TRAIN:-420}s $FUSED
  diag 0 imm_${SECONDS_TRAIN:-420}s imm imm_pushforward:1:1,imm_pushforward:2:1,imm_pushforward:4:1,imm_pushforward:8:1 ) &
( train_run 1 fm fm_${SECONDS_TRAIN:-420}s $FUSED
  diag 1 fm_${SECONDS_TRAIN:-420}s euler euler:4:1,euler:8:1,euler:16:1,euler:32:1,euler:64:1 ) &
wait
summary imm_${SECONDS_TRAIN:-420}s fm_${SECONDS_TRAIN:-420}s
