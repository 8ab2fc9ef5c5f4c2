# twenty-second session, call 5: two IMM recipe runs, one per GPU (NAME "OVERRIDES" pairs), scored at 4 / 8 steps and
# the 5-NFE split grid only (the call's device time was short); w = 1, N = 10,000
. results/gpu_2026-11-30_session22/calls/lib.sh
S=$P:4:1,$P:8:1,$SPLIT
( train_run 0 imm $1 $FUSED $2; diag 0 $1 imm $S ) &
( train_run 1 imm $3 $FUSED $4; diag 1 $3 imm $S ) &
wait
summary $1 $3
