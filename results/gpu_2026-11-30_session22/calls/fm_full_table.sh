# twenty-second session, call 4: the rest of the flow-matching table (Euler 1 / 2 / 4 / 128, Heun 1-128) for
# call 3's seed-2 run, still on the held machine in $R (so this call depends on call 3); w = 1, N = 10,000
. results/gpu_2026-11-30_session22/calls/lib.sh
N=fm_recipe_s2; mkdir -p $OUT/$N
( diag 0 $N euler_rest euler:1:1,euler:2:1,euler:4:1,euler:128:1,heun:1:1,heun:2:1 ) &
( diag 1 $N heun_rest heun:4:1,heun:32:1,heun:64:1,heun:128:1 ) &
wait
