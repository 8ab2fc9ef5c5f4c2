# calls 1-3 (fourteenth session): two IMM runs of configs/imm_mnist.yaml (fused kernels), one per GPU, given as
# NAME "OVERRIDES" pairs; each scored at 1 / 2 / 4 / 8 pushforward steps, w = 1, N = 10,000
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
N0=$1; O0=$2; N1=$3; O1=$4
SET=imm_pushforward:1:1,imm_pushforward:2:1,imm_pushforward:4:1,imm_pushforward:8:1
( train_run 0 imm $N0 $FUSED $O0; diag 0 $N0 imm $SET ) &
( train_run 1 imm $N1 $FUSED $O1; diag 1 $N1 imm $SET ) &
wait
summary $N0 $N1
