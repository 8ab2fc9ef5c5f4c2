# twenty-first session: the twentieth session's helpers, plus probe
. results/gpu_2026-11-30_session20/calls/lib.sh
# probe GPU NAME TAG [ARGS...]: scripts/imm_precision.py on run NAME (after diag), into $OUT/NAME/precision_TAG
probe() {
  gpu=$1; name=$2; tag=$3; shift 3
  CUDA_VISIBLE_DEVICES=$gpu python scripts/imm_precision.py --run-dir $R/$name --data .data/mnist.npz \
    --out $OUT/$name/precision_$tag "$@" > $OUT/$name/precision_${tag}_log.txt 2>&1
  clean $OUT/$name/precision_${tag}_log.txt; echo "== $name precision $tag"; tail -12 $OUT/$name/precision_${tag}_log.txt
}
