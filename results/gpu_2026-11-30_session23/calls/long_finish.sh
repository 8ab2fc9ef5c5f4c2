# twenty-third session, call 2: resume long_start.sh's two runs to their budget (TL, from their saved configs), then
# score them with the EMA weights at N = 10,000, w = 1: IMM at 4 / 8 / 2 / 1 pushforward steps and the 4-step grid with
# its first jump split (5 NFE); flow matching at Euler 32 / 16 / 8 / 64.
. results/gpu_2026-11-30_session22/calls/lib.sh
TL=${TL:-920}
finish() {
  gpu=$1; name=$2; mkdir -p $OUT/$name
  CUDA_VISIBLE_DEVICES=$gpu python train.py --run-dir $R/$name --resume --quiet > $OUT/$name/train_log_2.txt 2>&1
  cp $R/$name/metrics.jsonl $OUT/$name/; clean $OUT/$name/train_log_2.txt; touch $R/$name.done
  echo "== $name: $(tail -2 $OUT/$name/train_log_2.txt | head -c 400)"
}
( finish 0 imm_${TL}s; diag 0 imm_${TL}s imm $P:4:1,$P:8:1,$P:2:1,$P:1:1,$SPLIT ) &
( finish 1 fm_${TL}s; diag 1 fm_${TL}s euler euler:32:1,euler:16:1,euler:8:1,euler:64:1 ) &
wait
