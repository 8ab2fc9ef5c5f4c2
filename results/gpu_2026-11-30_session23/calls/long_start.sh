# twenty-third session, call 1: the committed IMM and flow-matching MNIST recipes (fused kernels), one per GPU, each
# with a training budget of TL seconds (train.time_limit: the cosine decay ends there; train.steps is raised so that the
# step count never ends it first). STOP seconds after launch both get SIGTERM: they finish the current step, save
# a checkpoint and exit 143. long_finish.sh, run next on the same (still warm) machine, resumes them to TL and scores them.
. results/gpu_2026-11-30_session22/calls/lib.sh
TL=${TL:-920}; STOP=${STOP:-555}
launch() {
  gpu=$1; obj=$2; name=$3; mkdir -p $OUT/$name
  CUDA_VISIBLE_DEVICES=$gpu python train.py --objective $obj --config configs/${obj}_mnist.yaml --data .data/mnist.npz \
    --run-dir $R/$name --quiet sample.eval_images=0 $FUSED train.time_limit=$TL train.steps=200000 \
    > $OUT/$name/train_log_1.txt 2>&1 &
}
launch 0 imm imm_${TL}s; p0=$!
launch 1 fm fm_${TL}s; p1=$!
sleep $STOP; kill -TERM $p0 $p1; wait $p0 $p1
for n in imm_${TL}s fm_${TL}s; do
  cp $R/$n/metrics.jsonl $OUT/$n/metrics_1.jsonl; clean $OUT/$n/train_log_1.txt
  echo "== $n: $(tail -2 $OUT/$n/train_log_1.txt | head -c 400)"
done
