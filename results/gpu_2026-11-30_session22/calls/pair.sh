# twenty-second session: two runs of the committed MNIST recipes (fused kernels), one per GPU, given as
# OBJ NAME "OVERRIDES" triples (OBJ: imm or fm). IMM is scored at 4 / 8 / 2 / 1 pushforward steps and with the first
# 4-step jump split (5 NFE); flow matching at Euler 32 / 16 / 8 / 64 and Heun 16 / 8; w = 1, N = 10,000. Then Adam's state
# against its eps (adam_state.py) for each run's checkpoints.
. results/gpu_2026-11-30_session22/calls/lib.sh
score() {
  gpu=$1; obj=$2; name=$3
  if [ $obj = imm ]; then
    diag $gpu $name imm $P:4:1,$P:8:1,$P:2:1,$P:1:1,$SPLIT
  else
    diag $gpu $name euler euler:32:1,euler:16:1,euler:8:1,euler:64:1,heun:16:1,heun:8:1
  fi
  adam $name
}
( train_run 0 $1 $2 $FUSED $3; score 0 $1 $2 ) &
( train_run 1 $4 $5 $FUSED $6; score 1 $4 $5 ) &
wait
summary $2 $5
