# call 3: IMM (a = 2, fused kernels) with the U-statistic MMD, two seeds (or the runs given as NAME "OVERRIDES" pairs)
. results/gpu_2026-11-30_session13/calls/lib.sh
FUSED="model.fused_qk_norm_rope=true model.fused_swiglu=true"
N0=${1:-imm_u_s0}; O0=${2:-objective.estimator=u}; N1=${3:-imm_u_s1}; O1=${4:-objective.estimator=u train.seed=1}
SET=imm_pushforward:1:1,imm_pushforward:2:1,imm_pushforward:4:1,imm_pushforward:8:1
( train_run 0 imm $N0 $FUSED $O0; diag 0 $N0 imm $SET ) &
( train_run 1 imm $N1 $FUSED $O1; diag 1 $N1 imm $SET ) &
wait
summary $N0 $N1
