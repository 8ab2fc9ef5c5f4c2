# twentieth session: the thirteenth session's helpers, with diag writing straight into $OUT (a call cut during
# scoring keeps the rows diagnose_fid finished: it rewrites its CSV after every setting)
. results/gpu_2026-11-30_session13/calls/lib.sh
diag() {
  gpu=$1; name=$2; tag=$3; settings=$4; weights=${5:-ema}
  while [ ! -e $R/$name.done ]; do sleep 2; done
  CUDA_VISIBLE_DEVICES=$gpu python scripts/diagnose_fid.py --run-dir $R/$name --inception .data/fid_inception_v3_fp16.pt \
    --data .data/mnist.npz --n 10000 --compile --weights $weights --settings $settings --out $OUT/$name/diag_$tag 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$\|s/it\]$" > $OUT/$name/diag_${tag}_log.txt
  clean $OUT/$name/diag_${tag}_log.txt $OUT/$name/diag_$tag/*
  echo "== $name $tag"; cat $OUT/$name/diag_$tag/diagnose_fid.md
}
