# twenty-third session, call 5: call 4's IMM row at batch 1,024 a GPU, where the step no longer waits on the host
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
python scripts/bench_torchrun.py --text .data/tinyshakespeare.txt --mnist .data/mnist.npz --nproc 2 --objectives imm \
  --set train.batch_size=1024 train.steps=120 train.log_every=20 --out $OUT/torchrun_x2_b1024 2>&1 | tee $OUT/torchrun_x2_b1024.log
