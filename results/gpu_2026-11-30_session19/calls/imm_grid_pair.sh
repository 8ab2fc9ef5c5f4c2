# nineteenth session: two IMM runs of configs/imm_mnist.yaml (fused kernels), one per GPU, given as NAME "OVERRIDES"
# pairs; each scored at 1 / 2 / 4 / 8 uniform pushforward steps and on eight other 4-step grids (which 4-step
# grid suits the trained network?); w = 1, N = 10,000
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
N0=$1; O0=$2; N1=$3; O1=$4
P=imm_pushforward
SET=$P:1:1,$P:2:1,$P:4:1,$P:8:1
for g in 0.85/0.6/0.3 0.85/0.55/0.25 0.9/0.65/0.35 0.8/0.55/0.3 0.85/0.65/0.4 0.8/0.6/0.35 0.9/0.75/0.45 0.7/0.45/0.2; do
  SET=$SET,$P:4:1:times=0.994/$g/0.006
done
( train_run 0 imm $N0 $FUSED $O0; diag 0 $N0 imm $SET ) &
( train_run 1 imm $N1 $FUSED $O1; diag 1 $N1 imm $SET ) &
wait
summary $N0 $N1
