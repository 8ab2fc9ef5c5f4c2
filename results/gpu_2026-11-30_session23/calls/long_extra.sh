# twenty-third session, call 3: flow matching's 920 s run (long_finish.sh's, on the same warm machine) at Heun 8 / 16
# (15 / 31 NFE) and Euler 4 / 2 / 1, w = 1, N = 10,000
. results/gpu_2026-11-30_session22/calls/lib.sh
mkdir -p $OUT/fm_920s
diag 1 fm_920s heun heun:8:1,heun:16:1,euler:4:1,euler:2:1,euler:1:1
