# twenty-third session, call 4: training throughput on two H200s over one, DDP and FSDP2, at equal per-GPU batch
# (scripts/bench_torchrun.py: GPT-2-124M AR at B = 32 x T = 1024, and the IMM MNIST recipe at batch 256 without CUDA graphs)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
nvidia-smi topo -m > $OUT/topo.txt 2>&1
python scripts/bench_torchrun.py --text .data/tinyshakespeare.txt --mnist .data/mnist.npz --nproc 2 --fsdp \
  --out $OUT/torchrun_x2 2>&1 | tee $OUT/torchrun_x2.log
