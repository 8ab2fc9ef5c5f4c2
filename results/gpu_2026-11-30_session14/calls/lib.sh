# helpers for the fourteenth session's GPU calls (source it from the repository root on the device)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 1
R=/tmp/runs13; D=/tmp/diag13; mkdir -p $R $D
clean() { sed -i "s#$PWD#<repo>#g; s#/tmp/[a-zA-Z0-9/._-]*#<tmp>#g" "$@"; }
# train GPU OBJ NAME OVERRIDES...: one run of configs/OBJ_mnist.yaml; touches $R/NAME.done when finished
train_run() {
  gpu=$1; obj=$2; name=$3; shift 3; mkdir -p $OUT/$name
  CUDA_VISIBLE_DEVICES=$gpu python train.py --objective $obj --config configs/${obj}_mnist.yaml --data .data/mnist.npz \
    --run-dir $R/$name --quiet sample.eval_images=0 "$@" > $OUT/$name/train_log.txt 2>&1
  cp $R/$name/metrics.jsonl $OUT/$name/ ; clean $OUT/$name/train_log.txt; touch $R/$name.done
}
# diag GPU NAME TAG SETTINGS [WEIGHTS]: diagnose_fid at N = 10,000 into $OUT/NAME/diag_TAG.csv (waits for the run)
diag() {
  gpu=$1; name=$2; tag=$3; settings=$4; weights=${5:-ema}
  while [ ! -e $R/$name.done ]; do sleep 2; done
  CUDA_VISIBLE_DEVICES=$gpu python scripts/diagnose_fid.py --run-dir $R/$name --inception .data/fid_inception_v3_fp16.pt \
    --data .data/mnist.npz --n 10000 --compile --weights $weights --settings $settings --out $D/$name-$tag 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$\|s/it\]$" > $OUT/$name/diag_${tag}_log.txt
  cp $D/$name-$tag/diagnose_fid.csv $OUT/$name/diag_$tag.csv; clean $OUT/$name/diag_${tag}_log.txt $OUT/$name/diag_$tag.csv
  echo "== $name $tag"; cat $D/$name-$tag/diagnose_fid.md
}
summary() { for n in "$@"; do echo "== $n: $(tail -1 $OUT/$n/train_log.txt | head -c 300)"; grep -h "done: step" $OUT/$n/train_log.txt; done; }
# pack NAME: everything under $OUT into $OUT/NAME.tgz (only 8 files come back)
pack() { ( cd $OUT && tar czf /tmp/$1.tgz --exclude='*.tgz' . && rm -rf ./* && mv /tmp/$1.tgz . ); }
