# nineteenth session: flow matching (GPU 0) and IMM (GPU 1), the committed MNIST recipes, at shorter training
# budgets (the arguments, in seconds; default 120 then 60; the cosine decay ends at each limit): is IMM's 4x at
# 4 steps a property of MNIST's floor (flow matching's 32 steps sit within 0.4 FID of it at 240 s) or of the
# method, and how does it move with the budget? w = 1, N = 10,000. Call 2 ran `bash budgets.sh` (120 60), call 3
# `bash budgets.sh 420`
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
P=imm_pushforward
BUDGETS=${*:-120 60}
( for b in $BUDGETS; do
    train_run 0 fm fm_${b}s $FUSED train.time_limit=$b
    diag 0 fm_${b}s euler euler:4:1,euler:8:1,euler:16:1,euler:32:1,euler:64:1
  done ) &
( for b in $BUDGETS; do
    train_run 1 imm imm_${b}s $FUSED train.time_limit=$b
    diag 1 imm_${b}s imm $P:1:1,$P:2:1,$P:4:1,$P:8:1
  done ) &
wait
for b in $BUDGETS; do summary fm_${b}s imm_${b}s; done
