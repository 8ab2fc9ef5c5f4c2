# sixteenth session: two IMM runs of configs/imm_mnist.yaml (fused kernels), one per GPU, given as NAME "OVERRIDES"
# pairs; each scored at 1 / 2 / 4 / 8 uniform pushforward steps, then with the first and the last 4-step jump
# split in two (5 NFE: which jump loses the most?); w = 1, N = 10,000. An optional fifth argument adds
# settings (comma-separated)
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
N0=$1; O0=$2; N1=$3; O1=$4
P=imm_pushforward
SET=$P:1:1,$P:2:1,$P:4:1,$P:8:1
SET=$SET,$P:5:1:times=0.994/0.8705/0.747/0.5/0.253/0.006,$P:5:1:times=0.994/0.747/0.5/0.253/0.1295/0.006${5:+,$5}
( train_run 0 imm $N0 $FUSED $O0; diag 0 $N0 imm $SET ) &
( train_run 1 imm $N1 $FUSED $O1; diag 1 $N1 imm $SET ) &
wait
summary $N0 $N1
